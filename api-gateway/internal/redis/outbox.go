package redis

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/bidding-platform/api-gateway/internal/service"
	"github.com/bidding-platform/shared/models"
)

// closeBatch bounds how many due auctions one CloseDue call handles; the
// next call takes the rest.
const closeBatch = 256

// CloseDue closes every open auction whose end has passed. Candidates come
// from the end-time hint; close.lua re-checks each against the item hash and
// Redis TIME, so soft close extensions and concurrent callers on other
// gateways are safe: each auction closes exactly once.
func (s *Store) CloseDue(ctx context.Context) ([]service.OutboxEntry, error) {
	if err := s.scanOpen(ctx); err != nil {
		return nil, fmt.Errorf("close due auctions: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.OpTimeout)
	defer cancel()
	now, err := s.redisTime(ctx)
	if err != nil {
		return nil, fmt.Errorf("close due auctions: %w", classify(err))
	}
	ids, err := s.rdb.ZRangeArgs(ctx, goredis.ZRangeArgs{
		Key: s.endsKey(), Start: "-inf", Stop: strconv.FormatInt(now.UnixMilli(), 10),
		ByScore: true, Count: closeBatch,
	}).Result()
	if err != nil {
		return nil, fmt.Errorf("close due auctions: %w", classify(err))
	}
	var out []service.OutboxEntry
	for _, id := range ids {
		e, closed, err := s.closeOne(ctx, id)
		if err != nil {
			return out, fmt.Errorf("close auction %s: %w", id, err)
		}
		if closed {
			out = append(out, e)
		}
	}
	if len(out) > 0 {
		members := make([]any, len(out))
		for i, e := range out {
			members[i] = e.Event.ItemID
		}
		// If this fails the events are still in the outboxes, where the
		// relay's periodic scan finds them.
		_ = s.rdb.SAdd(ctx, s.outboxesKey(), members...).Err()
	}
	return out, nil
}

func (s *Store) closeOne(ctx context.Context, id string) (service.OutboxEntry, bool, error) {
	if models.ValidateID(id) != nil {
		return service.OutboxEntry{}, false, classify(s.rdb.ZRem(ctx, s.endsKey(), id).Err())
	}
	res, err := closeScript.Run(ctx, s.rdb, []string{s.itemKey(id), s.outboxKey(id)}, id, models.NewEventID()).Slice()
	if err != nil {
		return service.OutboxEntry{}, false, classify(err)
	}
	switch toInt(res[0]) {
	case 2: // not due: soft close moved the end, so the hint follows it
		if toInt(res[1]) == 0 {
			return service.OutboxEntry{}, false, classify(s.rdb.ZRem(ctx, s.endsKey(), id).Err())
		}
		err := s.rdb.ZAddXX(ctx, s.endsKey(), goredis.Z{Score: float64(toInt(res[1])), Member: id}).Err()
		return service.OutboxEntry{}, false, classify(err)
	case 3:
		var ev models.Event
		if err := json.Unmarshal([]byte(toString(res[2])), &ev); err != nil {
			return service.OutboxEntry{}, false, fmt.Errorf("decode event: %w", err)
		}
		// Closed and recorded: if the ZREM fails, the stale hint only costs
		// a later no-op script call, which removes it.
		_ = s.rdb.ZRem(ctx, s.endsKey(), id).Err()
		return service.OutboxEntry{ID: toString(res[1]), Event: ev}, true, nil
	default: // unknown or already closed
		return service.OutboxEntry{}, false, classify(s.rdb.ZRem(ctx, s.endsKey(), id).Err())
	}
}

// Pending returns up to max outbox entries appended more than olderThan ago
// (by Redis's clock, which stamps the stream ids), oldest first across all
// items.
func (s *Store) Pending(ctx context.Context, olderThan time.Duration, max int) ([]service.OutboxEntry, error) {
	if max <= 0 {
		return nil, nil
	}
	if err := s.scanOrphans(ctx); err != nil {
		return nil, fmt.Errorf("outbox pending: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.OpTimeout)
	defer cancel()
	now, err := s.redisTime(ctx)
	if err != nil {
		return nil, fmt.Errorf("outbox pending: %w", classify(err))
	}
	ids, err := s.rdb.SMembers(ctx, s.outboxesKey()).Result()
	if err != nil {
		return nil, fmt.Errorf("outbox pending: %w", classify(err))
	}
	if len(ids) == 0 {
		return nil, nil
	}
	cutoff := strconv.FormatInt(now.Add(-olderThan).UnixMilli(), 10)
	ranges := make([]*goredis.XMessageSliceCmd, len(ids))
	lens := make([]*goredis.IntCmd, len(ids))
	if _, err := s.rdb.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for i, id := range ids {
			ranges[i] = p.XRangeN(ctx, s.outboxKey(id), "-", cutoff, int64(max))
			lens[i] = p.XLen(ctx, s.outboxKey(id))
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("outbox pending: %w", classify(err))
	}
	var out []service.OutboxEntry
	var empty []string
	for i, id := range ids {
		if lens[i].Val() == 0 {
			empty = append(empty, id)
			continue
		}
		for _, m := range ranges[i].Val() {
			e, err := decodeEntry(m)
			if err != nil {
				return nil, fmt.Errorf("outbox of %s: %w", id, err)
			}
			out = append(out, e)
		}
	}
	if err := s.dropHints(ctx, empty); err != nil {
		return nil, fmt.Errorf("outbox pending: %w", err)
	}
	slices.SortFunc(out, func(a, b service.OutboxEntry) int {
		if c := compareStreamIDs(a.ID, b.ID); c != 0 {
			return c
		}
		return strings.Compare(a.Event.ItemID, b.Event.ItemID)
	})
	if len(out) > max {
		out = out[:max]
	}
	return out, nil
}

// Ack deletes entries that JetStream has stored and drops the hint of every
// outbox left empty.
func (s *Store) Ack(ctx context.Context, entries ...service.OutboxEntry) error {
	if len(entries) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.OpTimeout)
	defer cancel()
	byItem := make(map[string][]string)
	for _, e := range entries {
		byItem[e.Event.ItemID] = append(byItem[e.Event.ItemID], e.ID)
	}
	items := make([]string, 0, len(byItem))
	lens := make([]*goredis.IntCmd, 0, len(byItem))
	if _, err := s.rdb.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for id, oids := range byItem {
			p.XDel(ctx, s.outboxKey(id), oids...)
			items = append(items, id)
			lens = append(lens, p.XLen(ctx, s.outboxKey(id)))
		}
		return nil
	}); err != nil {
		return fmt.Errorf("outbox ack: %w", classify(err))
	}
	var empty []string
	for i, id := range items {
		if lens[i].Val() == 0 {
			empty = append(empty, id)
		}
	}
	if err := s.dropHints(ctx, empty); err != nil {
		return fmt.Errorf("outbox ack: %w", err)
	}
	return nil
}

// dropHints removes items whose outbox was seen empty from the hint set.
// A bid may append between that look and the SREM; since writers add the
// hint after appending, looking at the stream again after the SREM and
// restoring the hint if it holds entries never loses one.
func (s *Store) dropHints(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	members := make([]any, len(ids))
	for i, id := range ids {
		members[i] = id
	}
	if err := s.rdb.SRem(ctx, s.outboxesKey(), members...).Err(); err != nil {
		return classify(err)
	}
	lens := make([]*goredis.IntCmd, len(ids))
	if _, err := s.rdb.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for i, id := range ids {
			lens[i] = p.XLen(ctx, s.outboxKey(id))
		}
		return nil
	}); err != nil {
		return s.restoreHints(ctx, members, err)
	}
	var back []any
	for i, id := range ids {
		if lens[i].Val() > 0 {
			back = append(back, id)
		}
	}
	if len(back) > 0 {
		return classify(s.rdb.SAdd(ctx, s.outboxesKey(), back...).Err())
	}
	return nil
}

// restoreHints puts hints back when the second look failed: a spare hint
// costs one empty XRANGE, a missing one delays events until the next scan.
func (s *Store) restoreHints(ctx context.Context, members []any, cause error) error {
	_ = s.rdb.SAdd(ctx, s.outboxesKey(), members...).Err() // best effort; cause is what we report
	return classify(cause)
}

// Backlog counts entries in the outboxes named by the hint set.
func (s *Store) Backlog(ctx context.Context) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.OpTimeout)
	defer cancel()
	ids, err := s.rdb.SMembers(ctx, s.outboxesKey()).Result()
	if err != nil {
		return 0, fmt.Errorf("outbox backlog: %w", classify(err))
	}
	lens := make([]*goredis.IntCmd, len(ids))
	if _, err := s.rdb.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for i, id := range ids {
			lens[i] = p.XLen(ctx, s.outboxKey(id))
		}
		return nil
	}); err != nil {
		return 0, fmt.Errorf("outbox backlog: %w", classify(err))
	}
	var n int64
	for _, l := range lens {
		n += l.Val()
	}
	return n, nil
}

func decodeEntry(m goredis.XMessage) (service.OutboxEntry, error) {
	raw, _ := m.Values["e"].(string)
	var ev models.Event
	if err := json.Unmarshal([]byte(raw), &ev); err != nil {
		return service.OutboxEntry{}, fmt.Errorf("decode entry %s: %w", m.ID, err)
	}
	return service.OutboxEntry{ID: m.ID, Event: ev}, nil
}

// compareStreamIDs orders "ms-seq" ids numerically.
func compareStreamIDs(a, b string) int {
	am, as, _ := strings.Cut(a, "-")
	bm, bs, _ := strings.Cut(b, "-")
	if c := compareNum(am, bm); c != 0 {
		return c
	}
	return compareNum(as, bs)
}

func compareNum(a, b string) int {
	if len(a) != len(b) {
		return len(a) - len(b)
	}
	return strings.Compare(a, b)
}
