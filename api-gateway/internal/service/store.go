package service

import (
	"context"
	"time"

	"github.com/bidding-platform/shared/models"
)

// BidRequest is one validated bid, ready for the store.
type BidRequest struct {
	ItemID string
	UserID string
	Amount models.Money
	// Max makes Amount the bidder's maximum (see models.BidAttempt).
	Max bool
	// IdempotencyKey is optional; the store scopes it per user and keeps it
	// at least IdempotencyTTL.
	IdempotencyKey string
	// RequestHash fingerprints (item, user, amount, max) so that a key reused with
	// another body is detected.
	RequestHash string
	// BidID and EventID are generated before the call and used if accepted.
	BidID   string
	EventID string
	// SoftClose: a bid accepted this close to the end moves the end to
	// now+SoftClose. Zero disables.
	SoftClose time.Duration
	// MaxExtensions caps how often soft close moves an item's end (zero:
	// no cap).
	MaxExtensions int64
	// MaxIdempotencyKeys caps the idempotency records one user may open on
	// one item within IdempotencyTTL (zero: no cap).
	MaxIdempotencyKeys int64
}

// BidResult is the store's answer to one BidRequest.
type BidResult struct {
	Outcome models.Outcome
	// Item is the item's state right after the decision.
	Item models.Item
	// Event is the bid's own event when it moved the price (the first
	// answer's, for a replay); nil otherwise.
	Event *models.Event
	// Entries are the events this decision appended to the outbox, in seq
	// order: the bid's own, then the automatic bid it triggered. Empty for
	// a replay, and for a leader raising its maximum without moving the
	// price.
	Entries []OutboxEntry
	// Replayed marks the stored answer of an earlier request with the same
	// idempotency key: nothing was applied this time.
	Replayed bool
}

// OutboxEntry is an accepted event waiting for JetStream's acknowledgement.
type OutboxEntry struct {
	ID    string
	Event models.Event
	// LeaderMax is the leader's maximum once this event happened. It is
	// logged beside the event (not in it), so that an item restored from
	// the log keeps it, and never shown.
	LeaderMax models.Money
}

// IdempotencyTTL is how long an idempotency key's first answer is kept.
const IdempotencyTTL = 24 * time.Hour

// Errors the store returns. They are domain errors, so the handlers map
// them to status codes by kind.
var (
	ErrItemNotFound = &models.Error{Kind: models.KindNotFound, Message: "item not found"}
	ErrItemExists   = &models.Error{Kind: models.KindConflict, Message: "item already exists"}
	// ErrUnavailable wraps any failure to reach Redis (connection refused,
	// timeout, cluster down): the answer is 503, quickly. Redis answering
	// with an error it should not give, such as a failing script, is not
	// an outage: it stays an internal error (500) with its cause logged.
	ErrUnavailable = &models.Error{Kind: models.KindUnavailable, Message: "bid store unavailable"}
	// ErrOutcomeUnknown: the connection to Redis was lost after the bid was
	// sent, so it may or may not have been applied. It is an outage (503)
	// like ErrUnavailable, which it wraps, with a message that says how to
	// learn the outcome.
	ErrOutcomeUnknown = &models.Error{Kind: models.KindUnavailable, Err: ErrUnavailable,
		Message: "Redis did not confirm the bid (connection lost), so it may have been accepted; retry with the same Idempotency-Key to learn its outcome"}
	// ErrUnchecked: Redis restarted or failed over since the item was last
	// checked against the event log, so its state may be older than what
	// was published. Nothing was decided; the service restores the item
	// from the log and asks again.
	ErrUnchecked = &models.Error{Kind: models.KindUnavailable, Message: "item not yet checked against the event log"}
)

// BidStore is the atomic auction state, implemented by internal/redis for
// both strategies (lua and optimistic).
type BidStore interface {
	// PlaceBids decides bids for ONE item in order, atomically as a group
	// (each decision sees the ones before it). Coalescing concurrent bids
	// into one call is how the gateway keeps up under contention; a single
	// bid is a group of one. len(results) == len(reqs).
	PlaceBids(ctx context.Context, reqs []BidRequest) ([]BidResult, error)
	// CreateItem stores a new item; ErrItemExists if the id is taken.
	CreateItem(ctx context.Context, it models.Item) (models.Item, error)
	// Item returns the current state; ErrItemNotFound if unknown.
	Item(ctx context.Context, id string) (models.Item, error)
	// CloseDue closes, exactly once, every active auction whose end time
	// (by Redis TIME) has passed, appending an auction_closed event to the
	// outbox for each, and returns those entries.
	// Items due but unchecked since Redis restarted (see ErrUnchecked)
	// stay open and are returned for the caller to restore.
	CloseDue(ctx context.Context) (closed []OutboxEntry, unchecked []string, err error)
	// Restore brings an item up to its last published event (nil: none),
	// recreating it from rec, its terms as created, if Redis lost it, and
	// marks it checked.
	Restore(ctx context.Context, rec models.Item, last *OutboxEntry) error
	// Cancel cancels an auction atomically with the check of models.Cancel
	// (by may cancel any auction when admin), appending an
	// auction_cancelled event to the outbox; the refusals are models'
	// ErrCancelForbidden, ErrAuctionFinal and ErrCancelAfterBid.
	Cancel(ctx context.Context, id, by string, admin bool) (OutboxEntry, error)
	// Ping checks that Redis answers.
	Ping(ctx context.Context) error
	// Instance identifies the Redis process (or the set of a cluster's
	// masters): it changes when Redis restarts or fails over.
	Instance(ctx context.Context) (string, error)
}

// OutboxStore is the Redis-side outbox that the relay drains to JetStream.
type OutboxStore interface {
	// Pending returns up to max entries appended more than olderThan ago,
	// oldest first, across all items.
	Pending(ctx context.Context, olderThan time.Duration, max int) ([]OutboxEntry, error)
	// Ack removes entries that JetStream has acknowledged.
	Ack(ctx context.Context, entries ...OutboxEntry) error
	// Backlog counts entries not yet acknowledged, for metrics.
	Backlog(ctx context.Context) (int64, error)
}
