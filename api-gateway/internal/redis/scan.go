package redis

import (
	"context"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/bidding-platform/shared/models"
)

// The hint keys make Pending and CloseDue cheap, but a hint can be lost: a
// gateway dies between an item's script and the hint update, or the
// cluster node holding a hint key restarts without persistence. These scans
// rebuild the hints from the item keys, which are the truth.

// scanDue reports whether a scan is due and, if so, marks it as started so
// that a failing scan is not retried on every call.
func (s *Store) scanDue(last *time.Time) bool {
	s.scanMu.Lock()
	defer s.scanMu.Unlock()
	if !last.IsZero() && time.Since(*last) < s.cfg.ScanInterval {
		return false
	}
	*last = time.Now()
	return true
}

// scanNodes calls fn with the keys of one type matching pattern on each
// node: SCAN is per node, so a cluster is scanned master by master.
func (s *Store) scanNodes(ctx context.Context, pattern, typ string, fn func(ctx context.Context, c *goredis.Client, keys []string) error) error {
	scan := func(ctx context.Context, c *goredis.Client) error {
		iter := c.ScanType(ctx, 0, pattern, 1000, typ).Iterator()
		var keys []string
		for iter.Next(ctx) {
			keys = append(keys, iter.Val())
			if len(keys) == 1000 {
				if err := fn(ctx, c, keys); err != nil {
					return err
				}
				keys = keys[:0]
			}
		}
		if err := iter.Err(); err != nil {
			return err
		}
		if len(keys) == 0 {
			return nil
		}
		return fn(ctx, c, keys)
	}
	if s.cluster != nil {
		return s.cluster.ForEachMaster(ctx, scan)
	}
	return scan(ctx, s.rdb.(*goredis.Client))
}

// scanOrphans puts every non-empty outbox stream into the hint set. Empty
// ones, which only an older version left behind, are deleted on the way.
func (s *Store) scanOrphans(ctx context.Context) error {
	if !s.scanDue(&s.lastOutboxScan) {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ScanTimeout)
	defer cancel()
	err := s.scanNodes(ctx, s.cfg.KeyPrefix+"item:{*}:outbox", "stream", func(ctx context.Context, _ *goredis.Client, keys []string) error {
		var ids []string
		for _, k := range keys {
			if id, ok := s.itemFromKey(k, "}:outbox"); ok {
				ids = append(ids, id)
			}
		}
		left, err := s.trimOutboxes(ctx, ids, nil)
		if err != nil {
			return err
		}
		var waiting []any
		for i, id := range ids {
			if left[i] > 0 {
				waiting = append(waiting, id)
			}
		}
		if len(waiting) == 0 {
			return nil
		}
		return s.rdb.SAdd(ctx, s.outboxesKey(), waiting...).Err()
	})
	return classify(err)
}

// scanOpen puts every open auction with an end into the end-time hint, and
// every open auction into the open-auction index. Both adds keep what the
// hints hold (NX): a moved end is the closer's to follow, and a listed
// auction keeps its place.
func (s *Store) scanOpen(ctx context.Context) error {
	if !s.scanDue(&s.lastEndScan) {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ScanTimeout)
	defer cancel()
	err := s.scanNodes(ctx, s.cfg.KeyPrefix+"item:{*}", "hash", func(ctx context.Context, c *goredis.Client, keys []string) error {
		cmds := make([]*goredis.SliceCmd, len(keys))
		if _, err := c.Pipelined(ctx, func(p goredis.Pipeliner) error {
			for i, k := range keys {
				cmds[i] = p.HMGet(ctx, k, openFields...)
			}
			return nil
		}); err != nil {
			return err
		}
		var ends, open []goredis.Z
		for i, k := range keys {
			id, ok := s.itemFromKey(k, "}")
			z, listed := openEntry(id, cmds[i].Val())
			if !ok || !listed {
				continue
			}
			open = append(open, z)
			if ea := toInt(cmds[i].Val()[1]); ea > 0 {
				ends = append(ends, goredis.Z{Score: float64(ea), Member: id})
			}
		}
		if len(ends) > 0 {
			if err := s.rdb.ZAddNX(ctx, s.endsKey(), ends...).Err(); err != nil {
				return err
			}
		}
		if len(open) == 0 {
			return nil
		}
		return s.rdb.ZAddNX(ctx, s.openKey(), open...).Err()
	})
	return classify(err)
}

// itemFromKey recovers the item id from a key found by SCAN.
func (s *Store) itemFromKey(key, suffix string) (string, bool) {
	rest, ok := strings.CutPrefix(key, s.cfg.KeyPrefix+"item:{")
	if !ok {
		return "", false
	}
	id, ok := strings.CutSuffix(rest, suffix)
	return id, ok && models.ValidateID(id) == nil
}
