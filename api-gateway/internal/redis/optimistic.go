package redis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/bidding-platform/api-gateway/internal/service"
	"github.com/bidding-platform/shared/models"
)

// itemFields are the item hash fields a bid reads, in the order of
// place.lua's HMGET.
var itemFields = []string{"name", "sp", "inc", "res", "sa", "ea", "st", "cur", "bdr", "cnt", "seq", "ep", "mx", "ext"}

// itemState is the item hash as the optimistic strategy reads it.
type itemState struct {
	name                 string
	sp, inc, res, sa, ea int64
	st, bdr              string
	cur, cnt, seq        int64
	// ep is the Redis instance the item was last checked on (common.lua's
	// instance).
	ep string
	// mx is the leader's maximum; ext counts soft-close extensions.
	mx, ext int64
}

func parseItemState(v []any) (itemState, bool) {
	if len(v) != len(itemFields) || v[0] == nil {
		return itemState{}, false
	}
	str := func(i int) string { s, _ := v[i].(string); return s }
	num := func(i int) int64 { n, _ := strconv.ParseInt(str(i), 10, 64); return n }
	return itemState{
		name: str(0), sp: num(1), inc: num(2), res: num(3), sa: num(4), ea: num(5),
		st: str(6), cur: num(7), bdr: str(8), cnt: num(9), seq: num(10), ep: str(11), mx: num(12), ext: num(13),
	}, true
}

// item is the state the rules decide on. The hash stores "open" until a
// close; models.StatusAt treats every status but a final one alike.
func (it itemState) item(id string) models.Item {
	return models.Item{
		ID: id, Name: it.name, StartingPrice: models.Money(it.sp), MinIncrement: models.Money(it.inc),
		ReservePrice: models.Money(it.res), StartsAt: fromMilli(it.sa), EndsAt: fromMilli(it.ea),
		Status: models.Status(it.st), CurrentBid: models.Money(it.cur), HighestBidderID: it.bdr,
		BidCount: it.cnt, Seq: uint64(it.seq), LeaderMax: models.Money(it.mx), Extensions: it.ext,
	}
}

// placeOptimistic decides the bids one by one. On an error it also returns
// the answers decided before it: those bids are applied, and PlaceBids
// still has to make their events findable.
func (s *Store) placeOptimistic(ctx context.Context, reqs []service.BidRequest) ([]service.BidResult, error) {
	out := make([]service.BidResult, 0, len(reqs))
	for _, r := range reqs {
		res, err := s.placeOne(ctx, r)
		if err != nil {
			return out, err
		}
		out = append(out, res)
	}
	return out, nil
}

var (
	// errRetriesExhausted says that other writers won every attempt.
	errRetriesExhausted = errors.New("optimistic transaction lost every retry to concurrent writers")
	errPastDeadline     = errors.New("past the deadline")
)

// placeOne decides one bid with WATCH on the item (and its idempotency
// record), reads, then MULTI/EXEC of the same writes place.lua makes. A
// concurrent write to a watched key aborts EXEC, and the bid is decided
// again after a jittered, exponentially growing pause.
func (s *Store) placeOne(ctx context.Context, r service.BidRequest) (service.BidResult, error) {
	itemKey, outbox := s.itemKey(r.ItemID), s.outboxKey(r.ItemID)
	keys := []string{itemKey}
	idem, idemCount := "", ""
	if r.IdempotencyKey != "" {
		idem, idemCount = s.idemKey(r.ItemID, r.UserID, r.IdempotencyKey), s.idemCountKey(r.ItemID, r.UserID)
		keys = append(keys, idem, idemCount)
	}
	// The guard is what place.lua's deadline is for lua: a key that expires
	// at the deadline on Redis's clock, watched with the others. An EXEC
	// that reaches Redis after the gateway has given up on it (a paused or
	// overloaded Redis) finds it expired and is aborted, so a bid answered
	// 503 is never applied later. Bids that write nothing leave it to
	// expire.
	guard := s.guardKey(r.ItemID, r.BidID)
	var (
		res   service.BidResult
		oid   string
		fixup bool
	)
	txf := func(tx *goredis.Tx) error {
		deadline := s.scriptDeadline(ctx)
		var itemCmd, recCmd *goredis.SliceCmd
		var usedCmd *goredis.StringCmd
		var infoCmd *goredis.StringCmd
		var redisTime func() time.Time
		var guardTTL *goredis.DurationCmd
		if _, err := tx.Pipelined(ctx, func(p goredis.Pipeliner) error {
			if deadline > 0 {
				p.Do(ctx, "set", guard, "1", "pxat", deadline)
				guardTTL = p.PTTL(ctx, guard)
				p.Do(ctx, "watch", guard)
			}
			itemCmd = p.HMGet(ctx, itemKey, itemFields...)
			if idem != "" {
				recCmd = p.HMGet(ctx, idem, recordFields...)
				usedCmd = p.Get(ctx, idemCount)
			}
			redisTime = s.queueTime(ctx, p)
			infoCmd = p.Info(ctx, "server")
			return nil
		}); err != nil && !errors.Is(err, goredis.Nil) {
			// Nil is the user's record count before its first record.
			return err
		}
		if guardTTL != nil && guardTTL.Val() < 0 {
			// SET with a past PXAT leaves no key: Redis read this after
			// the deadline, and a write now could land after a 503.
			return errPastDeadline
		}
		it, ok := parseItemState(itemCmd.Val())
		if !ok {
			res = service.BidResult{Outcome: models.OutcomeNotFound}
			return nil
		}
		// The same check as place.lua's: the WATCHed connection dies with
		// its Redis, so an instance read here is the one EXEC would reach.
		if it.ep != runID(infoCmd.Val()) {
			return service.ErrUnchecked
		}
		t := redisTime()
		// The Lua scripts see the clock in whole milliseconds; so must the
		// rules here, or soft close could differ by a fraction of one.
		now := t.Truncate(time.Millisecond)
		base := it.item(r.ItemID)
		if recCmd != nil {
			if hash, d, ok := parseRecord(recCmd.Val()); ok {
				if hash != r.RequestHash {
					d = decision{outcome: models.OutcomeIdempotencyConflict, cur: it.cur, bidder: it.bdr,
						count: it.cnt, seq: it.seq, ends: it.ea,
						status: string(models.StatusAt(models.Status(it.st), fromMilli(it.sa), fromMilli(it.ea), now))}
				}
				var err error
				res, err = d.result(base)
				return err
			}
		}
		d := decide(it, r, now, t)
		if idem != "" && r.MaxIdempotencyKeys > 0 {
			// The same allowance as place.lua's: a new record is counted,
			// and one past the cap decides nothing.
			if used, _ := usedCmd.Int64(); used >= r.MaxIdempotencyKeys {
				d = decision{outcome: models.OutcomeTooManyKeys, cur: it.cur, bidder: it.bdr, count: it.cnt, seq: it.seq,
					ends: it.ea, status: d.status, max: it.mx, ext: it.ext}
			}
		}
		tooMany := d.outcome == models.OutcomeTooManyKeys
		changed := d.count != it.cnt || d.max != it.mx
		if !changed && idem == "" {
			// Nothing to write: the answer is as of the read, which is a
			// moment inside this call.
			var err error
			res, err = d.result(base)
			return err
		}
		xadds := make([]*goredis.StringCmd, len(d.entries))
		if s.beforeWrite != nil {
			s.beforeWrite()
		}
		_, err := tx.TxPipelined(ctx, func(p goredis.Pipeliner) error {
			if changed {
				p.HSet(ctx, itemKey, "cur", d.cur, "bdr", d.bidder, "cnt", d.count, "seq", d.seq, "ea", d.ends, "mx", d.max, "ext", d.ext)
			}
			for k, e := range d.entries {
				data, _ := json.Marshal(e.Event) // an Event always marshals: plain fields and Money
				if k == 0 {
					d.event = string(data) // for the idempotency record below
				}
				xadds[k] = p.XAdd(ctx, &goredis.XAddArgs{Stream: outbox, Values: []any{"e", data, "m", int64(e.LeaderMax)}})
			}
			if len(d.entries) > 0 {
				if s.cluster == nil {
					// In the transaction, with the append; a cluster
					// keeps the hint key in another slot (see PlaceBids).
					p.SAdd(ctx, s.outboxesKey(), r.ItemID)
				}
			}
			if idem != "" {
				if p.Incr(ctx, idemCount); usedCmd.Val() == "" {
					p.PExpire(ctx, idemCount, service.IdempotencyTTL)
				}
				if !tooMany {
					p.HSet(ctx, idem, d.record(r.RequestHash)...)
					p.PExpire(ctx, idem, service.IdempotencyTTL)
				}
			}
			if deadline > 0 {
				p.Del(ctx, guard)
			}
			return nil
		})
		if s.afterWrite != nil {
			s.afterWrite()
		}
		if err != nil {
			return err
		}
		for k, x := range xadds {
			d.entries[k].ID = x.Val()
		}
		if len(d.entries) > 0 {
			d.oid = d.entries[0].ID
			oid, fixup = d.oid, idem != ""
		}
		d.replayed = false
		res, err = d.result(base)
		return err
	}

	backoff := time.Millisecond
	for attempt := 0; attempt < s.cfg.OptimisticRetries; attempt++ {
		err := s.bids.Watch(ctx, txf, keys...)
		if err == nil {
			break
		}
		if errors.Is(err, service.ErrUnchecked) {
			return service.BidResult{}, err
		}
		if errors.Is(err, errPastDeadline) {
			return service.BidResult{}, fmt.Errorf("%w: redis read the bid after its deadline", service.ErrUnavailable)
		}
		if !errors.Is(err, goredis.TxFailedErr) {
			return service.BidResult{}, classifyWrite(err)
		}
		if attempt == s.cfg.OptimisticRetries-1 {
			return service.BidResult{}, fmt.Errorf("%w: %w after %d attempts", service.ErrUnavailable, errRetriesExhausted, s.cfg.OptimisticRetries)
		}
		// Full jitter: a random pause up to the current bound spreads the
		// losers out so that they do not collide again in lockstep.
		pause := time.Duration(rand.Int64N(int64(backoff))) + 50*time.Microsecond
		select {
		case <-ctx.Done():
			return service.BidResult{}, classify(ctx.Err())
		case <-time.After(pause):
		}
		backoff = min(2*backoff, 32*time.Millisecond)
	}
	if fixup {
		// MULTI cannot feed XADD's id into the record written with it, so the
		// record gets it now. If this write is lost, a replay answers
		// without an outbox id, which only the first answer needs for Ack.
		_ = s.rdb.HSet(ctx, idem, "oid", oid).Err()
	}
	return res, nil
}

// decide applies the shared rules to one bid that has no idempotency
// record, and makes the events place.lua would append.
func decide(it itemState, r service.BidRequest, now, t time.Time) decision {
	dec := models.Decide(it.item(r.ItemID), models.BidAttempt{UserID: r.UserID, Amount: r.Amount, Max: r.Max, SoftClose: r.SoftClose, MaxExtensions: r.MaxExtensions}, now)
	after := dec.Item
	d := decision{outcome: dec.Outcome, cur: int64(after.CurrentBid), bidder: after.HighestBidderID, count: after.BidCount,
		seq: int64(after.Seq), ends: unixMilli(after.EndsAt), status: string(dec.Status), max: int64(after.LeaderMax), ext: after.Extensions}
	if len(dec.Steps) == 0 {
		return d
	}
	d.entries = stepEntries(r, dec.Steps, make([]string, len(dec.Steps)), t, d)
	return d
}

// runID finds the run id in an INFO server reply, as common.lua's instance
// does.
func runID(info string) string {
	_, rest, ok := strings.Cut(info, "run_id:")
	if !ok {
		return ""
	}
	id, _, _ := strings.Cut(rest, "\r\n")
	return strings.TrimSpace(id)
}
