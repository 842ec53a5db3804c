// Package rulestest is the auction rules' case table. The rules' own tests
// run it against models.Decide; the gateway runs the same table against its
// Lua scripts and its optimistic strategy in a real Redis, so the three
// implementations of the rules cannot drift apart.
//
// It also holds the linearizability checker of concurrent bid histories
// (CheckLinearizable), which the gateway's contention tests and the
// fault-and-reconcile suite in load-tests both run.
package rulestest

import (
	"fmt"
	"testing"
	"time"

	"github.com/bidding-platform/shared/models"
)

// Auction is one implementation of the rules under test, holding one item.
type Auction interface {
	// Bid decides b at the given moment and returns the outcome, the
	// item's state right after it and the price steps (bid events) it
	// made, in seq order.
	Bid(t testing.TB, at time.Time, b models.BidAttempt) (models.Outcome, models.Item, []models.PriceStep)
	// Close closes the auction if it is due at the given moment; closed is
	// false when it is not due (or was closed before).
	Close(t testing.TB, at time.Time) (winnerID string, closed bool)
}

// Step is one action of a case: a bid (Amount set) or a close (Close set).
// At is measured from the case's origin. After a bid, the item's price,
// leader and count must be WantPrice, WantLeader and WantCount, the
// leader's maximum WantMax (zero: the price), and its end WantEnds from the
// origin (zero: the end the item was created with). The bid's events follow
// from these: one per bid counted, the first naming the leader after the
// step before as its previous bidder; an outbid bid's event is answered
// (auto_answered) by the leader's automatic bid, which names the bidder it
// answered.
type Step struct {
	At time.Duration

	UserID string
	Amount models.Money
	// Max makes Amount a maximum bid.
	Max        bool
	Want       models.Outcome
	WantMax    models.Money
	WantPrice  models.Money
	WantLeader string
	WantCount  int64
	WantEnds   time.Duration

	Close      bool
	WantClosed bool
	WantWinner string
}

// Case is an item's terms and the steps taken on it. Starts and Ends are
// measured from the origin; the item is created at the origin.
type Case struct {
	Name          string
	StartingPrice models.Money
	MinIncrement  models.Money
	ReservePrice  models.Money
	Starts, Ends  time.Duration
	SoftClose     time.Duration
	MaxExtensions int64
	Steps         []Step
}

// Terms is the case's item with times measured from origin.
func (c Case) Terms(id string, origin time.Time) models.Item {
	return models.Item{
		ID: id, Name: c.Name, StartingPrice: c.StartingPrice, MinIncrement: c.MinIncrement,
		ReservePrice: c.ReservePrice, StartsAt: origin.Add(c.Starts), EndsAt: origin.Add(c.Ends),
	}
}

const hour = time.Hour

// Cases are the rule cases: start and end boundaries, increments, ties,
// soft close, reserve and the close outcome. Every time is a whole
// millisecond, the resolution the stores keep.
var Cases = []Case{
	{Name: "bid before the start", StartingPrice: 1000, MinIncrement: 100, Starts: hour, Ends: 2 * hour, Steps: []Step{
		{At: 0, UserID: "u1", Amount: 1000, Want: models.OutcomeNotActive},
		{At: hour - time.Millisecond, UserID: "u1", Amount: 1000, Want: models.OutcomeNotActive},
	}},
	{Name: "bid at the start", StartingPrice: 1000, MinIncrement: 100, Starts: hour, Ends: 2 * hour, Steps: []Step{
		{At: hour, UserID: "u1", Amount: 1000, Want: models.OutcomeAccepted, WantPrice: 1000, WantLeader: "u1", WantCount: 1},
	}},
	{Name: "bid just before the end", StartingPrice: 1000, MinIncrement: 100, Ends: hour, Steps: []Step{
		{At: hour - time.Millisecond, UserID: "u1", Amount: 1000, Want: models.OutcomeAccepted, WantPrice: 1000, WantLeader: "u1", WantCount: 1},
	}},
	{Name: "bid at the end", StartingPrice: 1000, MinIncrement: 100, Ends: hour, Steps: []Step{
		{At: 10 * time.Second, UserID: "u1", Amount: 1000, Want: models.OutcomeAccepted, WantPrice: 1000, WantLeader: "u1", WantCount: 1},
		{At: hour, UserID: "u2", Amount: 5000, Want: models.OutcomeNotActive, WantPrice: 1000, WantLeader: "u1", WantCount: 1},
		{At: 2 * hour, UserID: "u2", Amount: 5000, Want: models.OutcomeNotActive, WantPrice: 1000, WantLeader: "u1", WantCount: 1},
	}},
	{Name: "first bid below the starting price", StartingPrice: 1000, MinIncrement: 100, Ends: hour, Steps: []Step{
		{At: time.Second, UserID: "u1", Amount: 999, Want: models.OutcomeTooLow},
		{At: 2 * time.Second, UserID: "u1", Amount: 1000, Want: models.OutcomeAccepted, WantPrice: 1000, WantLeader: "u1", WantCount: 1},
	}},
	{Name: "increments", StartingPrice: 1000, MinIncrement: 25, Ends: hour, Steps: []Step{
		{At: time.Second, UserID: "u1", Amount: 1050, Want: models.OutcomeAccepted, WantPrice: 1050, WantLeader: "u1", WantCount: 1},
		{At: 2 * time.Second, UserID: "u2", Amount: 1074, Want: models.OutcomeTooLow, WantPrice: 1050, WantLeader: "u1", WantCount: 1},
		{At: 3 * time.Second, UserID: "u2", Amount: 1075, Want: models.OutcomeAccepted, WantPrice: 1075, WantLeader: "u2", WantCount: 2},
		{At: 4 * time.Second, UserID: "u3", Amount: 99999, Want: models.OutcomeAccepted, WantPrice: 99999, WantLeader: "u3", WantCount: 3},
		{At: 5 * time.Second, UserID: "u1", Amount: 1100, Want: models.OutcomeTooLow, WantPrice: 99999, WantLeader: "u3", WantCount: 3},
	}},
	{Name: "tie goes to the earlier bid", StartingPrice: 1000, MinIncrement: 1, Ends: hour, Steps: []Step{
		{At: time.Second, UserID: "u1", Amount: 2000, Want: models.OutcomeAccepted, WantPrice: 2000, WantLeader: "u1", WantCount: 1},
		{At: time.Second, UserID: "u2", Amount: 2000, Want: models.OutcomeTooLow, WantPrice: 2000, WantLeader: "u1", WantCount: 1},
		{At: 2 * time.Second, UserID: "u2", Amount: 2001, Want: models.OutcomeAccepted, WantPrice: 2001, WantLeader: "u2", WantCount: 2},
	}},
	{Name: "leader may raise its own bid", StartingPrice: 1000, MinIncrement: 100, Ends: hour, Steps: []Step{
		{At: time.Second, UserID: "u1", Amount: 1000, Want: models.OutcomeAccepted, WantPrice: 1000, WantLeader: "u1", WantCount: 1},
		{At: 2 * time.Second, UserID: "u1", Amount: 1050, Want: models.OutcomeTooLow, WantPrice: 1000, WantLeader: "u1", WantCount: 1},
		{At: 3 * time.Second, UserID: "u1", Amount: 1100, Want: models.OutcomeAccepted, WantPrice: 1100, WantLeader: "u1", WantCount: 2},
	}},
	{Name: "soft close extends the end", StartingPrice: 1000, MinIncrement: 100, Ends: hour, SoftClose: time.Minute, Steps: []Step{
		{At: hour - time.Minute - time.Millisecond, UserID: "u1", Amount: 1000, Want: models.OutcomeAccepted, WantPrice: 1000, WantLeader: "u1", WantCount: 1},
		{At: hour - 30*time.Second, UserID: "u2", Amount: 1100, Want: models.OutcomeAccepted, WantPrice: 1100, WantLeader: "u2", WantCount: 2, WantEnds: hour + 30*time.Second},
		// The old end has passed but the auction runs on.
		{At: hour + 10*time.Second, UserID: "u1", Amount: 1200, Want: models.OutcomeAccepted, WantPrice: 1200, WantLeader: "u1", WantCount: 3, WantEnds: hour + 70*time.Second},
		{Close: true, At: hour + 70*time.Second - time.Millisecond, WantClosed: false},
		{At: hour + 70*time.Second, UserID: "u2", Amount: 1300, Want: models.OutcomeNotActive, WantPrice: 1200, WantLeader: "u1", WantCount: 3, WantEnds: hour + 70*time.Second},
		{Close: true, At: hour + 70*time.Second, WantClosed: true, WantWinner: "u1"},
	}},
	{Name: "soft close extends at most MaxExtensions times", StartingPrice: 1000, MinIncrement: 100, Ends: hour, SoftClose: time.Minute, MaxExtensions: 2, Steps: []Step{
		{At: hour - 30*time.Second, UserID: "u1", Amount: 1000, Want: models.OutcomeAccepted, WantPrice: 1000, WantLeader: "u1", WantCount: 1, WantEnds: hour + 30*time.Second},
		{At: hour + 20*time.Second, UserID: "u2", Amount: 1100, Want: models.OutcomeAccepted, WantPrice: 1100, WantLeader: "u2", WantCount: 2, WantEnds: hour + 80*time.Second},
		// The cap is reached: the end stays.
		{At: hour + 70*time.Second, UserID: "u1", Amount: 1200, Want: models.OutcomeAccepted, WantPrice: 1200, WantLeader: "u1", WantCount: 3, WantEnds: hour + 80*time.Second},
		{At: hour + 80*time.Second, UserID: "u2", Amount: 1300, Want: models.OutcomeNotActive, WantPrice: 1200, WantLeader: "u1", WantCount: 3, WantEnds: hour + 80*time.Second},
		{Close: true, At: hour + 80*time.Second, WantClosed: true, WantWinner: "u1"},
	}},
	{Name: "a rejected bid does not extend", StartingPrice: 1000, MinIncrement: 100, Ends: hour, SoftClose: time.Minute, Steps: []Step{
		{At: time.Second, UserID: "u1", Amount: 1000, Want: models.OutcomeAccepted, WantPrice: 1000, WantLeader: "u1", WantCount: 1},
		{At: hour - time.Second, UserID: "u2", Amount: 1000, Want: models.OutcomeTooLow, WantPrice: 1000, WantLeader: "u1", WantCount: 1},
		{Close: true, At: hour, WantClosed: true, WantWinner: "u1"},
	}},
	{Name: "reserve not met", StartingPrice: 1000, MinIncrement: 100, ReservePrice: 5000, Ends: hour, Steps: []Step{
		{At: time.Second, UserID: "u1", Amount: 4999, Want: models.OutcomeAccepted, WantPrice: 4999, WantLeader: "u1", WantCount: 1},
		{Close: true, At: hour, WantClosed: true, WantWinner: ""},
		{Close: true, At: hour + time.Second, WantClosed: false},
	}},
	{Name: "reserve met exactly", StartingPrice: 1000, MinIncrement: 100, ReservePrice: 5000, Ends: hour, Steps: []Step{
		{At: time.Second, UserID: "u1", Amount: 4000, Want: models.OutcomeAccepted, WantPrice: 4000, WantLeader: "u1", WantCount: 1},
		{At: 2 * time.Second, UserID: "u2", Amount: 5000, Want: models.OutcomeAccepted, WantPrice: 5000, WantLeader: "u2", WantCount: 2},
		{Close: true, At: hour - time.Millisecond, WantClosed: false},
		{Close: true, At: hour, WantClosed: true, WantWinner: "u2"},
		{At: hour + time.Second, UserID: "u1", Amount: 9000, Want: models.OutcomeNotActive, WantPrice: 5000, WantLeader: "u2", WantCount: 2},
	}},
	{Name: "a lone maximum bids the starting price", StartingPrice: 1000, MinIncrement: 100, Ends: hour, Steps: []Step{
		{At: time.Second, UserID: "u1", Amount: 5000, Max: true, Want: models.OutcomeAccepted, WantPrice: 1000, WantLeader: "u1", WantCount: 1, WantMax: 5000},
		{Close: true, At: hour, WantClosed: true, WantWinner: "u1"},
	}},
	{Name: "a maximum answers lower bids", StartingPrice: 1000, MinIncrement: 100, Ends: hour, Steps: []Step{
		{At: time.Second, UserID: "u1", Amount: 5000, Max: true, Want: models.OutcomeAccepted, WantPrice: 1000, WantLeader: "u1", WantCount: 1, WantMax: 5000},
		{At: 2 * time.Second, UserID: "u2", Amount: 1099, Want: models.OutcomeTooLow, WantPrice: 1000, WantLeader: "u1", WantCount: 1, WantMax: 5000},
		{At: 3 * time.Second, UserID: "u2", Amount: 2000, Want: models.OutcomeOutbid, WantPrice: 2100, WantLeader: "u1", WantCount: 3, WantMax: 5000},
		{At: 4 * time.Second, UserID: "u2", Amount: 3000, Max: true, Want: models.OutcomeOutbid, WantPrice: 3100, WantLeader: "u1", WantCount: 5, WantMax: 5000},
		// Within one increment of the maximum the price stops at it.
		{At: 5 * time.Second, UserID: "u3", Amount: 4950, Want: models.OutcomeOutbid, WantPrice: 5000, WantLeader: "u1", WantCount: 7, WantMax: 5000},
		{At: 6 * time.Second, UserID: "u3", Amount: 5100, Want: models.OutcomeAccepted, WantPrice: 5100, WantLeader: "u3", WantCount: 8},
	}},
	{Name: "equal maxima go to the earlier", StartingPrice: 1000, MinIncrement: 100, Ends: hour, Steps: []Step{
		{At: time.Second, UserID: "u1", Amount: 3000, Max: true, Want: models.OutcomeAccepted, WantPrice: 1000, WantLeader: "u1", WantCount: 1, WantMax: 3000},
		{At: time.Second, UserID: "u2", Amount: 3000, Max: true, Want: models.OutcomeOutbid, WantPrice: 3000, WantLeader: "u1", WantCount: 3, WantMax: 3000},
		{At: 2 * time.Second, UserID: "u3", Amount: 3000, Want: models.OutcomeTooLow, WantPrice: 3000, WantLeader: "u1", WantCount: 3, WantMax: 3000},
		{Close: true, At: hour, WantClosed: true, WantWinner: "u1"},
	}},
	{Name: "a higher maximum leads by one increment", StartingPrice: 1000, MinIncrement: 100, Ends: hour, Steps: []Step{
		{At: time.Second, UserID: "u1", Amount: 3000, Max: true, Want: models.OutcomeAccepted, WantPrice: 1000, WantLeader: "u1", WantCount: 1, WantMax: 3000},
		{At: 2 * time.Second, UserID: "u2", Amount: 8000, Max: true, Want: models.OutcomeAccepted, WantPrice: 3100, WantLeader: "u2", WantCount: 2, WantMax: 8000},
		{At: 3 * time.Second, UserID: "u1", Amount: 5000, Max: true, Want: models.OutcomeOutbid, WantPrice: 5100, WantLeader: "u2", WantCount: 4, WantMax: 8000},
		// Less than an increment above the leader's maximum: the whole of it.
		{At: 4 * time.Second, UserID: "u3", Amount: 8050, Max: true, Want: models.OutcomeAccepted, WantPrice: 8050, WantLeader: "u3", WantCount: 5, WantMax: 8050},
		// A plain bid above every maximum is taken at its amount.
		{At: 5 * time.Second, UserID: "u1", Amount: 9000, Want: models.OutcomeAccepted, WantPrice: 9000, WantLeader: "u1", WantCount: 6},
	}},
	{Name: "the leader raises its own maximum", StartingPrice: 1000, MinIncrement: 100, Ends: hour, Steps: []Step{
		{At: time.Second, UserID: "u1", Amount: 3000, Max: true, Want: models.OutcomeAccepted, WantPrice: 1000, WantLeader: "u1", WantCount: 1, WantMax: 3000},
		{At: 2 * time.Second, UserID: "u1", Amount: 2500, Max: true, Want: models.OutcomeTooLow, WantPrice: 1000, WantLeader: "u1", WantCount: 1, WantMax: 3000},
		{At: 3 * time.Second, UserID: "u1", Amount: 3000, Max: true, Want: models.OutcomeTooLow, WantPrice: 1000, WantLeader: "u1", WantCount: 1, WantMax: 3000},
		{At: 4 * time.Second, UserID: "u1", Amount: 4000, Max: true, Want: models.OutcomeAccepted, WantPrice: 1000, WantLeader: "u1", WantCount: 1, WantMax: 4000},
		{At: 5 * time.Second, UserID: "u2", Amount: 3500, Want: models.OutcomeOutbid, WantPrice: 3600, WantLeader: "u1", WantCount: 3, WantMax: 4000},
		// A plain bid by the leader moves the price and keeps the maximum.
		{At: 6 * time.Second, UserID: "u1", Amount: 3700, Want: models.OutcomeAccepted, WantPrice: 3700, WantLeader: "u1", WantCount: 4, WantMax: 4000},
	}},
	{Name: "a maximum above the reserve lifts the price to it", StartingPrice: 1000, MinIncrement: 100, ReservePrice: 5000, Ends: hour, Steps: []Step{
		{At: time.Second, UserID: "u1", Amount: 8000, Max: true, Want: models.OutcomeAccepted, WantPrice: 5000, WantLeader: "u1", WantCount: 1, WantMax: 8000},
		{At: 2 * time.Second, UserID: "u2", Amount: 6000, Max: true, Want: models.OutcomeOutbid, WantPrice: 6100, WantLeader: "u1", WantCount: 3, WantMax: 8000},
		{Close: true, At: hour, WantClosed: true, WantWinner: "u1"},
	}},
	{Name: "the leader's raise past the reserve lifts the price", StartingPrice: 1000, MinIncrement: 100, ReservePrice: 5000, Ends: hour, Steps: []Step{
		{At: time.Second, UserID: "u1", Amount: 3000, Max: true, Want: models.OutcomeAccepted, WantPrice: 1000, WantLeader: "u1", WantCount: 1, WantMax: 3000},
		{At: 2 * time.Second, UserID: "u2", Amount: 2000, Want: models.OutcomeOutbid, WantPrice: 2100, WantLeader: "u1", WantCount: 3, WantMax: 3000},
		{At: 3 * time.Second, UserID: "u1", Amount: 6000, Max: true, Want: models.OutcomeAccepted, WantPrice: 5000, WantLeader: "u1", WantCount: 4, WantMax: 6000},
		{Close: true, At: hour, WantClosed: true, WantWinner: "u1"},
	}},
	{Name: "maxima below the reserve do not sell", StartingPrice: 1000, MinIncrement: 100, ReservePrice: 9000, Ends: hour, Steps: []Step{
		{At: time.Second, UserID: "u1", Amount: 5000, Max: true, Want: models.OutcomeAccepted, WantPrice: 1000, WantLeader: "u1", WantCount: 1, WantMax: 5000},
		{At: 2 * time.Second, UserID: "u2", Amount: 6000, Max: true, Want: models.OutcomeAccepted, WantPrice: 5100, WantLeader: "u2", WantCount: 2, WantMax: 6000},
		{Close: true, At: hour, WantClosed: true, WantWinner: ""},
	}},
	{Name: "soft close and automatic bids", StartingPrice: 1000, MinIncrement: 100, Ends: hour, SoftClose: time.Minute, Steps: []Step{
		{At: time.Second, UserID: "u1", Amount: 5000, Max: true, Want: models.OutcomeAccepted, WantPrice: 1000, WantLeader: "u1", WantCount: 1, WantMax: 5000},
		{At: hour - 30*time.Second, UserID: "u2", Amount: 2000, Want: models.OutcomeOutbid, WantPrice: 2100, WantLeader: "u1", WantCount: 3, WantMax: 5000, WantEnds: hour + 30*time.Second},
		// Raising a maximum moves no price, so it does not extend.
		{At: hour + 10*time.Second, UserID: "u1", Amount: 6000, Max: true, Want: models.OutcomeAccepted, WantPrice: 2100, WantLeader: "u1", WantCount: 3, WantMax: 6000},
		{Close: true, At: hour + 30*time.Second, WantClosed: true, WantWinner: "u1"},
	}},
	{Name: "no bids, no winner", StartingPrice: 1000, MinIncrement: 100, Ends: hour, Steps: []Step{
		{Close: true, At: 2 * hour, WantClosed: true, WantWinner: ""},
		{At: 2*hour + time.Second, UserID: "u1", Amount: 1000, Want: models.OutcomeNotActive},
	}},
}

// Run runs every case, each on its own auction from newAuction, created
// with the case's terms measured from origin. Cases are independent and run
// in parallel.
func Run(t *testing.T, origin time.Time, newAuction func(t *testing.T, terms models.Item) Auction) {
	t.Helper()
	for i, c := range Cases {
		t.Run(c.Name, func(t *testing.T) {
			t.Parallel()
			a := newAuction(t, c.Terms(itemID(i), origin))
			ends := origin.Add(c.Ends)
			closes := 0
			var leader string
			var count int64
			for n, s := range c.Steps {
				at := origin.Add(s.At)
				if s.Close {
					winner, closed := a.Close(t, at)
					if closed != s.WantClosed || winner != s.WantWinner {
						t.Fatalf("step %d: close at %v: closed=%v winner=%q, want closed=%v winner=%q",
							n, s.At, closed, winner, s.WantClosed, s.WantWinner)
					}
					if closed {
						closes++
					}
					continue
				}
				got, it, steps := a.Bid(t, at, models.BidAttempt{UserID: s.UserID, Amount: s.Amount, Max: s.Max, SoftClose: c.SoftClose, MaxExtensions: c.MaxExtensions})
				if got != s.Want {
					t.Fatalf("step %d: %s bids %v at %v: %v, want %v", n, s.UserID, s.Amount, s.At, got, s.Want)
				}
				if s.WantEnds != 0 {
					ends = origin.Add(s.WantEnds)
				}
				wantMax := s.WantMax
				if wantMax == 0 {
					wantMax = s.WantPrice
				}
				if it.CurrentBid != s.WantPrice || it.HighestBidderID != s.WantLeader || it.BidCount != s.WantCount ||
					!it.EndsAt.Equal(ends) || max(it.LeaderMax, it.CurrentBid) != wantMax {
					t.Fatalf("step %d: after %s bids %v (max %v) at %v: price %v leader %q count %d ends %v max %v, want %v %q %d %v %v",
						n, s.UserID, s.Amount, s.Max, s.At, it.CurrentBid, it.HighestBidderID, it.BidCount, it.EndsAt.Sub(origin),
						it.LeaderMax, s.WantPrice, s.WantLeader, s.WantCount, ends.Sub(origin), wantMax)
				}
				// Every acceptance and the close take the next seq, and
				// nothing else does.
				if it.Seq != uint64(it.BidCount)+uint64(closes) {
					t.Fatalf("step %d: seq %d after %d accepted bids and %d closes", n, it.Seq, it.BidCount, closes)
				}
				checkSteps(t, n, s, leader, steps, it.Seq, s.WantCount-count)
				leader, count = s.WantLeader, s.WantCount
			}
		})
	}
}

// checkSteps checks the events of table step n: want of them, in seq
// order up to seq, the first naming leader (the leader before the bid) as
// its previous bidder; when the leader's maximum outbids the bid at once,
// the bid's event is answered and the automatic one names the bidder.
func checkSteps(t *testing.T, n int, s Step, leader string, steps []models.PriceStep, seq uint64, want int64) {
	t.Helper()
	if int64(len(steps)) != want {
		t.Fatalf("step %d: %s bids %v: %d events %+v, want %d", n, s.UserID, s.Amount, len(steps), steps, want)
	}
	outbid := s.Want == models.OutcomeOutbid
	for k, st := range steps {
		wantPrev, answered := leader, outbid && k == 0
		if k > 0 {
			wantPrev = s.UserID
		}
		if st.Seq != seq-uint64(len(steps)-1-k) || st.PreviousBidderID != wantPrev || st.AutoAnswered != answered {
			t.Fatalf("step %d: %s bids %v: event %d is seq %d by %q after %q, auto_answered %v; want seq %d after %q, auto_answered %v",
				n, s.UserID, s.Amount, k, st.Seq, st.UserID, st.PreviousBidderID, st.AutoAnswered,
				seq-uint64(len(steps)-1-k), wantPrev, answered)
		}
	}
	if outbid && (steps[0].UserID != s.UserID || !steps[1].Auto || steps[1].UserID != s.WantLeader) {
		t.Fatalf("step %d: %s's bid %v is outbid, yet its events are %+v; want its own, then %s's automatic bid", n, s.UserID, s.Amount, steps, s.WantLeader)
	}
}

func itemID(i int) string {
	return fmt.Sprintf("rule_case_%02d", i)
}
