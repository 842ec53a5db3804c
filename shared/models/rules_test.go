package models_test

import (
	"testing"
	"time"

	"github.com/bidding-platform/shared/models"
	"github.com/bidding-platform/shared/models/rulestest"
)

// goAuction runs the case table against the Go rules.
type goAuction struct{ it models.Item }

func (a *goAuction) Bid(_ testing.TB, at time.Time, b models.BidAttempt) (models.Outcome, models.Item, []models.PriceStep) {
	d := models.Decide(a.it, b, at)
	if d.Outcome.Placed() {
		a.it = d.Item
	}
	return d.Outcome, d.Item, d.Steps
}

func (a *goAuction) Close(_ testing.TB, at time.Time) (string, bool) {
	closed, ok := models.Close(a.it, at)
	if !ok {
		return "", false
	}
	a.it = closed
	winner, _ := a.it.CloseOutcome()
	return winner, true
}

func TestRuleCases(t *testing.T) {
	origin := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	rulestest.Run(t, origin, func(t *testing.T, terms models.Item) rulestest.Auction {
		return &goAuction{it: terms}
	})
}

func TestStatusAt(t *testing.T) {
	t.Parallel()
	start := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	end := start.Add(time.Hour)
	tests := []struct {
		name   string
		stored models.Status
		now    time.Time
		want   models.Status
	}{
		{"before start", "", start.Add(-time.Millisecond), models.StatusScheduled},
		{"at start", "", start, models.StatusActive},
		{"before end", models.StatusActive, end.Add(-time.Millisecond), models.StatusActive},
		{"at end", models.StatusActive, end, models.StatusClosed},
		{"closed early", models.StatusClosed, start, models.StatusClosed},
		{"cancelled", models.StatusCancelled, start.Add(-time.Hour), models.StatusCancelled},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := models.StatusAt(tc.stored, start, end, tc.now); got != tc.want {
				t.Errorf("StatusAt(%q, start, end, %v) = %q, want %q", tc.stored, tc.now.Sub(start), got, tc.want)
			}
		})
	}
	if got := models.StatusAt("", time.Time{}, time.Time{}, start); got != models.StatusActive {
		t.Errorf("no start, no end: %q, want active", got)
	}
}

func TestCloseOutcome(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		it         models.Item
		wantWinner string
		wantMet    bool
	}{
		{"no bids", models.Item{ReservePrice: 0}, "", false},
		{"no reserve", models.Item{CurrentBid: 100, HighestBidderID: "u1", BidCount: 1}, "u1", true},
		{"below reserve", models.Item{CurrentBid: 99, HighestBidderID: "u1", BidCount: 1, ReservePrice: 100}, "", false},
		{"at reserve", models.Item{CurrentBid: 100, HighestBidderID: "u1", BidCount: 1, ReservePrice: 100}, "u1", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			winner, met := tc.it.CloseOutcome()
			if winner != tc.wantWinner || met != tc.wantMet {
				t.Errorf("CloseOutcome() = %q, %v, want %q, %v", winner, met, tc.wantWinner, tc.wantMet)
			}
		})
	}
}
