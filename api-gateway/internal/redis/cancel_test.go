package redis

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/bidding-platform/api-gateway/internal/service"
	"github.com/bidding-platform/shared/models"
	"github.com/bidding-platform/shared/testenv"
)

// cancel.lua decides as models.Cancel does: one table, both answers.
func TestCancelRule(t *testing.T) {
	t.Parallel()
	r := testenv.Redis(t)
	cfg := DefaultConfig()
	cfg.Addrs = []string{r.Addr()}
	origin := time.Now().Add(-30 * 24 * time.Hour).Truncate(time.Second)
	cases := []struct {
		name         string
		seller       string
		bids         int
		closed       bool // closed by the closer before
		cancelled    bool // cancelled by an admin before
		at           time.Duration
		by           string
		admin        bool
		want         error
		scheduledFor time.Duration // starts this long after origin
	}{
		{name: "seller before any bid", seller: "sam", by: "sam"},
		{name: "seller of a scheduled auction", seller: "sam", by: "sam", scheduledFor: time.Hour},
		{name: "seller after a bid", seller: "sam", bids: 1, by: "sam", want: models.ErrCancelAfterBid},
		{name: "admin after bids", seller: "sam", bids: 2, by: "root", admin: true},
		{name: "admin of an item without seller", by: "root", admin: true},
		{name: "another user", seller: "sam", by: "mallory", want: models.ErrCancelForbidden},
		{name: "another user after close", seller: "sam", closed: true, at: 3 * time.Hour, by: "mallory", want: models.ErrCancelForbidden},
		{name: "anyone on an item without seller", by: "", want: models.ErrCancelForbidden},
		{name: "seller after the end, not yet closed", seller: "sam", at: 3 * time.Hour, by: "sam", want: models.ErrAuctionFinal},
		{name: "admin after close", seller: "sam", closed: true, at: 3 * time.Hour, by: "root", admin: true, want: models.ErrAuctionFinal},
		{name: "admin after cancel", seller: "sam", cancelled: true, by: "root", admin: true, want: models.ErrAuctionFinal},
		{name: "seller after cancel", seller: "sam", cancelled: true, by: "sam", want: models.ErrAuctionFinal},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newStore(t, cfg, StrategyLua)
			frozenClock(t, s)
			a := &storeAuction{s: s, id: fmt.Sprintf("cancel_%d", i)}
			a.setClock(t, origin)
			newItem(t, s, models.Item{ID: a.id, SellerID: tc.seller, StartsAt: origin.Add(tc.scheduledFor),
				EndsAt: origin.Add(2 * time.Hour)})
			for b := range tc.bids {
				a.setClock(t, origin.Add(time.Minute))
				if res := placeOne(t, s, bid(a.id, fmt.Sprintf("u%d", b), models.Money(2000+100*b))); res.Outcome != models.OutcomeAccepted {
					t.Fatalf("setup bid: %v", res.Outcome)
				}
			}
			if tc.closed {
				if _, ok := a.Close(t, origin.Add(3*time.Hour)); !ok {
					t.Fatal("setup close did not close")
				}
			}
			if tc.cancelled {
				if _, err := s.Cancel(ctxT(t), a.id, "root", true); err != nil {
					t.Fatalf("setup cancel: %v", err)
				}
			}
			at := origin.Add(tc.at)
			a.setClock(t, at)
			before := item(t, s, a.id)
			// The status read is the one at the clock; StatusAt, which
			// Cancel applies, gives the same.
			wantItem, ruleErr := models.Cancel(before, tc.by, tc.admin, at)
			if !errors.Is(ruleErr, tc.want) {
				t.Fatalf("models.Cancel = %v, want %v", ruleErr, tc.want)
			}
			e, err := s.Cancel(ctxT(t), a.id, tc.by, tc.admin)
			if !errors.Is(err, tc.want) {
				t.Fatalf("cancel.lua = %v, want %v", err, tc.want)
			}
			after := item(t, s, a.id)
			if tc.want != nil {
				if after != before {
					t.Errorf("a refused cancel changed the item:\n%+v\n%+v", before, after)
				}
				return
			}
			if after.Status != models.StatusCancelled || after.Seq != wantItem.Seq || e.Event.Seq != wantItem.Seq ||
				e.Event.Type != models.EventAuctionCancelled || e.Event.Validate() != nil || e.Event.SellerID != tc.seller || e.Event.UserID != tc.by {
				t.Errorf("after cancel: item %+v, event %+v; want cancelled at seq %d", after, e.Event, wantItem.Seq)
			}
			if got := s.rdbMembersForTest(t); len(got) == 0 {
				t.Errorf("no outbox hint for the cancel event")
			}
			// The closer leaves it alone once its end passes.
			if _, closed := a.Close(t, origin.Add(5*time.Hour)); closed {
				t.Errorf("the closer closed a cancelled auction")
			}
			if _, err := s.Cancel(ctxT(t), a.id, tc.by, tc.admin); !errors.Is(err, models.ErrAuctionFinal) {
				t.Errorf("second cancel = %v", err)
			}
		})
	}
	if _, err := newStore(t, cfg, StrategyLua).Cancel(ctxT(t), "nosuch", "root", true); !errors.Is(err, service.ErrItemNotFound) {
		t.Errorf("cancel of an unknown item = %v", err)
	}
}
