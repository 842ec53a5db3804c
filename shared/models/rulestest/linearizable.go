package rulestest

import (
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/bidding-platform/shared/models"
)

// Op is one bid on one item as its client saw it.
type Op struct {
	UserID string
	Amount models.Money
	// Max marks a maximum bid: Amount is the most the bidder would pay.
	Max bool
	// Start is taken just before the request is sent and End just after
	// its answer arrives, on one clock for the whole history.
	Start, End time.Time
	// Status is the answer's HTTP status, 0 when none came.
	Status int
	// Current is the answer's current_bid; EventID its event_id (200; a
	// leader raising its maximum without moving the price has none).
	Current models.Money
	EventID string
	// MaybeApplied marks a bid whose outcome its client cannot know: a 503
	// saying it may have been accepted (Redis went away after the bid was
	// sent), or no answer at all from a gateway that died. Its event may
	// be in the log or not. Every other 503 or missing answer promises
	// that the bid was not applied.
	MaybeApplied bool
}

// History is one item's bids as their clients saw them and the item's bid
// events as the log holds them.
type History struct {
	Ops []Op
	// Events are the item's bid events in seq order.
	Events []models.Event
	// StartingPrice and MinIncrement are the item's terms.
	StartingPrice, MinIncrement models.Money
	// StaleRejections admits a rejection that names a price superseded
	// before its request began, provided that price was reached before the
	// request ended and the bid does not beat it. A gateway that answers
	// from a cache fed by other gateways' events gives such answers: the
	// rejection is right, the price it quotes may lag. Leave it off for one
	// gateway, whose every answer must be linearizable.
	StaleRejections bool
}

// Result counts what CheckLinearizable found.
type Result struct {
	// Accepted bids were answered 200; Applied bids had an unknown
	// outcome and their event is in the log.
	Accepted, Applied int
	Rejected          int
	// Unavailable bids were answered 503 or not at all, and not applied.
	Unavailable int
	// Stale rejections named a price superseded before their request
	// began (allowed only with StaleRejections).
	Stale int
}

// CheckLinearizable checks one item's bid history against the auction's
// sequential specification, reporting every violation with tb.Errorf.
//
// The events must run seq 1..N without gaps or repeats, each the bid of
// exactly one op: one answered 200 with its event id, amount and user, or
// one whose outcome was unknown, matched by user and amount (a history
// should make those unique). Every 200 must have its event, and no other
// bid may have one. Prices rise by at least the increment from the
// starting price, each event's previous_bid being the price before it and
// its previous_bidder_id the bidder before it; an event is auto_answered
// exactly when the next is the leader's automatic answer to it.
//
// With maxima, an op's own event may be at a price below its maximum, and
// an automatic bid (auto) follows the bid that triggered it, at a price at
// least that bid's; a leader's maximum that moved no price has no event.
//
// A write's linearization point lies within its request, so price k (the
// k-th event's amount) was current from a moment inside request k until a
// moment inside request k+1. Each rejection must name such a price whose
// current interval can overlap the rejection's own request, and its amount
// must be below that price's minimum next bid.
func CheckLinearizable(tb testing.TB, h History) Result {
	tb.Helper()
	var res Result
	type key struct {
		user   string
		amount models.Money
	}
	accepted := map[string]int{} // event id -> op index
	maybe := map[string][]int{}  // unknown outcomes by user, in op order
	definite := map[key]int{}    // bids known not to be applied
	others, raises := 0, 0
	for i, o := range h.Ops {
		switch {
		case o.Status == http.StatusOK:
			if o.EventID == "" {
				if o.Max {
					raises++ // a leader's maximum raised in place
				} else {
					tb.Errorf("bid %v by %s was accepted without an event id", o.Amount, o.UserID)
				}
				continue
			}
			if j, dup := accepted[o.EventID]; dup {
				tb.Errorf("event %s answered twice as accepted: %v by %s and %v by %s",
					o.EventID, h.Ops[j].Amount, h.Ops[j].UserID, o.Amount, o.UserID)
				continue
			}
			accepted[o.EventID] = i
		case o.MaybeApplied:
			maybe[o.UserID] = append(maybe[o.UserID], i)
		case o.Status == http.StatusConflict:
			res.Rejected++
		case o.Status == http.StatusServiceUnavailable || o.Status == 0:
			definite[key{o.UserID, o.Amount}] = i
			res.Unavailable++
		default:
			others++
			tb.Errorf("bid %v by %s answered %d; want 200, 409 or 503", o.Amount, o.UserID, o.Status)
		}
	}
	res.Accepted = len(accepted) + raises

	// owner[k] is the op whose write the k-th event is.
	owner := make([]int, len(h.Events))
	seen := map[string]bool{}
	ok := true
	for k, e := range h.Events {
		owner[k] = -1
		if e.Seq != uint64(k+1) {
			tb.Errorf("event %d of the log has seq %d; want 1..N without gaps or repeats", k+1, e.Seq)
			ok = false
		}
		if seen[e.EventID] {
			tb.Errorf("event %s (seq %d) twice in the log", e.EventID, e.Seq)
			ok = false
			continue
		}
		seen[e.EventID] = true
		if i, found := accepted[e.EventID]; found {
			o := h.Ops[i]
			if !o.bidAt(e) {
				tb.Errorf("event %s (seq %d) is %v by %s; its answer accepted %v (max %v) by %s", e.EventID, e.Seq, e.Amount, e.UserID, o.Amount, o.Max, o.UserID)
				ok = false
			}
			owner[k] = i
			continue
		}
		if e.Auto && k > 0 && owner[k-1] >= 0 && !h.Events[k-1].Auto {
			// The leader's answer to the bid just before it.
			owner[k] = owner[k-1]
			continue
		}
		if list := maybe[e.UserID]; len(list) > 0 {
			if j := slices.IndexFunc(list, func(i int) bool { return h.Ops[i].bidAt(e) }); j >= 0 {
				owner[k] = list[j]
				maybe[e.UserID] = slices.Delete(list, j, j+1)
				res.Applied++
				continue
			}
		}
		ok = false
		if i, found := definite[key{e.UserID, e.Amount}]; found {
			tb.Errorf("event %s (seq %d): %v by %s was answered %d, which promises it was not applied",
				e.EventID, e.Seq, e.Amount, e.UserID, h.Ops[i].Status)
		} else {
			tb.Errorf("event %s (seq %d): %v by %s was never answered as accepted", e.EventID, e.Seq, e.Amount, e.UserID)
		}
	}
	for id, i := range accepted {
		if !seen[id] {
			o := h.Ops[i]
			tb.Errorf("bid %v by %s was answered 200 (event %s) but its event is not in the log", o.Amount, o.UserID, id)
			ok = false
		}
	}
	for _, list := range maybe {
		res.Unavailable += len(list)
	}
	for k, e := range h.Events {
		switch {
		case k == 0 && e.Amount < h.StartingPrice:
			tb.Errorf("first bid %v below the starting price %v", e.Amount, h.StartingPrice)
		case k > 0 && e.Auto && e.Amount < h.Events[k-1].Amount:
			tb.Errorf("seq %d: automatic bid %v below the bid %v it answers", e.Seq, e.Amount, h.Events[k-1].Amount)
		case k > 0 && !e.Auto && e.Amount < h.Events[k-1].Amount+h.MinIncrement:
			tb.Errorf("seq %d: %v after %v, want a rise of at least %v", e.Seq, e.Amount, h.Events[k-1].Amount, h.MinIncrement)
		case k > 0 && e.PreviousBid != h.Events[k-1].Amount:
			tb.Errorf("seq %d: previous_bid %v, want %v", e.Seq, e.PreviousBid, h.Events[k-1].Amount)
		}
		prev := ""
		if k > 0 {
			prev = h.Events[k-1].UserID
		}
		// An automatic bid by someone else than the bidder before it
		// answers that bid; one by the same bidder is a leader's raise
		// lifting the price to the reserve, which answers nobody.
		answered := k+1 < len(h.Events) && h.Events[k+1].Auto && h.Events[k+1].UserID != e.UserID
		switch {
		case e.PreviousBidderID != prev:
			tb.Errorf("seq %d: previous_bidder_id %q, want %q", e.Seq, e.PreviousBidderID, prev)
		case e.AutoAnswered != answered:
			tb.Errorf("seq %d: auto_answered %v, want %v", e.Seq, e.AutoAnswered, answered)
		}
	}
	if !ok {
		// The price intervals below need every event tied to its bid.
		return res
	}

	// intervals[price] bounds when price was current; price 0 (no bid
	// yet) was current from the beginning.
	type interval struct {
		from, to time.Time
		min      models.Money
		leader   string
	}
	byPrice := map[models.Money][]interval{}
	far := time.Now().Add(24 * time.Hour)
	first := interval{to: far, min: h.StartingPrice}
	if len(h.Events) > 0 {
		first.to = h.Ops[owner[0]].End
	}
	byPrice[0] = []interval{first}
	for k, e := range h.Events {
		iv := interval{from: h.Ops[owner[k]].Start, to: far, min: e.Amount + h.MinIncrement, leader: e.UserID}
		if k+1 < len(h.Events) {
			iv.to = h.Ops[owner[k+1]].End
		}
		byPrice[e.Amount] = append(byPrice[e.Amount], iv)
	}
	for _, o := range h.Ops {
		if o.Status != http.StatusConflict || o.MaybeApplied {
			continue
		}
		current, reached := false, false
		for _, iv := range byPrice[o.Current] {
			// A leader's maximum is refused at any amount that does not
			// raise it, which only the leader knows.
			leaderMax := o.Max && iv.leader == o.UserID
			if o.Amount >= iv.min && !leaderMax || o.End.Before(iv.from) {
				continue
			}
			reached = true
			if !o.Start.After(iv.to) {
				current = true
			}
		}
		switch {
		case current:
		case reached && h.StaleRejections:
			res.Stale++
		default:
			tb.Errorf("rejection of %v by %s named current_bid %v, which was not current (or not above the bid) during its request [%v, %v]",
				o.Amount, o.UserID, o.Current, o.Start.Format(time.StampMicro), o.End.Format(time.StampMicro))
		}
	}
	if n := res.Accepted + res.Applied + res.Rejected + res.Unavailable + others; n != len(h.Ops) {
		tb.Errorf("%d accepted + %d applied + %d rejected + %d unavailable = %d, but %d bids", res.Accepted, res.Applied, res.Rejected, res.Unavailable, n, len(h.Ops))
	}
	return res
}

// bidAt says whether e can be o's own event: the same bidder at its
// amount, or at most its maximum.
func (o Op) bidAt(e models.Event) bool {
	return o.UserID == e.UserID && (e.Amount == o.Amount || o.Max && e.Amount <= o.Amount)
}

// Final is where the auction must stand after the history's placed bids
// (answered 200, or of unknown outcome and applied: pass those as 200),
// from their values alone: the leader has the highest value, the earliest
// among equals (by its event's seq, in events); the price is the highest
// plain amount placed, or, if higher, the leader's value capped at the
// second highest value of anyone else plus the increment (the starting
// price for a lone bidder). It assumes no reserve. ok is false when
// nothing was placed.
func Final(ops []Op, events []models.Event, start, inc models.Money) (leader string, price models.Money, ok bool) {
	seqOf := map[string]uint64{}
	for _, e := range events {
		seqOf[e.EventID] = e.Seq
	}
	var top models.Money
	var topSeq uint64
	for _, o := range ops {
		if o.Status != http.StatusOK {
			continue
		}
		if !o.Max {
			price = max(price, o.Amount)
		}
		seq, has := seqOf[o.EventID]
		if !has {
			seq = ^uint64(0) // a raise in place: it came after the lead it kept
		}
		if !ok || o.Amount > top || o.Amount == top && seq < topSeq {
			leader, top, topSeq, ok = o.UserID, o.Amount, seq, true
		}
	}
	if !ok {
		return "", 0, false
	}
	second := models.Money(-1)
	for _, o := range ops {
		if o.Status == http.StatusOK && o.UserID != leader {
			second = max(second, o.Amount)
		}
	}
	ceiling := start
	if second >= 0 {
		ceiling = second + inc
	}
	return leader, max(price, min(top, ceiling)), true
}

// String sums the result up for a test log.
func (r Result) String() string {
	return fmt.Sprintf("%d accepted, %d applied of unknown outcome, %d rejected (%d quoting a superseded price), %d unavailable",
		r.Accepted, r.Applied, r.Rejected, r.Stale, r.Unavailable)
}
