package redis

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	goredis "github.com/redis/go-redis/v9"

	"github.com/bidding-platform/api-gateway/internal/service"
	"github.com/bidding-platform/shared/models"
)

var _ service.OpenIndex = (*Store)(nil)

// openFields are the item hash fields that say whether and where an item
// is listed: its stored status, its current end, its end as created.
var openFields = []string{"st", "ea", "oe"}

// openScore is the open-auction index score of an auction that ends at
// ends (unix ms, 0: never).
func openScore(ends int64) int64 {
	if ends <= 0 {
		return service.NoEnd
	}
	return ends
}

// openEntry is id's index entry from its openFields values; listed is false
// for an item that is final or gone. Items created before the hash kept
// their end as created (oe) are listed by their current end.
func openEntry(id string, v []any) (z goredis.Z, listed bool) {
	if len(v) != len(openFields) || v[0] == nil {
		return goredis.Z{}, false
	}
	if st := toString(v[0]); st == string(models.StatusClosed) || st == string(models.StatusCancelled) {
		return goredis.Z{}, false
	}
	ends := toInt(v[1])
	if v[2] != nil {
		ends = toInt(v[2])
	}
	return goredis.Z{Score: float64(openScore(ends)), Member: id}, true
}

// OpenItems walks the open-auction index (see service.OpenIndex) and reads
// each entry's item with read.lua, in one pipeline, so that every status is
// the one at Redis's clock.
func (s *Store) OpenItems(ctx context.Context, after service.OpenKey, n int) (service.OpenPage, error) {
	if n <= 0 {
		return service.OpenPage{Last: after}, nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.OpTimeout)
	defer cancel()
	zs, done, err := s.openAfter(ctx, after, n)
	if err != nil {
		return service.OpenPage{}, fmt.Errorf("list open auctions: %w", classify(err))
	}
	page := service.OpenPage{Last: after, Done: done}
	if len(zs) == 0 {
		return page, nil
	}
	reads := make([]*goredis.Cmd, len(zs))
	err = pipelineScript(ctx, s.rdb, s.scripts.read, func(_ goredis.Pipeliner, run func([]string, ...any) *goredis.Cmd) {
		for i, z := range zs {
			reads[i] = run([]string{s.itemKey(z.Member.(string))})
		}
	})
	if err != nil {
		return service.OpenPage{}, fmt.Errorf("list open auctions: %w", classify(err))
	}
	var stale []string
	for i, z := range zs {
		id := z.Member.(string)
		key := service.OpenKey{End: int64(z.Score), ID: id}
		page.Last = key
		res, err := reads[i].StringSlice()
		if err != nil {
			return service.OpenPage{}, fmt.Errorf("list open auctions: read %s: %w", id, classify(err))
		}
		it, stored, err := readItem(id, res)
		switch {
		case errors.Is(err, service.ErrUnchecked):
			page.Entries = append(page.Entries, service.OpenEntry{Key: key, Unchecked: true})
		case err != nil, stored == string(models.StatusClosed), stored == string(models.StatusCancelled):
			// Gone (expired, lost with its Redis: a restore lists it
			// again), or final and not yet unlisted by its closer.
			stale = append(stale, id)
		default:
			page.Entries = append(page.Entries, service.OpenEntry{Key: key, Item: it})
		}
	}
	if len(stale) > 0 {
		if err := s.unlistStale(ctx, stale); err != nil {
			return service.OpenPage{}, fmt.Errorf("list open auctions: %w", err)
		}
	}
	return page, nil
}

// openAfter returns up to n index entries strictly after after, in index
// order (score, then id, as Redis orders a sorted set), and whether the
// index ends there. Entries that share after's score are skipped by id:
// a score range cannot start in the middle of them.
func (s *Store) openAfter(ctx context.Context, after service.OpenKey, n int) ([]goredis.Z, bool, error) {
	start := "-inf"
	if after != (service.OpenKey{}) {
		start = strconv.FormatInt(after.End, 10)
	}
	for offset := int64(0); ; offset += int64(n) {
		zs, err := s.rdb.ZRangeArgsWithScores(ctx, goredis.ZRangeArgs{
			Key: s.openKey(), Start: start, Stop: "+inf", ByScore: true, Offset: offset, Count: int64(n),
		}).Result()
		if err != nil {
			return nil, false, err
		}
		done := len(zs) < n
		kept := zs[:0]
		for _, z := range zs {
			if score, id := int64(z.Score), z.Member.(string); score > after.End || score == after.End && id > after.ID {
				kept = append(kept, z)
			}
		}
		if len(kept) > 0 || done {
			return kept, done, nil
		}
	}
}

// unlistStale takes ids a listing found gone or final out of the index.
// An item created between the read and the removal (CreateItem lists it
// after it exists) is found by the second look and listed again.
func (s *Store) unlistStale(ctx context.Context, ids []string) error {
	members := make([]any, len(ids))
	for i, id := range ids {
		members[i] = id
	}
	if err := s.rdb.ZRem(ctx, s.openKey(), members...).Err(); err != nil {
		return classify(err)
	}
	return s.reindexOpen(ctx, ids)
}

// reindexOpen makes the index agree with the item hashes of ids: listed
// (keeping a listed item's place) while not final, unlisted otherwise.
func (s *Store) reindexOpen(ctx context.Context, ids []string) error {
	cmds := make([]*goredis.SliceCmd, len(ids))
	if _, err := s.rdb.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = p.HMGet(ctx, s.itemKey(id), openFields...)
		}
		return nil
	}); err != nil {
		return classify(err)
	}
	var listed []goredis.Z
	var unlisted []any
	for i, id := range ids {
		if z, ok := openEntry(id, cmds[i].Val()); ok {
			listed = append(listed, z)
		} else {
			unlisted = append(unlisted, id)
		}
	}
	if len(listed) > 0 {
		if err := s.rdb.ZAddNX(ctx, s.openKey(), listed...).Err(); err != nil {
			return classify(err)
		}
	}
	if len(unlisted) > 0 {
		return classify(s.rdb.ZRem(ctx, s.openKey(), unlisted...).Err())
	}
	return nil
}

// unlist drops a final item's hints: its end time and its listing.
func (s *Store) unlist(ctx context.Context, id string) error {
	_, err := s.rdb.Pipelined(ctx, func(p goredis.Pipeliner) error {
		p.ZRem(ctx, s.endsKey(), id)
		p.ZRem(ctx, s.openKey(), id)
		return nil
	})
	return classify(err)
}
