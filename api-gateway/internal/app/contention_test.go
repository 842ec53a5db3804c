package app

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bidding-platform/shared/models"
	"github.com/bidding-platform/shared/models/rulestest"
	"github.com/bidding-platform/shared/testenv"
)

// op is one bid as the client saw it.
type op struct {
	user       string
	amount     models.Money
	start, end time.Time
	status     int
	current    models.Money // current_bid in the answer
	eventID    string
}

// 1,000 concurrent bids from 100 users on one item, through HTTP, for each
// strategy on a single Redis and on a Redis Cluster; the history must be
// linearizable and JetStream must hold exactly the accepted events.
func TestConcurrentBidsLinearizable(t *testing.T) {
	t.Parallel()
	r := testenv.Redis(t)
	eachStore(t, r, func(t *testing.T, cfg Config, n *testenv.NATSServer) {
		runContention(t, startGateway(t, cfg), n, 100, 10)
	})
	// The measurement switches must not change the answers either.
	for _, sw := range []struct{ prefilter, coalesce bool }{{false, true}, {true, false}, {false, false}} {
		t.Run(fmt.Sprintf("single/lua/prefilter=%v/coalesce=%v", sw.prefilter, sw.coalesce), func(t *testing.T) {
			t.Parallel()
			n := testenv.NATS(t)
			cfg := testConfig([]string{r.Addr()}, false, n.URL())
			cfg.Prefilter, cfg.Coalesce = sw.prefilter, sw.coalesce
			g := startGateway(t, cfg)
			runContention(t, g, n, 100, 10)
		})
	}
}

// eachStore runs f in parallel for each strategy on a single Redis (r) and
// on a Redis Cluster, each with a NATS server of its own.
func eachStore(t *testing.T, r *testenv.RedisServer, f func(t *testing.T, cfg Config, n *testenv.NATSServer)) {
	c := testenv.Cluster(t)
	for _, top := range []struct {
		name    string
		addrs   []string
		cluster bool
	}{{"single", []string{r.Addr()}, false}, {"cluster", c.Addrs(), true}} {
		for _, strategy := range []string{"lua", "optimistic"} {
			t.Run(top.name+"/"+strategy, func(t *testing.T) {
				t.Parallel()
				n := testenv.NATS(t)
				cfg := testConfig(top.addrs, top.cluster, n.URL())
				cfg.RedisStrategy = strategy
				f(t, cfg, n)
			})
		}
	}
}

func runContention(t *testing.T, g *gateway, n *testenv.NATSServer, users, perUser int) {
	const item = "hot"
	const inc = models.Money(100)
	g.createItem(t, item, "1.00", "1.00")
	ops := make([]op, users*perUser)
	var ticket atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, users)
	for u := 0; u < users; u++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(u), 7))
			user := "user_" + strconv.Itoa(u)
			for k := 0; k < perUser; k++ {
				// Amounts rise with time, jittered so that concurrent
				// bids win, lose and tie against each other.
				amount := models.Money(100 * (ticket.Add(1) + int64(rng.IntN(50))))
				o := op{user: user, amount: amount, start: time.Now()}
				a, err := try("POST", g.url+"/api/v1/items/"+item+"/bid", fmt.Sprintf(`{"user_id":%q,"amount":%s}`, user, amount))
				o.end = time.Now()
				if err != nil {
					errs <- err
					return
				}
				o.status = a.Status
				if cur := a.str("current_bid"); cur != "" {
					o.current, err = models.ParseMoney(cur)
					if err != nil {
						errs <- fmt.Errorf("current_bid %q: %w", cur, err)
						return
					}
				}
				o.eventID = a.str("event_id")
				if a.Status == 200 && (o.current != amount || a.str("is_highest") != "true") {
					errs <- fmt.Errorf("accepted answer %s for %v", a.Body, amount)
				}
				// 503 is a right answer when Redis missed the call's
				// deadline on a loaded machine; the checks below make
				// sure no such bid was applied.
				if a.Status != 200 && a.Status != 409 && a.Status != 503 {
					errs <- fmt.Errorf("bid %v by %s: %d %s", amount, user, a.Status, a.Body)
					return
				}
				ops[u*perUser+k] = o
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	accepted := map[string]op{}
	var highest models.Money
	for _, o := range ops {
		if o.status == 200 {
			if _, dup := accepted[o.eventID]; dup || o.eventID == "" {
				t.Fatalf("event id %q answered twice or empty", o.eventID)
			}
			accepted[o.eventID] = o
			highest = max(highest, o.amount)
		}
	}
	if len(accepted) == 0 {
		t.Fatal("no bid accepted")
	}
	evs := waitEvents(t, n.JetStream(), item, len(accepted))
	checkLinearizable(t, ops, evs, inc, 100)

	// A bid answered 503 but applied anyway would have taken a seq.
	it := g.item(t, item)
	if it.CurrentBid != highest || it.BidCount != int64(len(accepted)) || it.Seq != uint64(len(accepted)) {
		t.Errorf("final item %+v, want current %v (highest accepted), %d bids and seq", it, highest, len(accepted))
	}
	t.Logf("%d bids, %d accepted", len(ops), len(accepted))
}

// checkLinearizable checks the item's history with the shared checker: one
// gateway's every answer must be linearizable, stale prices included.
func checkLinearizable(t *testing.T, ops []op, evs []models.Event, inc, start models.Money) {
	t.Helper()
	h := rulestest.History{Events: evs, StartingPrice: start, MinIncrement: inc}
	for _, o := range ops {
		h.Ops = append(h.Ops, rulestest.Op{UserID: o.user, Amount: o.amount, Start: o.start, End: o.end,
			Status: o.status, Current: o.current, EventID: o.eventID})
	}
	rulestest.CheckLinearizable(t, h)
}

// The checker itself must catch a rejection that names a stale price.
func TestCheckerCatchesStaleRejection(t *testing.T) {
	t.Parallel()
	t0 := time.Now()
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	a1 := op{user: "a", amount: 500, start: at(0), end: at(1), status: 200, current: 500, eventID: "e1"}
	a2 := op{user: "b", amount: 700, start: at(2), end: at(3), status: 200, current: 700, eventID: "e2"}
	// Starts after e2 was answered, yet names e1's price.
	stale := op{user: "c", amount: 550, start: at(5), end: at(6), status: 409, current: 500}
	evs := []models.Event{{EventID: "e1", Seq: 1, Amount: 500, UserID: "a"}, {EventID: "e2", Seq: 2, Amount: 700, PreviousBid: 500, UserID: "b"}}
	ft := &testing.T{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		checkLinearizable(ft, []op{a1, a2, stale}, evs, 100, 100)
	}()
	<-done
	if !ft.Failed() {
		t.Error("checker accepted a rejection that named a superseded price")
	}
}
