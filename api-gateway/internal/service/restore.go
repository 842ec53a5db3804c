package service

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/bidding-platform/shared/models"
)

// EventLog is the durable record of what was published (JetStream): each
// item's terms as created, and its events. Redis holds the live state, but
// a Redis that restarted empty, or a replica that took over without the
// last writes, can be behind what viewers and the archive already have; the
// log is then the truth the gateway restores Redis from, so that an auction
// never rewinds.
type EventLog interface {
	// RecordItem stores a new item's terms; ErrItemExists if the id is
	// taken. It is what makes a creation durable.
	RecordItem(ctx context.Context, it models.Item) error
	// ItemRecord returns an item's terms as created; ErrItemNotFound if
	// none was recorded.
	ItemRecord(ctx context.Context, id string) (models.Item, error)
	// LastEvent returns the item's last published event, with the
	// leader's maximum logged beside it (the entry's ID is empty); found is
	// false if it has none.
	LastEvent(ctx context.Context, id string) (e OutboxEntry, found bool, err error)
	// ItemIDs lists every recorded item.
	ItemIDs(ctx context.Context) ([]string, error)
}

// errLogUnavailable is the answer while an item cannot be checked because
// the event log does not answer: deciding without it could rewind the
// auction.
var errLogUnavailable = &models.Error{Kind: models.KindUnavailable,
	Message: "the auction cannot be checked against the event log (NATS unreachable); retry shortly"}

// check brings one item up to the event log: Redis lost it (ErrItemNotFound
// from the store) or has not checked it since Redis restarted or failed
// over (ErrUnchecked). Concurrent callers for one item share one check.
// ErrItemNotFound means the log has no such item either.
func (s *Service) check(ctx context.Context, id string) error {
	if s.cfg.Log == nil {
		return ErrItemNotFound
	}
	ch := s.checks.DoChan(id, func() (any, error) {
		// Not the caller's context: the check serves every caller waiting
		// on this item, and is worth finishing if the first one left.
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.StoreTimeout)
		defer cancel()
		return nil, s.restore(ctx, id)
	})
	select {
	case r := <-ch:
		return r.Err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Service) restore(ctx context.Context, id string) error {
	rec, err := s.cfg.Log.ItemRecord(ctx, id)
	switch {
	case errors.Is(err, ErrItemNotFound):
		// Created before the log kept items, or never: Redis is all
		// there is. An item it still holds is marked checked as it is.
		rec = models.Item{ID: id}
	case err != nil:
		return fmt.Errorf("%w: %w", errLogUnavailable, err)
	}
	last, found, err := s.cfg.Log.LastEvent(ctx, id)
	if err != nil {
		return fmt.Errorf("%w: %w", errLogUnavailable, err)
	}
	var lastp *OutboxEntry
	if found {
		lastp = &last
	}
	if err := s.store.Restore(ctx, rec, lastp); err != nil {
		return fmt.Errorf("check item %s against the event log: %w", id, err)
	}
	if found || rec.Name != "" {
		s.log.Info("item checked against the event log", "item_id", id, "seq", last.Event.Seq)
	}
	return nil
}

// sweep brings every recorded item that Redis does not hold, or holds
// unchecked, up to the event log. It runs when Redis is a new instance
// (restarted, failed over, or first seen by this gateway), which is when
// items may have been lost together with their end-time hints. The checks
// are shared with concurrent bids and reads of the same items.
func (s *Service) sweep(ctx context.Context) error {
	if s.cfg.Log == nil {
		return nil
	}
	lctx, cancel := context.WithTimeout(ctx, time.Minute)
	ids, err := s.cfg.Log.ItemIDs(lctx)
	cancel()
	if err != nil {
		return fmt.Errorf("%w: %w", errLogUnavailable, err)
	}
	restored := 0
	for _, id := range ids {
		ictx, cancel := context.WithTimeout(ctx, s.cfg.StoreTimeout)
		_, err := s.store.Item(ictx, id)
		cancel()
		switch {
		case err == nil:
			continue
		case !errors.Is(err, ErrItemNotFound) && !errors.Is(err, ErrUnchecked):
			return fmt.Errorf("sweep item %s: %w", id, err)
		}
		if err := s.check(ctx, id); err != nil && !errors.Is(err, ErrItemNotFound) {
			return fmt.Errorf("sweep item %s: %w", id, err)
		}
		restored++
	}
	if restored > 0 {
		s.log.Info("restored items from the event log", "items", restored, "recorded", len(ids))
	}
	return nil
}
