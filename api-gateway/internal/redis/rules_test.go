package redis

import (
	"fmt"
	"strings"
	"testing"
	"time"

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

func (a *storeAuction) Bid(t testing.TB, at time.Time, b models.BidAttempt) (models.Outcome, models.Item) {
	t.Helper()
	a.setClock(t, at)
	req := bid(a.id, b.UserID, b.Amount)
	req.SoftClose = b.SoftClose
	res := placeOne(t, a.s, req)
	if res.Outcome == models.OutcomeAccepted {
		if res.Event == nil || res.Event.Seq != res.Item.Seq || res.Event.Amount != b.Amount || res.Event.Validate() != nil {
			t.Fatalf("accepted bid's event %+v does not match the item %+v", res.Event, res.Item)
		}
	}
	return res.Outcome, res.Item
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
