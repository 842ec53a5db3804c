package redis

import (
	"context"
	"fmt"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/bidding-platform/api-gateway/internal/service"
	"github.com/bidding-platform/shared/models"
)

// PlaceBids decides bids for one item, in order. With the lua strategy the
// whole group is one script call; with optimistic each bid is its own
// WATCH/MULTI/EXEC transaction, in order.
func (s *Store) PlaceBids(ctx context.Context, reqs []service.BidRequest) ([]service.BidResult, error) {
	if len(reqs) == 0 {
		return nil, nil
	}
	id := reqs[0].ItemID
	for _, r := range reqs {
		if r.ItemID != id {
			return nil, fmt.Errorf("place bids: one group holds items %s and %s", id, r.ItemID)
		}
		if err := models.ValidateID(r.UserID); err != nil {
			return nil, fmt.Errorf("place bids on %s: user %q: %w", id, r.UserID, err)
		}
	}
	if err := models.ValidateID(id); err != nil {
		return notFound(reqs), nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.OpTimeout)
	defer cancel()
	var (
		results []service.BidResult
		err     error
	)
	if s.cfg.Strategy == StrategyOptimistic {
		results, err = s.placeOptimistic(ctx, reqs)
	} else {
		results, err = s.placeLua(ctx, reqs)
	}
	if accepted(results) && s.cluster != nil {
		// On a single Redis the hint went with the write. A cluster serves
		// the hint key from another node, so the SADD sent beside the
		// script may have run before the append, and Ack may have removed
		// it in between, having seen the stream still empty. This one comes
		// after the append: Ack removes a hint only after seeing the stream
		// empty and checks again after removing it, so it is never missed.
		// If it fails, the bids are still decided and their events are in
		// the outbox, where the relay's periodic scan finds them.
		_ = s.rdb.SAdd(ctx, s.outboxesKey(), id).Err()
	}
	if err != nil {
		// With optimistic, bids before the failing one may be applied;
		// their callers get this error like the rest of the group, and an
		// Idempotency-Key retry gets their real answer.
		return nil, fmt.Errorf("place bids on %s: %w", id, err)
	}
	return results, nil
}

func accepted(results []service.BidResult) bool {
	for _, r := range results {
		if len(r.Entries) > 0 {
			return true
		}
	}
	return false
}

func notFound(reqs []service.BidRequest) []service.BidResult {
	out := make([]service.BidResult, len(reqs))
	for i := range out {
		out[i] = service.BidResult{Outcome: models.OutcomeNotFound}
	}
	return out
}

func (s *Store) placeLua(ctx context.Context, reqs []service.BidRequest) ([]service.BidResult, error) {
	id := reqs[0].ItemID
	keys := make([]string, 2, 2+len(reqs))
	keys[0], keys[1] = s.itemKey(id), s.outboxKey(id)
	deadline := s.scriptDeadline(ctx)
	args := make([]any, 0, 4+8*len(reqs))
	// One cap for the group: the gateway's setting, the same for every bid.
	args = append(args, id, service.IdempotencyTTL.Milliseconds(), deadline, reqs[0].MaxExtensions, reqs[0].MaxIdempotencyKeys)
	for _, r := range reqs {
		ki := 0
		if r.IdempotencyKey != "" {
			keys = append(keys, s.idemKey(id, r.UserID, r.IdempotencyKey), s.idemCountKey(id, r.UserID))
			ki = len(keys) - 1
		}
		maxBid := 0
		if r.Max {
			maxBid = 1
		}
		args = append(args, ki, r.RequestHash, r.UserID, int64(r.Amount), r.BidID, r.EventID, r.SoftClose.Milliseconds(), maxBid)
	}
	if s.beforeWrite != nil {
		s.beforeWrite()
	}
	res, err := s.runPlace(ctx, id, keys, args)
	if s.afterWrite != nil {
		s.afterWrite()
	}
	if err != nil {
		return nil, classifyWrite(err)
	}
	switch toInt(res[0]) {
	case -1:
		return nil, fmt.Errorf("%w: redis ran the script after its deadline", service.ErrUnavailable)
	case -2:
		return nil, service.ErrUnchecked
	case 0:
		return notFound(reqs), nil
	}
	const head = 8
	if len(res) != head+len(reqs) {
		return nil, fmt.Errorf("script answered %d values for %d bids", len(res)-head, len(reqs))
	}
	base := models.Item{
		ID:            id,
		Name:          toString(res[1]),
		StartingPrice: models.Money(toInt(res[2])),
		MinIncrement:  models.Money(toInt(res[3])),
		ReservePrice:  models.Money(toInt(res[4])),
		StartsAt:      fromMilli(toInt(res[5])),
	}
	ts := time.Unix(toInt(res[6]), toInt(res[7])*1000).UTC()
	out := make([]service.BidResult, len(reqs))
	for i, req := range reqs {
		v, ok := res[head+i].([]any)
		if !ok || len(v) != 18 {
			return nil, fmt.Errorf("script answer %d is malformed: %v", i, res[head+i])
		}
		d := decision{
			outcome:  models.Outcome(toInt(v[0])),
			replayed: toInt(v[1]) == 1,
			cur:      toInt(v[2]),
			bidder:   toString(v[3]),
			count:    toInt(v[4]),
			seq:      toInt(v[5]),
			ends:     toInt(v[6]),
			status:   toString(v[7]),
			oid:      toString(v[8]),
			event:    toString(v[9]),
			max:      toInt(v[16]),
		}
		if d.oid != "" && !d.replayed {
			// The steps place.lua wrote into the outbox, rebuilt from
			// its numbers without parsing its JSON back.
			steps := []models.PriceStep{{UserID: req.UserID, Amount: models.Money(toInt(v[11])),
				PreviousBid: models.Money(toInt(v[10])), Auto: toInt(v[12]) == 1, PreviousBidderID: toString(v[17])}}
			oids := []string{d.oid}
			if oid2 := toString(v[13]); oid2 != "" {
				// The leader's automatic bid answers the bid and names
				// its bidder as the leader it took the lead back from.
				steps[0].AutoAnswered = true
				steps = append(steps, models.PriceStep{UserID: toString(v[14]), Amount: models.Money(toInt(v[15])),
					PreviousBid: steps[0].Amount, Auto: true, PreviousBidderID: req.UserID})
				oids = append(oids, oid2)
			}
			d.entries = stepEntries(req, steps, oids, ts, d)
		}
		if out[i], err = d.result(base); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// scriptDeadline is the moment, on Redis's clock in unix ms, after which
// a write refuses to apply. The client gives up ReadTimeout after sending,
// or at ctx's deadline if that comes first, both later than now; the tenth
// of ReadTimeout kept back covers the error of the measured clock offset.
// A write that reaches a stalled Redis late, or a go-redis retry of a
// timed-out call, arrives after the deadline and changes nothing. A script
// that started in time may still answer after the client gave up, so a
// timed-out write is answered as of unknown outcome (classifyWrite), which
// a retry with the same Idempotency-Key settles.
func (s *Store) scriptDeadline(ctx context.Context) int64 {
	if s.cfg.ReadTimeout <= 0 {
		return 0
	}
	margin := s.cfg.ReadTimeout / 10
	end := time.Now().Add(s.cfg.ReadTimeout - margin)
	if d, ok := ctx.Deadline(); ok && d.Add(-margin).Before(end) {
		end = d.Add(-margin)
	}
	return end.Add(time.Duration(s.clockOffset.Load())).UnixMilli()
}

// runPlace runs place.lua with the outbox hint's SADD in the same round
// trip, sent even when nothing was accepted (Pending drops such spare
// hints), so that a gateway dying right after the script leaves the hint in
// place. On a single Redis the SADD is queued behind the script and runs
// after the append; a cluster may serve the hint key from another node,
// where the two run in either order (PlaceBids then adds the hint once
// more). An SADD that fails does not fail the bids the script decided.
func (s *Store) runPlace(ctx context.Context, id string, keys []string, args []any) ([]any, error) {
	var eval *goredis.Cmd
	err := pipelineScript(ctx, s.bids, s.scripts.place, func(p goredis.Pipeliner, run func([]string, ...any) *goredis.Cmd) {
		eval = run(keys, args...)
		p.SAdd(ctx, s.outboxesKey(), id)
	})
	if eval == nil {
		return nil, err
	}
	return eval.Slice()
}

// decision is one bid's answer as both strategies store it in an
// idempotency record and return it: the item's dynamic state right after the
// decision, and the events of the price steps it made.
type decision struct {
	outcome  models.Outcome
	replayed bool
	cur      int64
	bidder   string
	count    int64
	seq      int64
	ends     int64
	status   string
	// max is the leader's maximum after the decision, never in a record;
	// ext counts the end's soft-close extensions (optimistic only).
	max, ext int64
	// oid and event are the outbox id and JSON of the bid's own event, as
	// the idempotency record keeps them; entries, for a new decision, are
	// all the events it appended, already decoded.
	oid     string
	event   string
	entries []service.OutboxEntry
}

// result fills base, which holds the item's static fields.
func (d decision) result(base models.Item) (service.BidResult, error) {
	it := base
	it.CurrentBid = models.Money(d.cur)
	it.HighestBidderID = d.bidder
	it.BidCount = d.count
	it.Seq = uint64(d.seq)
	it.EndsAt = fromMilli(d.ends)
	it.Status = models.Status(d.status)
	// The leader's maximum stays in the store and the entries: an answer
	// goes to a bidder who may not be the leader.
	it.LeaderMax = 0
	r := service.BidResult{Outcome: d.outcome, Item: it, Replayed: d.replayed, Entries: d.entries}
	switch {
	case len(d.entries) > 0:
		r.Event = &d.entries[0].Event
	case d.event != "":
		e, err := models.DecodeEvent([]byte(d.event))
		if err != nil {
			return service.BidResult{}, fmt.Errorf("stored answer's event: %w", err)
		}
		r.Event = &e
	}
	return r, nil
}

// stepEntries are the outbox entries of a decision's price steps, as
// place.lua and decide write them: the first is the bid's own event, a
// second the automatic bid it triggered, whose ids derive from the bid's.
func stepEntries(r service.BidRequest, steps []models.PriceStep, oids []string, ts time.Time, d decision) []service.OutboxEntry {
	out := make([]service.OutboxEntry, len(steps))
	seq, count := uint64(d.seq)-uint64(len(steps)), d.count-int64(len(steps))
	for k, st := range steps {
		ev := models.Event{
			Type: models.EventBid, EventID: r.EventID, ItemID: r.ItemID, BidID: r.BidID, UserID: st.UserID,
			Amount: st.Amount, PreviousBid: st.PreviousBid, Auto: st.Auto, PreviousBidderID: st.PreviousBidderID,
			AutoAnswered: st.AutoAnswered, Timestamp: ts.UTC().Truncate(time.Microsecond),
			Seq: seq + uint64(k) + 1, BidCount: count + int64(k) + 1,
		}
		if k > 0 {
			ev.EventID, ev.BidID = autoID(r.EventID), autoID(r.BidID)
		}
		if d.ends > 0 {
			e := fromMilli(d.ends)
			ev.EndsAt = &e
		}
		// Each entry carries the leader's maximum once its step is done:
		// the bid's own value when an automatic bid answers it.
		leaderMax := models.Money(d.max)
		if k+1 < len(steps) {
			leaderMax = st.Amount
		}
		out[k] = service.OutboxEntry{ID: oids[k], Event: ev, LeaderMax: leaderMax}
	}
	return out
}

// autoID names the automatic bid answering the bid with id, as place.lua
// names it.
func autoID(id string) string { return id + "-auto" }

// record is the idempotency record's hash fields, the same for both
// strategies so that a retry is answered whichever gateway decided first.
func (d decision) record(hash string) []any {
	return []any{
		"h", hash, "o", int(d.outcome),
		"cur", d.cur, "bdr", d.bidder, "cnt", d.count, "seq", d.seq,
		"ea", d.ends, "st", d.status, "oid", d.oid, "ev", d.event,
	}
}

var recordFields = []string{"h", "o", "cur", "bdr", "cnt", "seq", "ea", "st", "oid", "ev"}

// parseRecord reads an HMGET of recordFields; ok is false if there is none.
func parseRecord(v []any) (hash string, d decision, ok bool) {
	if len(v) != len(recordFields) || v[0] == nil {
		return "", decision{}, false
	}
	str := func(i int) string {
		s, _ := v[i].(string)
		return s
	}
	num := func(i int) int64 {
		n, _ := strconv.ParseInt(str(i), 10, 64)
		return n
	}
	return str(0), decision{
		outcome:  models.Outcome(num(1)),
		replayed: true,
		cur:      num(2),
		bidder:   str(3),
		count:    num(4),
		seq:      num(5),
		ends:     num(6),
		status:   str(7),
		oid:      str(8),
		event:    str(9),
	}, true
}
