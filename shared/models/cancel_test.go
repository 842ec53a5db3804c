package models

import (
	"errors"
	"testing"
	"time"
)

func TestCancel(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	open := Item{ID: "lot", SellerID: "sam", StartsAt: now.Add(-time.Hour), EndsAt: now.Add(time.Hour), Seq: 3}
	withBid := open
	withBid.BidCount, withBid.HighestBidderID = 1, "bob"
	closed := open
	closed.Status = StatusClosed
	ended := open
	ended.EndsAt = now
	for _, tt := range []struct {
		name  string
		it    Item
		by    string
		admin bool
		want  error
	}{
		{"seller", open, "sam", false, nil},
		{"seller after a bid", withBid, "sam", false, ErrCancelAfterBid},
		{"admin after a bid", withBid, "root", true, nil},
		{"stranger", open, "eve", false, ErrCancelForbidden},
		{"anonymous on an item without seller", Item{ID: "x", EndsAt: now.Add(time.Hour)}, "", false, ErrCancelForbidden},
		{"closed", closed, "root", true, ErrAuctionFinal},
		{"ended", ended, "sam", false, ErrAuctionFinal},
	} {
		got, err := Cancel(tt.it, tt.by, tt.admin, now)
		if !errors.Is(err, tt.want) {
			t.Errorf("%s: Cancel = %v, want %v", tt.name, err, tt.want)
			continue
		}
		if err == nil && (got.Status != StatusCancelled || got.Seq != tt.it.Seq+1) {
			t.Errorf("%s: cancelled item %+v, want cancelled at seq %d", tt.name, got, tt.it.Seq+1)
		}
		if err != nil && got != tt.it {
			t.Errorf("%s: refused Cancel changed the item", tt.name)
		}
	}
}
