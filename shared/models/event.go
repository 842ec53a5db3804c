package models

import (
	"encoding/json"
	"errors"
	"fmt"
)

// The event contract: what the gateway writes to the outbox and publishes,
// and what every consumer (the gateway's price cache, the broadcast hub,
// the archiver) reads. They all decode through DecodeEvent, so a message one
// of them refuses is refused by all, for the same reason.

var (
	// ErrInvalidEvent matches every error DecodeEvent returns.
	ErrInvalidEvent = errors.New("invalid event")
	// ErrUnknownEventType marks a well-formed event of a type this version
	// does not know: a newer producer, not a corrupt message.
	ErrUnknownEventType = errors.New("unknown event type")
)

// EventError says why a message is not a valid event. It matches
// ErrInvalidEvent with errors.Is, and ErrUnknownEventType when that is why.
type EventError struct {
	EventID string
	Problem string
	Err     error
}

func (e *EventError) Error() string {
	id := e.EventID
	if id == "" {
		id = "without id"
	}
	if e.Err != nil {
		return fmt.Sprintf("invalid event %s: %s: %v", id, e.Problem, e.Err)
	}
	return fmt.Sprintf("invalid event %s: %s", id, e.Problem)
}

func (e *EventError) Is(target error) bool { return target == ErrInvalidEvent }

func (e *EventError) Unwrap() error { return e.Err }

// DecodeEvent parses one event and checks it against the contract. Unknown
// fields are allowed, so that consumers keep working while producers add
// fields; unknown types are not, since nobody could apply them.
func DecodeEvent(data []byte) (Event, error) {
	var e Event
	if err := json.Unmarshal(data, &e); err != nil {
		return Event{}, &EventError{Problem: "not an event's JSON", Err: err}
	}
	if err := e.Validate(); err != nil {
		return Event{}, err
	}
	return e, nil
}

// Validate checks an event against the contract; DecodeEvent calls it.
func (e Event) Validate() error {
	bad := func(format string, args ...any) error {
		return &EventError{EventID: e.EventID, Problem: fmt.Sprintf(format, args...)}
	}
	switch {
	case e.EventID == "":
		return bad("no event_id")
	case ValidateID(e.EventID) != nil:
		return bad("event_id %q is not an id", e.EventID)
	case ValidateID(e.ItemID) != nil:
		return bad("item_id %q is not an id", e.ItemID)
	case e.Seq == 0:
		return bad("no seq")
	case e.Amount < 0 || e.PreviousBid < 0:
		return bad("negative amount")
	case e.Amount > MaxMoney || e.PreviousBid > MaxMoney:
		return bad("amount above %v", MaxMoney)
	case e.BidCount < 0:
		return bad("negative bid_count")
	case e.SellerID != "" && ValidateID(e.SellerID) != nil:
		return bad("seller_id %q is not an id", e.SellerID)
	}
	switch e.Type {
	case EventBid:
		switch {
		case e.BidID == "":
			return bad("bid event has no bid_id")
		case ValidateID(e.UserID) != nil:
			return bad("bid event's user_id %q is not an id", e.UserID)
		case e.Amount == 0:
			return bad("bid event has no amount")
		case e.PreviousBid > e.Amount || e.PreviousBid == e.Amount && !e.Auto:
			// An automatic bid may equal the bid it answers: a tie
			// with the leader's maximum goes to the leader.
			return bad("bid event's amount %v is not above previous_bid %v", e.Amount, e.PreviousBid)
		case e.Timestamp.IsZero():
			return bad("bid event has no timestamp")
		case e.PreviousBidderID != "" && ValidateID(e.PreviousBidderID) != nil:
			return bad("bid event's previous_bidder_id %q is not an id", e.PreviousBidderID)
		case e.Auto && e.AutoAnswered:
			return bad("an automatic bid is never answered by another")
		}
	case EventAuctionClosed:
		if e.WinnerID != "" && ValidateID(e.WinnerID) != nil {
			return bad("winner_id %q is not an id", e.WinnerID)
		}
	case EventAuctionCancelled:
		switch {
		case e.WinnerID != "":
			return bad("a cancelled auction has no winner")
		case e.UserID != "" && ValidateID(e.UserID) != nil:
			return bad("auction_cancelled's user_id %q is not an id", e.UserID)
		case e.Timestamp.IsZero():
			return bad("auction_cancelled event has no timestamp")
		}
	case "":
		return bad("no type")
	default:
		return &EventError{EventID: e.EventID, Problem: fmt.Sprintf("type %q", e.Type), Err: ErrUnknownEventType}
	}
	return nil
}
