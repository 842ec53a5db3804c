package redis

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/bidding-platform/api-gateway/internal/service"
	"github.com/bidding-platform/shared/models"
)

var _ service.LiveItems = (*Store)(nil)

// sellerKey is a sorted set per seller of the items they created, scored
// by start time (ms), members the item ids: a hint for the seller's list,
// written at create and restore and rebuilt by scanSellers from the item
// hashes' sel field. It has no item tag and is only touched by commands of
// its own.
func (s *Store) sellerKey(sellerID string) string {
	return s.cfg.KeyPrefix + "seller:" + sellerID + ":items"
}

// indexSeller adds an item to its seller's index; items created without a
// seller are in none.
func (s *Store) indexSeller(ctx context.Context, sellerID, id string, startMs int64) error {
	if sellerID == "" {
		return nil
	}
	if err := s.rdb.ZAddNX(ctx, s.sellerKey(sellerID), goredis.Z{Score: float64(startMs), Member: id}).Err(); err != nil {
		return fmt.Errorf("index seller %s: %w", sellerID, classify(err))
	}
	return nil
}

// Items reads ids with read.lua in one pipeline.
func (s *Store) Items(ctx context.Context, ids []string) (map[string]models.Item, []string, error) {
	found := make(map[string]models.Item, len(ids))
	if len(ids) == 0 {
		return found, nil, nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.OpTimeout)
	defer cancel()
	cmds := make([]*goredis.Cmd, 0, len(ids))
	err := pipelineScript(ctx, s.rdb, s.scripts.read, func(p goredis.Pipeliner, run func(keys []string, args ...any) *goredis.Cmd) {
		cmds = cmds[:0]
		for _, id := range ids {
			cmds = append(cmds, run([]string{s.itemKey(id)}))
		}
	})
	if err != nil {
		return nil, nil, fmt.Errorf("read %d items: %w", len(ids), classify(err))
	}
	var unchecked []string
	for i, id := range ids {
		res, err := cmds[i].StringSlice()
		if err != nil {
			return nil, nil, fmt.Errorf("read item %s: %w", id, classify(err))
		}
		it, _, err := readItem(id, res)
		switch {
		case err == nil:
			found[id] = it
		case errors.Is(err, service.ErrUnchecked):
			unchecked = append(unchecked, id)
		}
	}
	return found, unchecked, nil
}

// SellerItems walks the seller's index down from the position. Members of
// one score come in descending id order, so the walk only has to skip the
// position's own score's members at or above its id.
func (s *Store) SellerItems(ctx context.Context, sellerID string, after *service.ItemKey, n int) ([]service.ItemKey, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.OpTimeout)
	defer cancel()
	top := "+inf"
	var afterMs int64
	if after != nil {
		afterMs = after.At.UnixMilli()
		top = strconv.FormatInt(afterMs, 10)
	}
	var out []service.ItemKey
	for offset := int64(0); len(out) < n; {
		batch := int64(n - len(out))
		zs, err := s.rdb.ZRangeArgsWithScores(ctx, goredis.ZRangeArgs{
			Key: s.sellerKey(sellerID), Start: top, Stop: "-inf", ByScore: true, Rev: true,
			Offset: offset, Count: batch,
		}).Result()
		if err != nil {
			return nil, fmt.Errorf("read items of seller %s: %w", sellerID, classify(err))
		}
		for _, z := range zs {
			id, _ := z.Member.(string)
			ms := int64(z.Score)
			if after != nil && ms == afterMs && id >= after.ID {
				continue
			}
			out = append(out, service.ItemKey{At: time.UnixMilli(ms).UTC(), ID: id})
		}
		if int64(len(zs)) < batch {
			break
		}
		offset += int64(len(zs))
	}
	return out, nil
}

// ForgetSellerItems drops ids from the seller's index.
func (s *Store) ForgetSellerItems(ctx context.Context, sellerID string, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.OpTimeout)
	defer cancel()
	members := make([]any, len(ids))
	for i, id := range ids {
		members[i] = id
	}
	if err := s.rdb.ZRem(ctx, s.sellerKey(sellerID), members...).Err(); err != nil {
		return fmt.Errorf("forget items of seller %s: %w", sellerID, classify(err))
	}
	return nil
}

// scanSellers puts every item with a seller into its seller's index: a
// create whose gateway died before writing the index, or an index lost
// with a cluster node, is repaired within a scan interval.
func (s *Store) scanSellers(ctx context.Context) error {
	if !s.scanDue(&s.lastSellerScan) {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ScanTimeout)
	defer cancel()
	err := s.scanNodes(ctx, s.cfg.KeyPrefix+"item:{*}", "hash", func(ctx context.Context, c *goredis.Client, keys []string) error {
		cmds := make([]*goredis.SliceCmd, len(keys))
		if _, err := c.Pipelined(ctx, func(p goredis.Pipeliner) error {
			for i, k := range keys {
				cmds[i] = p.HMGet(ctx, k, "sel", "sa")
			}
			return nil
		}); err != nil {
			return err
		}
		bySeller := map[string][]goredis.Z{}
		for i, k := range keys {
			id, ok := s.itemFromKey(k, "}")
			v := cmds[i].Val()
			if !ok || len(v) != 2 {
				continue
			}
			if sel, _ := v[0].(string); sel != "" {
				bySeller[sel] = append(bySeller[sel], goredis.Z{Score: float64(toInt(v[1])), Member: id})
			}
		}
		for sel, zs := range bySeller {
			if err := s.rdb.ZAddNX(ctx, s.sellerKey(sel), zs...).Err(); err != nil {
				return err
			}
		}
		return nil
	})
	return classify(err)
}
