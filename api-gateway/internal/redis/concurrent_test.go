package redis

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/bidding-platform/api-gateway/internal/service"
	"github.com/bidding-platform/shared/models"
	"github.com/bidding-platform/shared/testenv"
)

// TestConcurrentBids sends 1,000 bids from 100 goroutines at one item and
// checks the history the store produced: accepted amounts rise by at least
// the increment in seq order, seq has no gaps, the outbox holds exactly the
// accepted events, and no rejected bid could have beaten the final price.
// On a loaded machine some calls may miss their deadline: those must be
// reported as unavailable, and none of them may have been applied.
func TestConcurrentBids(t *testing.T) {
	forEach(t, topologies(t), func(t *testing.T, s *Store, _ topology) {
		const (
			workers = 100
			perWork = 10
			start   = 1000
			inc     = 100
		)
		it := newItem(t, s, models.Item{StartingPrice: start, MinIncrement: inc})
		type answer struct {
			req service.BidRequest
			res service.BidResult
		}
		var (
			mu      sync.Mutex
			answers []answer
			wg      sync.WaitGroup
			failed  = map[string]error{} // event id -> error, under mu
		)
		var next atomic.Int64
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				user := fmt.Sprintf("user_%d", w)
				for i := 0; i < perWork; i++ {
					// Amounts climb with the count of bids sent, with
					// enough noise that many collide and lose.
					n := next.Add(1)
					amount := models.Money(start + n*inc/2 + rand.Int64N(3*inc))
					req := bid(it.ID, user, amount)
					res, err := s.PlaceBids(context.Background(), []service.BidRequest{req})
					if err != nil {
						mu.Lock()
						failed[req.EventID] = err
						mu.Unlock()
						continue
					}
					mu.Lock()
					answers = append(answers, answer{req, res[0]})
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		for _, err := range failed {
			if !errors.Is(err, service.ErrUnavailable) {
				t.Fatalf("a bid failed with %v, want only unavailable (deadline or outage) errors", err)
			}
		}

		var acc []answer
		var maxOffered models.Money
		for _, a := range answers {
			maxOffered = max(maxOffered, a.req.Amount)
			switch a.res.Outcome {
			case models.OutcomeAccepted:
				acc = append(acc, a)
			case models.OutcomeTooLow:
			default:
				t.Errorf("bid %+v answered %s", a.req, a.res.Outcome)
			}
		}
		slices.SortFunc(acc, func(a, b answer) int { return int(a.res.Event.Seq) - int(b.res.Event.Seq) })
		for i, a := range acc {
			if got, want := a.res.Event.Seq, uint64(i+1); got != want {
				t.Fatalf("accepted bid %d has seq %d, want %d (no gaps, no repeats)", i, got, want)
			}
			if a.res.Event.EventID != a.req.EventID || a.res.Event.Amount != a.req.Amount {
				t.Errorf("seq %d: event %+v does not match its request %+v", a.res.Event.Seq, a.res.Event, a.req)
			}
			if i > 0 {
				prev := acc[i-1].req.Amount
				if a.req.Amount < prev+inc {
					t.Errorf("seq %d accepted %v after %v: below the increment", i+1, a.req.Amount, prev)
				}
				if a.res.Event.PreviousBid != prev {
					t.Errorf("seq %d names previous %v, want %v", i+1, a.res.Event.PreviousBid, prev)
				}
			}
		}
		if len(acc) < 2 {
			t.Fatalf("only %d bids accepted; the test needs contention with winners", len(acc))
		}
		final := item(t, s, it.ID)
		last := acc[len(acc)-1]
		if final.CurrentBid != last.req.Amount || final.HighestBidderID != last.req.UserID ||
			final.Seq != uint64(len(acc)) || final.BidCount != int64(len(acc)) {
			t.Errorf("final item %+v, want %v by %s after %d bids", final, last.req.Amount, last.req.UserID, len(acc))
		}
		// The highest valid amount won: nothing offered could beat the final
		// price, so every rejection was right at the end too.
		if maxOffered >= final.CurrentBid+inc {
			t.Errorf("%v was offered but the final price is %v", maxOffered, final.CurrentBid)
		}
		for _, a := range answers {
			if a.res.Outcome == models.OutcomeTooLow && a.req.Amount >= a.res.Item.MinNextBid() {
				t.Errorf("bid %v rejected though the answer's min next bid is %v", a.req.Amount, a.res.Item.MinNextBid())
			}
		}

		pending, err := s.Pending(ctxT(t), 0, 10*len(acc))
		if err != nil {
			t.Fatal(err)
		}
		if len(pending) != len(acc) {
			t.Fatalf("outbox holds %d events, want %d", len(pending), len(acc))
		}
		for i, e := range pending {
			if err, ok := failed[e.Event.EventID]; ok {
				t.Fatalf("bid answered %v was applied: %+v", err, e.Event)
			}
			if e.Event.EventID != acc[i].req.EventID || e.ID != acc[i].res.Entries[0].ID {
				t.Errorf("outbox entry %d is %s (%s), want %s (%s)", i, e.Event.EventID, e.ID, acc[i].req.EventID, acc[i].res.Entries[0].ID)
			}
		}
		t.Logf("%d bids answered, %d accepted, %d unavailable, final %v", len(answers), len(acc), len(failed), final.CurrentBid)
	})
}

// TestRedisDown checks that a dead or frozen Redis gives ErrUnavailable
// quickly, and that the same store works again when Redis is back.
func TestRedisDown(t *testing.T) {
	for _, strategy := range strategies {
		t.Run(strategy, func(t *testing.T) {
			t.Parallel()
			s, r := storeOnOwnRedis(t, strategy, nil)
			it := newItem(t, s, models.Item{})
			wantOutcome(t, "before", placeOne(t, s, bid(it.ID, "u1", 1000)), models.OutcomeAccepted)

			// A hang check, not a benchmark: the bound is several times
			// the timeouts, for a loaded machine.
			const bound = 10 * time.Second
			down := func(what string) {
				t.Helper()
				for i := 0; i < 3; i++ {
					begin := time.Now()
					_, err := s.PlaceBids(context.Background(), []service.BidRequest{bid(it.ID, "u2", 5000)})
					if took := time.Since(begin); took > bound {
						t.Errorf("%s: PlaceBids took %v, want under %v", what, took, bound)
					}
					if !errors.Is(err, service.ErrUnavailable) {
						t.Fatalf("%s: PlaceBids error = %v, want ErrUnavailable", what, err)
					}
					begin = time.Now()
					if err := s.Ping(context.Background()); !errors.Is(err, service.ErrUnavailable) || time.Since(begin) > bound {
						t.Errorf("%s: Ping = %v after %v, want ErrUnavailable quickly", what, err, time.Since(begin))
					}
				}
			}

			r.Pause()
			down("frozen redis")
			r.Resume()
			testenv.WaitFor(t, 5*time.Second, "redis answering again", func() error { return s.Ping(context.Background()) })
			// Redis runs the queued calls once resumed, long after their
			// clients gave up and answered 503: they must change nothing.
			if got := item(t, s, it.ID); got.CurrentBid != 1000 || got.Seq != 1 {
				t.Errorf("after resume item %+v, want the bids answered 503 not applied (10.00, seq 1)", got)
			}
			wantOutcome(t, "after resume", placeOne(t, s, bid(it.ID, "u3", 9000)), models.OutcomeAccepted)

			r.Kill()
			down("killed redis")
			r.Start()
			// Without persistence the item is gone; the store must still
			// answer, recreate it, and bid on it without a restart.
			testenv.WaitFor(t, 5*time.Second, "the restarted redis to take bids", func() error {
				_, err := s.Item(context.Background(), it.ID)
				if errors.Is(err, service.ErrItemNotFound) {
					return nil
				}
				return fmt.Errorf("Item after restart: %v", err)
			})
			again := newItem(t, s, models.Item{ID: it.ID})
			r2 := placeOne(t, s, bid(again.ID, "u4", 1000))
			wantOutcome(t, "after restart", r2, models.OutcomeAccepted)
			if r2.Event.Seq != 1 {
				t.Errorf("first bid after restart has seq %d, want 1", r2.Event.Seq)
			}
		})
	}
}

// TestClusterNodeDown kills the master that owns an item's slot: bids on it
// fail fast with ErrUnavailable, and work again once the node is back.
func TestClusterNodeDown(t *testing.T) {
	for _, strategy := range strategies {
		t.Run(strategy, func(t *testing.T) {
			t.Parallel()
			c := testenv.Cluster(t)
			cfg := DefaultConfig()
			cfg.Addrs, cfg.Cluster = c.Addrs(), true
			s := newStore(t, cfg, strategy)
			it := newItem(t, s, models.Item{})
			owner, err := s.cluster.MasterForKey(ctxT(t), s.itemKey(it.ID))
			if err != nil {
				t.Fatal(err)
			}
			node := slices.IndexFunc(c.Nodes, func(n *testenv.RedisServer) bool { return n.Addr() == owner.Options().Addr })
			if node < 0 {
				t.Fatalf("owner %s is not one of %v", owner.Options().Addr, c.Addrs())
			}
			c.Nodes[node].Kill()
			const bound = 10 * time.Second // a hang check, not a benchmark
			for i := 0; i < 3; i++ {
				begin := time.Now()
				_, err := s.PlaceBids(context.Background(), []service.BidRequest{bid(it.ID, "u1", 5000)})
				if took := time.Since(begin); took > bound {
					t.Errorf("PlaceBids took %v with the owner down, want under %v", took, bound)
				}
				if !errors.Is(err, service.ErrUnavailable) {
					t.Fatalf("PlaceBids with the owner down: error %v, want ErrUnavailable", err)
				}
			}
			c.Nodes[node].Start()
			testenv.WaitFor(t, 10*time.Second, "the restarted node to serve its slots", func() error {
				_, err := s.CreateItem(context.Background(), models.Item{ID: it.ID, Name: "again", StartingPrice: 1000,
					MinIncrement: 100, EndsAt: time.Now().Add(time.Hour)})
				if err != nil && !errors.Is(err, service.ErrItemExists) {
					return err
				}
				return nil
			})
			wantOutcome(t, "after restart", placeOne(t, s, bid(it.ID, "u2", 1000)), models.OutcomeAccepted)
		})
	}
}

// TestScriptDeadlineFollowsRedisClock: bid writes carry a deadline on
// Redis's clock, from the offset the store measures; a wrong offset makes
// them refuse (never apply late), and a Ping measures it again.
func TestScriptDeadlineFollowsRedisClock(t *testing.T) {
	r := testenv.Redis(t)
	cfg := DefaultConfig()
	cfg.Addrs = []string{r.Addr()}
	for _, strategy := range strategies {
		t.Run(strategy, func(t *testing.T) {
			s := newStore(t, cfg, strategy)
			it := newItem(t, s, models.Item{})

			// As if Redis's clock ran an hour behind ours: every deadline has passed.
			s.clockOffset.Store(int64(-time.Hour))
			_, err := s.PlaceBids(ctxT(t), []service.BidRequest{bid(it.ID, "u1", 1000)})
			if !errors.Is(err, service.ErrUnavailable) {
				t.Fatalf("PlaceBids past its deadline: error %v, want ErrUnavailable", err)
			}
			if got := item(t, s, it.ID); got.Seq != 0 {
				t.Fatalf("a refused bid changed the item: %+v", got)
			}
			lateID := "late_" + strategy
			if _, err := s.CreateItem(ctxT(t), models.Item{ID: lateID, Name: "x", StartingPrice: 100}); !errors.Is(err, service.ErrUnavailable) {
				t.Errorf("CreateItem past its deadline: error %v, want ErrUnavailable", err)
			}
			if _, err := s.Item(ctxT(t), lateID); !errors.Is(err, service.ErrItemNotFound) {
				t.Errorf("a refused CreateItem left an item: %v", err)
			}
			if err := s.Ping(ctxT(t)); err != nil {
				t.Fatal(err)
			}
			if off := time.Duration(s.clockOffset.Load()); off < -time.Second || off > time.Second {
				t.Fatalf("measured offset %v on one machine, want about zero", off)
			}
			wantOutcome(t, "after Ping measured the clock", placeOne(t, s, bid(it.ID, "u1", 1000)), models.OutcomeAccepted)
		})
	}
}

// TestLateWriteNeverApplies freezes Redis just before a bid's write goes
// out: the store gives up (the gateway answers 503 "may have been
// accepted"), and when Redis wakes and finally runs the write, it must
// refuse it, so that the bidder's retry with the same Idempotency-Key
// learns it was not applied. lua checks its deadline in the script;
// optimistic's EXEC is aborted by its expired guard key.
func TestLateWriteNeverApplies(t *testing.T) {
	for _, strategy := range strategies {
		t.Run(strategy, func(t *testing.T) {
			t.Parallel()
			// The late write, not a retry, is under test; longer timeouts
			// keep a slow machine from passing the deadline before the
			// write is even sent.
			s, r := storeOnOwnRedis(t, strategy, func(c *Config) {
				c.MaxRetries, c.ReadTimeout, c.OpTimeout = -1, time.Second, 3*time.Second
			})
			it := newItem(t, s, models.Item{})
			// Connect the bid client now, so that what the freeze catches
			// is the write itself, not the connection's handshake.
			if err := s.bids.Ping(ctxT(t)).Err(); err != nil {
				t.Fatal(err)
			}
			raw := r.Client()
			writeCmd := map[string]string{StrategyLua: "evalsha", StrategyOptimistic: "exec"}[strategy]
			before := commandCalls(t, raw, writeCmd)

			var frozen atomic.Bool
			s.beforeWrite = func() {
				if frozen.CompareAndSwap(false, true) {
					r.Pause()
				}
			}
			_, err := s.PlaceBids(ctxT(t), []service.BidRequest{bid(it.ID, "u1", 1000)})
			r.Resume()
			if !frozen.Load() {
				t.Fatal("the bid never reached its write")
			}
			if !errors.Is(err, service.ErrOutcomeUnknown) {
				t.Fatalf("PlaceBids with Redis frozen: error %v, want ErrOutcomeUnknown (the write was sent)", err)
			}
			// Redis runs the write it received while frozen; then the
			// item must be as before.
			testenv.WaitFor(t, 10*time.Second, "the frozen write to leave the item as before", func() error {
				if n := commandCalls(t, raw, writeCmd); n <= before {
					return fmt.Errorf("%s calls %d, want more than %d", writeCmd, n, before)
				}
				return nil
			})
			s.beforeWrite = nil
			if got := item(t, s, it.ID); got.Seq != 0 || got.BidCount != 0 {
				t.Fatalf("a bid answered unavailable was applied late: %+v", got)
			}
			if n, err := raw.XLen(ctxT(t), s.outboxKey(it.ID)).Result(); err != nil || n != 0 {
				t.Fatalf("outbox holds %d events (err %v) after the late write, want none", n, err)
			}
			wantOutcome(t, "after Redis woke", placeOne(t, s, bid(it.ID, "u1", 1000)), models.OutcomeAccepted)
		})
	}
}

// commandCalls is how often Redis has run cmd, from INFO commandstats.
func commandCalls(t testing.TB, c *goredis.Client, cmd string) int {
	t.Helper()
	info, err := c.Info(ctxT(t), "commandstats").Result()
	if err != nil {
		t.Fatalf("INFO commandstats: %v", err)
	}
	for _, line := range strings.Split(info, "\n") {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "cmdstat_"+cmd+":calls=")
		if !ok {
			continue
		}
		n, _ := strconv.Atoi(rest[:strings.IndexByte(rest, ',')])
		return n
	}
	return 0
}

// TestRelayWhileBidding drains the outbox the way the relay does while bids
// keep arriving: every accepted event must come out exactly once, which
// also checks that dropping the hint of an emptied outbox never hides an
// event appended at the same moment.
func TestRelayWhileBidding(t *testing.T) {
	forEach(t, topologies(t), func(t *testing.T, s *Store, _ topology) {
		const itemsN, bidsPerItem = 5, 60
		var ids []string
		for i := 0; i < itemsN; i++ {
			ids = append(ids, newItem(t, s, models.Item{StartingPrice: 100, MinIncrement: 1}).ID)
		}
		accepted := make(chan string, itemsN*bidsPerItem)
		done := make(chan struct{})
		var wg sync.WaitGroup
		for _, id := range ids {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < bidsPerItem; i++ {
					res, err := s.PlaceBids(context.Background(), []service.BidRequest{bid(id, "u1", models.Money(100+i))})
					if err == nil && res[0].Outcome == models.OutcomeAccepted {
						accepted <- res[0].Event.EventID
					}
				}
			}()
		}
		go func() { wg.Wait(); close(done) }()

		seen := map[string]int{}
		relay := func() error {
			got, err := s.Pending(context.Background(), 0, 50)
			if err != nil {
				return err
			}
			for _, e := range got {
				seen[e.Event.EventID]++
			}
			return s.Ack(context.Background(), got...)
		}
		for running := true; running; {
			select {
			case <-done:
				running = false
			default:
			}
			if err := relay(); err != nil {
				t.Fatalf("relay: %v", err)
			}
		}
		close(accepted)
		want := map[string]bool{}
		for id := range accepted {
			want[id] = true
		}
		testenv.WaitFor(t, 10*time.Second, "every accepted event in the outbox", func() error {
			if err := relay(); err != nil {
				return err
			}
			n, err := s.Backlog(context.Background())
			if err != nil || n != 0 {
				return fmt.Errorf("backlog %d, %v", n, err)
			}
			if len(seen) < len(want) {
				return fmt.Errorf("relayed %d of %d events", len(seen), len(want))
			}
			return nil
		})
		for id := range want {
			if seen[id] != 1 {
				t.Errorf("event %s relayed %d times, want once", id, seen[id])
			}
		}
		if len(seen) != len(want) {
			t.Errorf("relayed %d events, %d were accepted", len(seen), len(want))
		}
		if len(want) != itemsN*bidsPerItem {
			t.Errorf("%d bids accepted, want all %d (each bid raises the price)", len(want), itemsN*bidsPerItem)
		}
	})
}

// TestPendingReadsAboutMax gives 300 items a backlog of three events each, as
// after an outage of NATS, and drains it in batches of 50: each call must
// read about one batch of entries whatever the number of items, and the
// drain must yield every event once, each item's in seq order.
func TestPendingReadsAboutMax(t *testing.T) {
	t.Parallel()
	s, r := storeOnOwnRedis(t, StrategyLua, nil)
	raw := r.Client()
	defer raw.Close()
	const itemsN, perItem, batch = 300, 3, 50
	want := map[string]bool{}
	for range itemsN {
		it := newItem(t, s, models.Item{StartingPrice: 100, MinIncrement: 1})
		for i := range perItem {
			res := placeOne(t, s, bid(it.ID, "u1", models.Money(100+i)))
			wantOutcome(t, "bid", res, models.OutcomeAccepted)
			want[res.Event.EventID] = true
		}
	}

	// The orphan scan, due on a store's first Pending, looks at every
	// outbox; it runs once a minute and is not what this test measures.
	if err := s.scanOrphans(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	lastSeq := map[string]uint64{}
	for calls := 0; len(seen) < len(want); calls++ {
		if calls > 3*itemsN*perItem/batch {
			t.Fatalf("%d of %d events after %d calls of Pending(%d)", len(seen), len(want), calls, batch)
		}
		xrange0, xlen0 := commandCalls(t, raw, "xrange"), commandCalls(t, raw, "xlen")
		got, err := s.Pending(ctxT(t), 0, batch)
		if err != nil {
			t.Fatal(err)
		}
		// SSCAN may return a few more members than asked for.
		if n, m := commandCalls(t, raw, "xrange")-xrange0, commandCalls(t, raw, "xlen")-xlen0; n > batch || m > 2*batch {
			t.Fatalf("one Pending(%d) ran %d XRANGEs and %d XLENs over %d items", batch, n, m, itemsN)
		}
		if len(got) == 0 || len(got) > batch {
			t.Fatalf("Pending(%d) = %d entries with %d events left", batch, len(got), len(want)-len(seen))
		}
		for _, e := range got {
			if seen[e.Event.EventID] || !want[e.Event.EventID] {
				t.Fatalf("event %s returned twice or never placed", e.Event.EventID)
			}
			seen[e.Event.EventID] = true
			if e.Event.Seq != lastSeq[e.Event.ItemID]+1 {
				t.Fatalf("item %s: seq %d after %d", e.Event.ItemID, e.Event.Seq, lastSeq[e.Event.ItemID])
			}
			lastSeq[e.Event.ItemID] = e.Event.Seq
		}
		if err := s.Ack(ctxT(t), got...); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := s.Backlog(ctxT(t)); err != nil || n != 0 {
		t.Errorf("Backlog after the drain = %d, %v; want 0", n, err)
	}
	if keys, err := raw.Keys(ctxT(t), s.cfg.KeyPrefix+"item:{*}:outbox").Result(); err != nil || len(keys) != 0 {
		t.Errorf("%d outbox keys left after the drain (%v), want none", len(keys), err)
	}
}

// TestHintSurvivesDeathAfterWrite cuts the gateway off right after a bid's
// write round trip, as if it died there: the outbox hint must already be
// in place, so the relay finds the event at once rather than after the
// next orphan scan.
func TestHintSurvivesDeathAfterWrite(t *testing.T) {
	// Generous timeouts: on a loaded machine an SADD lost to a timeout is
	// left to the scan, which is right, but not what this test is about.
	tops := topologies(t)
	for i := range tops {
		tops[i].cfg.ReadTimeout, tops[i].cfg.WriteTimeout, tops[i].cfg.OpTimeout = 5*time.Second, 5*time.Second, 10*time.Second
	}
	forEach(t, tops, func(t *testing.T, s *Store, top topology) {
		if top.name == "cluster" && s.cfg.Strategy == StrategyOptimistic {
			t.Skip("a cluster's MULTI/EXEC cannot reach the hint key's slot; the hint follows the answer")
		}
		it := newItem(t, s, models.Item{})
		ctx, cut := context.WithCancel(ctxT(t))
		defer cut()
		s.afterWrite = cut
		res, err := s.PlaceBids(ctx, []service.BidRequest{bid(it.ID, "u1", 1000)})
		s.afterWrite = nil
		if err != nil {
			t.Fatal(err)
		}
		wantOutcome(t, "bid", res[0], models.OutcomeAccepted)
		if hints := s.rdbMembersForTest(t); !slices.Contains(hints, it.ID) {
			t.Errorf("hint set %v lacks %s after the write", hints, it.ID)
		}
	})
}
