package models

import (
	"errors"
	"time"
)

// Status is where an auction is in its life: scheduled → active → closed,
// or cancelled before it closes.
type Status string

const (
	StatusScheduled Status = "scheduled"
	StatusActive    Status = "active"
	StatusClosed    Status = "closed"
	StatusCancelled Status = "cancelled"
)

// Item is one lot and its live auction state. The first five fields are the
// documented GET /api/v1/items/{id} shape; the rest extend it.
type Item struct {
	ID              string    `json:"id"`
	Name            string    `json:"name"`
	CurrentBid      Money     `json:"current_bid"`
	HighestBidderID string    `json:"highest_bidder_id"`
	Status          Status    `json:"status"`
	StartingPrice   Money     `json:"starting_price"`
	MinIncrement    Money     `json:"min_increment"`
	ReservePrice    Money     `json:"reserve_price,omitempty"`
	StartsAt        time.Time `json:"starts_at"`
	EndsAt          time.Time `json:"ends_at"`
	BidCount        int64     `json:"bid_count"`
	// Seq is the per-item sequence number of the last event; viewers use it
	// to resume without gaps.
	Seq uint64 `json:"seq"`
	// LeaderMax is the leader's maximum bid: the most the rules will bid
	// for it. It is the leader's secret, never in an answer, event or log
	// line; zero or the current bid when the leader bid plainly.
	LeaderMax Money `json:"-"`
	// Extensions counts the times soft close moved the end.
	Extensions int64 `json:"-"`
	// SellerID is who created the auction: the creator's token subject.
	// Empty for items created without authentication.
	SellerID string `json:"seller_id,omitempty"`
}

// leaderMax is the most the leader has agreed to pay.
func (it Item) leaderMax() Money { return max(it.LeaderMax, it.CurrentBid) }

// MinNextBid is the lowest amount that can win right now: the starting price
// before any bid, then the current bid plus the minimum increment.
func (it Item) MinNextBid() Money {
	if it.BidCount == 0 || it.HighestBidderID == "" {
		return it.StartingPrice
	}
	return it.CurrentBid + it.MinIncrement
}

// ReserveMet says whether the current bid is high enough to sell.
func (it Item) ReserveMet() bool {
	return it.BidCount > 0 && it.HighestBidderID != "" && it.CurrentBid >= it.ReservePrice
}

// ErrInvalidID is returned for an item or user id outside IDPattern.
var ErrInvalidID = errors.New("id must be 1-64 characters of letters, digits, '_' or '-'")

// IDPattern documents what ValidateID accepts. Ids become NATS subject tokens
// and Redis key parts, so dots, spaces, braces and wildcards are excluded.
const IDPattern = `^[A-Za-z0-9_-]{1,64}$`

// ValidateID checks an item or user id against IDPattern.
func ValidateID(id string) error {
	if len(id) == 0 || len(id) > 64 {
		return ErrInvalidID
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return ErrInvalidID
		}
	}
	return nil
}
