package redis

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/bidding-platform/api-gateway/internal/service"
	"github.com/bidding-platform/shared/models"
	"github.com/bidding-platform/shared/models/rulestest"
	"github.com/bidding-platform/shared/testenv"
)

// TestRuleCases runs the shared rule table against both strategies in a
// real Redis: the Lua scripts and the optimistic strategy must decide every
// case as models.Decide does.
func TestRuleCases(t *testing.T) {
	r := testenv.Redis(t)
	cfg := DefaultConfig()
	cfg.Addrs = []string{r.Addr()}
	// The cases' moments are set on a frozen clock. They lie in the past,
	// so no bid's deadline (on the real clock) has passed at any of them.
	origin := time.Now().Add(-30 * 24 * time.Hour).Truncate(time.Second)
	for _, strategy := range strategies {
		t.Run(strategy, func(t *testing.T) {
			t.Parallel()
			rulestest.Run(t, origin, func(t *testing.T, terms models.Item) rulestest.Auction {
				s := newStore(t, cfg, strategy)
				frozenClock(t, s)
				a := &storeAuction{s: s, id: terms.ID}
				a.setClock(t, origin)
				newItem(t, s, terms)
				return a
			})
		})
	}
}

// frozenClock makes s decide by the time in a key of its own instead of
// Redis's TIME, so that a case can bid at exactly an auction's end. Only
// the clock's source changes: the scripts are otherwise the ones the
// gateway runs.
func frozenClock(t testing.TB, s *Store) {
	t.Helper()
	s.clockKey = s.cfg.KeyPrefix + "clock"
	const redisTime = "redis.call('TIME')"
	if n := strings.Count(commonLua, redisTime); n != 1 {
		t.Fatalf("common.lua reads %s %d times, want once (in clock)", redisTime, n)
	}
	s.scripts = newScripts(strings.Replace(commonLua, redisTime,
		fmt.Sprintf("redis.call('HMGET', '%s', 'sec', 'usec')", s.clockKey), 1))
}

// storeAuction is one item in a Store, for the rule table.
type storeAuction struct {
	s  *Store
	id string
}

func (a *storeAuction) setClock(t testing.TB, at time.Time) {
	t.Helper()
	if err := a.s.rdb.HSet(ctxT(t), a.s.clockKey, "sec", at.Unix(), "usec", at.Nanosecond()/1000).Err(); err != nil {
		t.Fatalf("set the clock: %v", err)
	}
}

func (a *storeAuction) Bid(t testing.TB, at time.Time, b models.BidAttempt) (models.Outcome, models.Item, []models.PriceStep) {
	t.Helper()
	a.setClock(t, at)
	req := bid(a.id, b.UserID, b.Amount)
	req.SoftClose, req.Max, req.MaxExtensions = b.SoftClose, b.Max, b.MaxExtensions
	res := placeOne(t, a.s, req)
	a.checkEntries(t, res)
	it := res.Item
	mx, err := a.s.rdb.HGet(ctxT(t), a.s.itemKey(a.id), "mx").Int64()
	if errors.Is(err, goredis.Nil) {
		mx, err = 0, nil // no bid yet
	}
	if err != nil {
		t.Fatalf("read the leader's maximum: %v", err)
	}
	it.LeaderMax = models.Money(mx)
	var steps []models.PriceStep
	for _, e := range res.Entries {
		ev := e.Event
		steps = append(steps, models.PriceStep{UserID: ev.UserID, Amount: ev.Amount, PreviousBid: ev.PreviousBid, Auto: ev.Auto,
			PreviousBidderID: ev.PreviousBidderID, AutoAnswered: ev.AutoAnswered, Seq: ev.Seq, BidCount: ev.BidCount, LeaderMax: e.LeaderMax})
	}
	return res.Outcome, it, steps
}

// checkEntries checks that the events a bid made are what the outbox
// holds, valid, in seq order up to the item's seq and ending at its price
// and leader, and that they carry the leader's maximum beside them.
func (a *storeAuction) checkEntries(t testing.TB, res service.BidResult) {
	t.Helper()
	if len(res.Entries) == 0 {
		return
	}
	last := res.Entries[len(res.Entries)-1].Event
	if last.Seq != res.Item.Seq || last.Amount != res.Item.CurrentBid || last.UserID != res.Item.HighestBidderID ||
		res.Event == nil || res.Event.EventID != res.Entries[0].Event.EventID {
		t.Fatalf("the bid's events %+v do not end at the item %+v", res.Entries, res.Item)
	}
	for k, e := range res.Entries {
		if err := e.Event.Validate(); err != nil {
			t.Fatalf("event %d: %v", k, err)
		}
		if e.Event.Seq != last.Seq-uint64(len(res.Entries)-1-k) {
			t.Fatalf("event %d has seq %d; the last has %d", k, e.Event.Seq, last.Seq)
		}
		stored, err := a.s.rdb.XRange(ctxT(t), a.s.outboxKey(a.id), e.ID, e.ID).Result()
		if err != nil || len(stored) != 1 {
			t.Fatalf("outbox entry %s: %v (%d found)", e.ID, err, len(stored))
		}
		got, err := decodeEntry(stored[0])
		if err != nil {
			t.Fatal(err)
		}
		if !sameJSON(t, got.Event, e.Event) || got.LeaderMax != e.LeaderMax {
			t.Fatalf("outbox holds %+v (max %v); the answer says %+v (max %v)", got.Event, got.LeaderMax, e.Event, e.LeaderMax)
		}
	}
}

func (a *storeAuction) Close(t testing.TB, at time.Time) (string, bool) {
	t.Helper()
	a.setClock(t, at)
	entries, _, err := a.s.CloseDue(ctxT(t))
	if err != nil {
		t.Fatalf("CloseDue: %v", err)
	}
	for _, e := range entries {
		if e.Event.ItemID == a.id {
			return e.Event.WinnerID, true
		}
	}
	return "", false
}
