package models

import "time"

// Event types carried on an item's subject, in seq order.
const (
	EventBid           = "bid"
	EventAuctionClosed = "auction_closed"
	// EventAuctionCancelled ends an auction without a winner: its seller
	// withdrew it before the first bid, or an admin removed it.
	EventAuctionCancelled = "auction_cancelled"
)

// Bid is one accepted bid as it is archived.
type Bid struct {
	BidID       string    `json:"bid_id"`
	EventID     string    `json:"event_id"`
	ItemID      string    `json:"item_id"`
	UserID      string    `json:"user_id"`
	Amount      Money     `json:"amount"`
	PreviousBid Money     `json:"previous_bid"`
	Seq         uint64    `json:"seq"`
	Timestamp   time.Time `json:"timestamp"`
	// Auto marks a bid the platform placed for a bidder's maximum.
	Auto bool `json:"auto,omitempty"`
}

// Event is what the gateway publishes on an item's subject and what viewers
// receive. A bid event has the documented WebSocket message fields plus type
// and seq; an auction_closed event names the winner (empty when the reserve
// was not met or nobody bid); an auction_cancelled event ends the auction
// without one.
type Event struct {
	Type        string    `json:"type"`
	EventID     string    `json:"event_id"`
	ItemID      string    `json:"item_id"`
	BidID       string    `json:"bid_id,omitempty"`
	UserID      string    `json:"user_id,omitempty"`
	Amount      Money     `json:"amount"`
	PreviousBid Money     `json:"previous_bid"`
	Timestamp   time.Time `json:"timestamp"`
	Seq         uint64    `json:"seq"`
	// Auto marks a bid the platform placed for the leader's maximum, in
	// answer to the bid just before it.
	Auto bool `json:"auto,omitempty"`
	// PreviousBidderID is who led the item before this bid event ("" for
	// the first bid), so that a personal channel can tell them they were
	// outbid without keeping every item's state.
	PreviousBidderID string `json:"previous_bidder_id,omitempty"`
	// AutoAnswered marks a bid event that the leader's automatic bid
	// answers in the next event of the same decision: the leader never
	// lost the lead and is not told they were outbid.
	AutoAnswered bool `json:"auto_answered,omitempty"`
	// EndsAt is the auction's end after this event, which soft close may have
	// moved; countdowns follow it.
	EndsAt   *time.Time `json:"ends_at,omitempty"`
	WinnerID string     `json:"winner_id,omitempty"`
	// BidCount is the item's number of accepted bids after this event.
	BidCount int64 `json:"bid_count,omitempty"`
	// An auction_closed event also describes the item, so that the archive
	// holds the whole item once the live store has let it go.
	Name          string     `json:"name,omitempty"`
	StartingPrice Money      `json:"starting_price,omitempty"`
	MinIncrement  Money      `json:"min_increment,omitempty"`
	ReservePrice  Money      `json:"reserve_price,omitempty"`
	StartsAt      *time.Time `json:"starts_at,omitempty"`
	// SellerID, in an auction_closed or auction_cancelled event, is who
	// created the item; an auction_cancelled event's UserID is who
	// cancelled it (empty without authentication).
	SellerID string `json:"seller_id,omitempty"`
}

// Bid returns the archived form of a bid event.
func (e Event) Bid() Bid {
	return Bid{
		BidID:       e.BidID,
		EventID:     e.EventID,
		ItemID:      e.ItemID,
		UserID:      e.UserID,
		Amount:      e.Amount,
		PreviousBid: e.PreviousBid,
		Seq:         e.Seq,
		Timestamp:   e.Timestamp,
		Auto:        e.Auto,
	}
}

// BidPage is one page of an item's archived bid history, newest first.
// NextCursor is empty on the last page; passing it back continues after the
// page's oldest bid, so bids archived meanwhile never shift the pages.
type BidPage struct {
	ItemID     string `json:"item_id"`
	Bids       []Bid  `json:"bids"`
	NextCursor string `json:"next_cursor,omitempty"`
}

// ErrBadCursor is returned for a history cursor that was not issued by us.
var ErrBadCursor = &Error{Kind: KindInvalid, Message: "cursor is not valid for this item's history"}
