package redis

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
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
// gateways are safe: each auction closes exactly once. Due items that Redis
// holds but has not checked against the event log since it restarted or
// failed over are left open and returned as unchecked: the caller restores
// them from the log, and a later call closes them on the right state.
func (s *Store) CloseDue(ctx context.Context) (closed []service.OutboxEntry, unchecked []string, err error) {
	if err := s.scanOpen(ctx); err != nil {
		return nil, nil, fmt.Errorf("close due auctions: %w", err)
	}
	if err := s.scanSellers(ctx); err != nil {
		return nil, nil, fmt.Errorf("close due auctions: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.OpTimeout)
	defer cancel()
	now, err := s.redisTime(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("close due auctions: %w", classify(err))
	}
	ids, err := s.rdb.ZRangeArgs(ctx, goredis.ZRangeArgs{
		Key: s.endsKey(), Start: "-inf", Stop: strconv.FormatInt(now.UnixMilli(), 10),
		ByScore: true, Count: closeBatch,
	}).Result()
	if err != nil {
		return nil, nil, fmt.Errorf("close due auctions: %w", classify(err))
	}
	var out []service.OutboxEntry
	for _, id := range ids {
		e, done, err := s.closeOne(ctx, id)
		if errors.Is(err, service.ErrUnchecked) {
			unchecked = append(unchecked, id)
			continue
		}
		if err != nil {
			return out, unchecked, fmt.Errorf("close auction %s: %w", id, err)
		}
		if done {
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
	return out, unchecked, nil
}

func (s *Store) closeOne(ctx context.Context, id string) (service.OutboxEntry, bool, error) {
	if models.ValidateID(id) != nil {
		return service.OutboxEntry{}, false, classify(s.rdb.ZRem(ctx, s.endsKey(), id).Err())
	}
	res, err := s.scripts.close.Run(ctx, s.rdb, []string{s.itemKey(id), s.outboxKey(id)}, id, models.NewEventID(),
		s.cfg.ClosedRetention.Milliseconds()).Slice()
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
		ev, err := models.DecodeEvent([]byte(toString(res[2])))
		if err != nil {
			return service.OutboxEntry{}, false, fmt.Errorf("close script's event: %w", err)
		}
		// Closed and recorded: if a ZREM fails, the stale hint only costs
		// a later no-op script call, or a listing's read, which removes it.
		_ = s.unlist(ctx, id)
		return service.OutboxEntry{ID: toString(res[1]), Event: ev}, true, nil
	case 4:
		return service.OutboxEntry{}, false, fmt.Errorf("close auction %s: %w", id, service.ErrUnchecked)
	default: // unknown or already closed
		return service.OutboxEntry{}, false, classify(s.unlist(ctx, id))
	}
}

// Pending returns up to max outbox entries appended more than olderThan ago
// (by Redis's clock, which stamps the stream ids), oldest first. Each item's
// entries come in order, oldest first. One call reads about max entries
// however many items have a backlog: it looks at up to max hinted items,
// taking up where the previous call stopped, and shares max out between
// them, so that after an outage of NATS a large backlog drains in bounded
// steps instead of every call reading all of it.
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
	ids, err := s.hintedItems(ctx, max)
	if err != nil || len(ids) == 0 {
		return nil, err
	}
	sizes, err := s.outboxLengths(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("outbox pending: %w", classify(err))
	}
	var empty []string
	for i, id := range ids {
		if sizes[i] == 0 {
			empty = append(empty, id)
		}
	}
	if err := s.dropHints(ctx, empty); err != nil {
		return nil, fmt.Errorf("outbox pending: %w", err)
	}
	shares := fairShares(sizes, max)
	cutoff := strconv.FormatInt(now.Add(-olderThan).UnixMilli(), 10)
	ranges := make([]*goredis.XMessageSliceCmd, len(ids))
	if _, err := s.rdb.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for i, id := range ids {
			if shares[i] > 0 {
				ranges[i] = p.XRangeN(ctx, s.outboxKey(id), "-", cutoff, shares[i])
			}
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("outbox pending: %w", classify(err))
	}
	var out []service.OutboxEntry
	for i, id := range ids {
		if ranges[i] == nil {
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
	slices.SortFunc(out, func(a, b service.OutboxEntry) int {
		if c := compareStreamIDs(a.ID, b.ID); c != 0 {
			return c
		}
		return strings.Compare(a.Event.ItemID, b.Event.ItemID)
	})
	return out, nil
}

// hintedItems returns about max items from the outbox hint set, continuing
// the previous call's SSCAN, so successive calls visit every hinted item in
// turn. A small set comes whole in one reply.
func (s *Store) hintedItems(ctx context.Context, max int) ([]string, error) {
	s.scanMu.Lock()
	cursor := s.hintCursor
	s.scanMu.Unlock()
	seen := make(map[string]bool)
	var ids []string
	// Started mid-way, the walk reaches the end of the set before a full
	// round, and may then start over from 0 once.
	for wrapped := cursor == 0; len(ids) < max; {
		keys, next, err := s.rdb.SScan(ctx, s.outboxesKey(), cursor, "", int64(max)).Result()
		if err != nil {
			return nil, fmt.Errorf("outbox pending: %w", classify(err))
		}
		for _, k := range keys {
			if !seen[k] {
				seen[k] = true
				ids = append(ids, k)
			}
		}
		cursor = next
		if cursor == 0 {
			if wrapped {
				break
			}
			wrapped = true
		}
	}
	s.scanMu.Lock()
	s.hintCursor = cursor
	s.scanMu.Unlock()
	return ids, nil
}

// fairShares splits budget over outboxes of the given sizes: each gets what
// it holds up to an equal share, and what the small ones leave goes to the
// others.
func fairShares(sizes []int64, budget int) []int64 {
	shares := make([]int64, len(sizes))
	left := int64(budget)
	open := 0
	for _, n := range sizes {
		if n > 0 {
			open++
		}
	}
	for left > 0 && open > 0 {
		each := max(1, left/int64(open))
		open = 0
		for i, n := range sizes {
			give := min(n-shares[i], each, left)
			shares[i] += give
			left -= give
			if shares[i] < n {
				open++
			}
		}
	}
	return shares
}

// Ack deletes entries that JetStream has stored, and every outbox left
// empty along with its hint.
func (s *Store) Ack(ctx context.Context, entries ...service.OutboxEntry) error {
	if len(entries) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.OpTimeout)
	defer cancel()
	byItem := make(map[string][]any)
	for _, e := range entries {
		byItem[e.Event.ItemID] = append(byItem[e.Event.ItemID], e.ID)
	}
	items := slices.Collect(maps.Keys(byItem))
	left, err := s.trimOutboxes(ctx, items, byItem)
	if err != nil {
		return fmt.Errorf("outbox ack: %w", classify(err))
	}
	var empty []string
	for i, id := range items {
		if left[i] == 0 {
			empty = append(empty, id)
		}
	}
	if err := s.dropHints(ctx, empty); err != nil {
		return fmt.Errorf("outbox ack: %w", err)
	}
	return nil
}

// trimOutboxes runs ack.lua on each item's outbox in one round trip, with
// the entry ids in acked (none for an item missing there), and returns the
// entries each has left.
func (s *Store) trimOutboxes(ctx context.Context, items []string, acked map[string][]any) ([]int64, error) {
	var calls []*goredis.Cmd
	err := pipelineScript(ctx, s.rdb, ackScript, func(_ goredis.Pipeliner, run func([]string, ...any) *goredis.Cmd) {
		calls = calls[:0]
		for _, id := range items {
			calls = append(calls, run([]string{s.outboxKey(id)}, acked[id]...))
		}
	})
	if err != nil {
		return nil, err
	}
	left := make([]int64, len(calls))
	for i, c := range calls {
		left[i], _ = c.Int64()
	}
	return left, nil
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
	lens, err := s.outboxLengths(ctx, ids)
	if err != nil {
		return s.restoreHints(ctx, members, err)
	}
	var back []any
	for i, id := range ids {
		if lens[i] > 0 {
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

// Backlog counts entries in the outboxes named by the hint set, a thousand
// items a round trip. SSCAN may name an item twice; it is counted once.
func (s *Store) Backlog(ctx context.Context) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.OpTimeout)
	defer cancel()
	var n int64
	count := func(ids []string) error {
		lens, err := s.outboxLengths(ctx, ids)
		for _, l := range lens {
			n += l
		}
		return err
	}
	iter := s.rdb.SScan(ctx, s.outboxesKey(), 0, "", 1000).Iterator()
	ids := make([]string, 0, 1000)
	seen := make(map[string]bool)
	for iter.Next(ctx) {
		if seen[iter.Val()] {
			continue
		}
		seen[iter.Val()] = true
		if ids = append(ids, iter.Val()); len(ids) == cap(ids) {
			if err := count(ids); err != nil {
				return 0, fmt.Errorf("outbox backlog: %w", classify(err))
			}
			ids = ids[:0]
		}
	}
	if err := cmp.Or(iter.Err(), count(ids)); err != nil {
		return 0, fmt.Errorf("outbox backlog: %w", classify(err))
	}
	return n, nil
}

func decodeEntry(m goredis.XMessage) (service.OutboxEntry, error) {
	raw, _ := m.Values["e"].(string)
	ev, err := models.DecodeEvent([]byte(raw))
	if err != nil {
		return service.OutboxEntry{}, fmt.Errorf("outbox entry %s: %w", m.ID, err)
	}
	// Entries appended before maxima existed have no m: the price was
	// the leader's maximum.
	leaderMax, _ := m.Values["m"].(string)
	n, _ := strconv.ParseInt(leaderMax, 10, 64)
	return service.OutboxEntry{ID: m.ID, Event: ev, LeaderMax: models.Money(n)}, nil
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

// outboxLengths is the number of entries in each item's outbox, in one
// round trip.
func (s *Store) outboxLengths(ctx context.Context, ids []string) ([]int64, error) {
	cmds := make([]*goredis.IntCmd, len(ids))
	if _, err := s.rdb.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = p.XLen(ctx, s.outboxKey(id))
		}
		return nil
	}); err != nil {
		return nil, err
	}
	lens := make([]int64, len(ids))
	for i, c := range cmds {
		lens[i] = c.Val()
	}
	return lens, nil
}
