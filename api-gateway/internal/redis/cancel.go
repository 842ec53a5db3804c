package redis

import (
	"context"
	"fmt"

	"github.com/bidding-platform/api-gateway/internal/service"
	"github.com/bidding-platform/shared/models"
)

// Cancel cancels an auction for by (admin: may cancel any auction that has
// not ended) as models.Cancel decides, atomically with the check, and
// appends its auction_cancelled event to the item's outbox. The refusals
// are models.ErrCancelForbidden, models.ErrAuctionFinal and
// models.ErrCancelAfterBid; an unknown item is service.ErrItemNotFound.
func (s *Store) Cancel(ctx context.Context, id, by string, admin bool) (service.OutboxEntry, error) {
	if err := models.ValidateID(id); err != nil {
		return service.OutboxEntry{}, fmt.Errorf("cancel item %q: %w", id, service.ErrItemNotFound)
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.OpTimeout)
	defer cancel()
	flag := "0"
	if admin {
		flag = "1"
	}
	res, err := s.scripts.cancel.Run(ctx, s.rdb, []string{s.itemKey(id), s.outboxKey(id)}, id, models.NewEventID(),
		by, flag, s.cfg.ClosedRetention.Milliseconds(), s.scriptDeadline(ctx)).Slice()
	if err != nil {
		return service.OutboxEntry{}, fmt.Errorf("cancel item %s: %w", id, classify(err))
	}
	switch toInt(res[0]) {
	case -1:
		return service.OutboxEntry{}, fmt.Errorf("cancel item %s: %w: redis ran the script after its deadline", id, service.ErrUnavailable)
	case 0:
		return service.OutboxEntry{}, fmt.Errorf("cancel item %s: %w", id, service.ErrItemNotFound)
	case 4:
		return service.OutboxEntry{}, fmt.Errorf("cancel item %s: %w", id, service.ErrUnchecked)
	case 5:
		return service.OutboxEntry{}, models.ErrCancelForbidden
	case 6:
		return service.OutboxEntry{}, models.ErrAuctionFinal
	case 7:
		return service.OutboxEntry{}, models.ErrCancelAfterBid
	case 3:
	default:
		return service.OutboxEntry{}, fmt.Errorf("cancel item %s: unexpected reply %v", id, res)
	}
	ev, err := models.DecodeEvent([]byte(toString(res[2])))
	if err != nil {
		return service.OutboxEntry{}, fmt.Errorf("cancel script's event: %w", err)
	}
	// Cancelled and recorded: a stale end-time hint only costs the closer
	// a no-op, and a stale listing a read, which remove them; the outbox
	// hint tells the relay where to look if this gateway dies before
	// publishing.
	_ = s.unlist(ctx, id)
	_ = s.rdb.SAdd(ctx, s.outboxesKey(), id).Err()
	return service.OutboxEntry{ID: toString(res[1]), Event: ev}, nil
}
