package models

import "time"

// The auction rules, stated once. The gateway's optimistic strategy and its
// pre-filter call them; the Lua scripts in api-gateway/internal/redis/lua
// implement the same rules, and one case table (models/rulestest) checks
// both, so they cannot drift apart.

// Outcome is the decision on one bid. The numbers are stored in idempotency
// records and returned by the Lua scripts: never renumber them.
type Outcome int

const (
	// OutcomeAccepted: the bid is the new highest.
	OutcomeAccepted Outcome = 1
	// OutcomeTooLow: the amount is below the minimum next bid. A tie with
	// the current bid is too low: the earlier bid wins.
	OutcomeTooLow Outcome = 2
	// OutcomeNotFound: no such item.
	OutcomeNotFound Outcome = 3
	// OutcomeNotActive: the auction is scheduled, closed or cancelled.
	OutcomeNotActive Outcome = 4
	// OutcomeIdempotencyConflict: the idempotency key was used before for
	// another bid.
	OutcomeIdempotencyConflict Outcome = 5
	// OutcomeOutbid: the bid was placed and moved the price, and the
	// leader's maximum outbid it at once with an automatic bid.
	OutcomeOutbid Outcome = 6
	// OutcomeTooManyKeys: the bidder has used up the Idempotency-Keys a
	// user may open on one item in a day; nothing was decided.
	OutcomeTooManyKeys Outcome = 7
)

// Placed says whether the bid was accepted: it counts, whether or not it
// leads.
func (o Outcome) Placed() bool { return o == OutcomeAccepted || o == OutcomeOutbid }

func (o Outcome) String() string {
	switch o {
	case OutcomeAccepted:
		return "accepted"
	case OutcomeTooLow:
		return "too_low"
	case OutcomeNotFound:
		return "not_found"
	case OutcomeNotActive:
		return "not_active"
	case OutcomeIdempotencyConflict:
		return "idempotency_conflict"
	case OutcomeOutbid:
		return "outbid"
	case OutcomeTooManyKeys:
		return "too_many_keys"
	}
	return "unknown"
}

// StatusAt is the auction's status at now. Only a close or a cancellation
// is ever stored as final; otherwise the start and end times decide, on
// every read, so that an auction opens and ends on time without a write.
// A zero start means "already started" and a zero end "never ends".
func StatusAt(stored Status, startsAt, endsAt, now time.Time) Status {
	switch {
	case stored == StatusClosed || stored == StatusCancelled:
		return stored
	case !endsAt.IsZero() && !now.Before(endsAt):
		return StatusClosed
	case !startsAt.IsZero() && now.Before(startsAt):
		return StatusScheduled
	}
	return StatusActive
}

// BidAttempt is one bid as the rules see it.
type BidAttempt struct {
	UserID string
	Amount Money
	// Max makes Amount the most the bidder will pay: the rules then bid for
	// them, one increment at a time and only as far as needed, now and
	// whenever someone else bids later.
	Max bool
	// SoftClose: a bid accepted less than this before the end moves the end
	// to now+SoftClose. Zero disables it.
	SoftClose time.Duration
	// MaxExtensions caps how often soft close may move an auction's end
	// (zero: no cap), so that a bidding war cannot keep it open for ever.
	MaxExtensions int64
}

// PriceStep is one visible change of the price: one bid event.
type PriceStep struct {
	UserID      string
	Amount      Money
	PreviousBid Money
	// Auto marks a bid the rules placed for a leader's maximum.
	Auto bool
	// PreviousBidderID is who led before the step ("" before the first
	// bid); AutoAnswered marks a step the next step of the same decision
	// answers with the leader's automatic bid. See models.Event.
	PreviousBidderID string
	AutoAnswered     bool
	Seq              uint64
	BidCount         int64
	// LeaderMax is the leader's maximum after the step. It is stored and
	// logged with the event so that a restored item keeps it, and never
	// shown.
	LeaderMax Money
}

// Decision is the rules' answer to one bid on an item at a moment.
type Decision struct {
	Outcome Outcome
	// Status is the auction's status when the bid was decided.
	Status Status
	// Item is the item after the decision: unchanged unless the bid was
	// placed, when it holds the new price, leader, maximum, count, seq and
	// (soft close) end.
	Item Item
	// Steps are the price changes the bid made, in seq order: the bid
	// itself, then the automatic bid it triggered (the bid's step is then
	// AutoAnswered, and the automatic step names its bidder as the
	// previous one). A leader raising its own maximum moves no price and
	// makes none (unless it lifts the price to the reserve).
	Steps []PriceStep
}

// Decide applies the auction rules to one bid on it at now. it.Status is
// the stored status (see StatusAt). A bid needs the auction active and at
// least the minimum next bid. Against a leader's maximum M (for a plain
// bid, its amount), a bid of V from another user leads if V > M: a plain
// bid at V, a maximum at min(V, M+increment); otherwise the leader keeps
// the lead at min(M, V+increment), the earlier bid winning a tie. A maximum
// whose price would stay below a reserve it reaches is lifted to the
// reserve. Each price change takes the next seq and names the leader
// before it.
func Decide(it Item, b BidAttempt, now time.Time) Decision {
	st := StatusAt(it.Status, it.StartsAt, it.EndsAt, now)
	d := Decision{Outcome: OutcomeNotActive, Status: st, Item: it}
	d.Item.Status = st
	if st != StatusActive {
		return d
	}
	first := it.BidCount == 0 || it.HighestBidderID == ""
	if b.Amount < it.MinNextBid() || (!first && b.Amount <= it.CurrentBid) {
		d.Outcome = OutcomeTooLow
		return d
	}
	top, v := it.leaderMax(), b.Amount
	// lift raises a price set by a maximum to the reserve the maximum
	// reaches: the seller's minimum is what such a bidder agreed to pay.
	lift := func(price, max Money) Money {
		if price < it.ReservePrice && max >= it.ReservePrice {
			return it.ReservePrice
		}
		return price
	}
	d.Outcome = OutcomeAccepted
	switch {
	case first:
		price := v
		if b.Max {
			price = lift(it.StartingPrice, v)
		}
		d.step(b.UserID, price, false, v)
	case b.UserID == it.HighestBidderID && b.Max:
		if v <= top {
			d.Outcome = OutcomeTooLow
			return d
		}
		d.Item.LeaderMax = v
		if price := lift(it.CurrentBid, v); price != it.CurrentBid {
			d.step(b.UserID, price, true, v)
		}
	case b.UserID == it.HighestBidderID:
		d.step(b.UserID, v, false, max(top, v))
	case v > top:
		price := v
		if b.Max {
			price = lift(min(v, top+it.MinIncrement), v)
		}
		d.step(b.UserID, price, false, v)
	default:
		d.Outcome = OutcomeOutbid
		leader := it.HighestBidderID
		d.step(b.UserID, v, false, v)
		d.Steps[0].AutoAnswered = true
		d.step(leader, lift(min(top, v+it.MinIncrement), top), true, top)
	}
	if len(d.Steps) > 0 && b.SoftClose > 0 && !it.EndsAt.IsZero() && it.EndsAt.Sub(now) < b.SoftClose &&
		(b.MaxExtensions == 0 || it.Extensions < b.MaxExtensions) {
		d.Item.EndsAt = now.Add(b.SoftClose)
		d.Item.Extensions++
	}
	return d
}

// step records one price change on the decision's item.
func (d *Decision) step(user string, price Money, auto bool, leaderMax Money) {
	it := &d.Item
	d.Steps = append(d.Steps, PriceStep{
		UserID: user, Amount: price, PreviousBid: it.CurrentBid, Auto: auto, PreviousBidderID: it.HighestBidderID,
		Seq: it.Seq + 1, BidCount: it.BidCount + 1, LeaderMax: leaderMax,
	})
	it.CurrentBid, it.HighestBidderID, it.LeaderMax = price, user, leaderMax
	it.BidCount++
	it.Seq++
}

// Close closes the auction at now if its end has passed and it is not
// closed yet (closing happens once). The close takes the item's next seq,
// for its auction_closed event.
func Close(it Item, now time.Time) (closed Item, ok bool) {
	if it.Status == StatusClosed || it.Status == StatusCancelled ||
		StatusAt(it.Status, it.StartsAt, it.EndsAt, now) != StatusClosed {
		return it, false
	}
	it.Status = StatusClosed
	it.Seq++
	return it, true
}

// Why a cancellation is refused. Cancel and api-gateway's cancel.lua give
// the same answers in the same order: permission first, then state.
var (
	ErrCancelForbidden = &Error{Kind: KindForbidden, Message: "only the item's seller or an admin may cancel this auction"}
	ErrAuctionFinal    = &Error{Kind: KindConflict, Message: "the auction is already closed or cancelled"}
	ErrCancelAfterBid  = &Error{Kind: KindConflict, Message: "the auction has bids: only an admin may cancel it now"}
)

// Cancel cancels the auction at now on behalf of by. An admin may cancel
// any auction that has not ended; its seller only before the first bid,
// since bidders are committed once they bid. Anyone else is refused
// whatever the state. The cancellation takes the item's next seq, for its
// auction_cancelled event.
func Cancel(it Item, by string, admin bool, now time.Time) (Item, error) {
	if !admin && (it.SellerID == "" || by != it.SellerID) {
		return it, ErrCancelForbidden
	}
	if st := StatusAt(it.Status, it.StartsAt, it.EndsAt, now); st == StatusClosed || st == StatusCancelled {
		return it, ErrAuctionFinal
	}
	if !admin && it.BidCount > 0 {
		return it, ErrCancelAfterBid
	}
	it.Status = StatusCancelled
	it.Seq++
	return it, nil
}

// CloseOutcome is who won a closed auction: the highest bidder if the
// highest bid meets the reserve, else nobody.
func (it Item) CloseOutcome() (winnerID string, reserveMet bool) {
	if !it.ReserveMet() {
		return "", false
	}
	return it.HighestBidderID, true
}
