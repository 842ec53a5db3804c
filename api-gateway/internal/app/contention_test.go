package app

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
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
		runContention(t, startGateway(t, cfg), n, 100, 10, 0)
	})
	// The measurement switches must not change the answers either.
	for _, sw := range []struct{ prefilter, coalesce bool }{{false, true}, {true, false}, {false, false}} {
		t.Run(fmt.Sprintf("single/lua/prefilter=%v/coalesce=%v", sw.prefilter, sw.coalesce), func(t *testing.T) {
			t.Parallel()
			n := testenv.NATS(t)
			cfg := testConfig([]string{r.Addr()}, false, n.URL())
			cfg.Prefilter, cfg.Coalesce = sw.prefilter, sw.coalesce
			g := startGateway(t, cfg)
			runContention(t, g, n, 100, 10, 0)
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

// runContention has users bid perUser times each, concurrently, on one
// item: maxShare of the bids are maxima (max_amount), the rest plain. The
// history must be linearizable (automatic bids included), JetStream must
// hold exactly the events of the placed bids, the final price and leader
// must follow from the placed bids' values alone (rulestest.Final), and a
// leader's maximum above the price must show in no read and no event.
func runContention(t *testing.T, g *gateway, n *testenv.NATSServer, users, perUser int, maxShare float64) {
	const item = "hot"
	const inc, start = models.Money(100), models.Money(100)
	g.createItem(t, item, "1.00", "1.00")
	ops := make([]rulestest.Op, users*perUser)
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
				// Values rise with time, jittered so that concurrent bids
				// win, lose (to hidden maxima too) and tie; a maximum
				// reaches further than a plain bid of the same moment.
				o := rulestest.Op{UserID: user, Amount: models.Money(100 * (ticket.Add(1) + int64(rng.IntN(50))))}
				field := "amount"
				if maxShare > 0 && rng.Float64() < maxShare {
					o.Max, field = true, "max_amount"
					o.Amount += models.Money(100 * rng.IntN(100))
				}
				o.Start = time.Now()
				a, err := try("POST", g.url+"/api/v1/items/"+item+"/bid", fmt.Sprintf(`{"user_id":%q,%q:%s}`, user, field, o.Amount))
				o.End = time.Now()
				if err != nil {
					errs <- err
					return
				}
				o.Status = a.Status
				if cur := a.str("current_bid"); cur != "" {
					if o.Current, err = models.ParseMoney(cur); err != nil {
						errs <- fmt.Errorf("current_bid %q: %w", cur, err)
						return
					}
				}
				o.EventID = a.str("event_id")
				leads := a.str("is_highest") == "true"
				switch {
				case a.Status == 200 && leads && !o.Max && o.Current != o.Amount:
					errs <- fmt.Errorf("plain bid %v leads at %v: %s", o.Amount, o.Current, a.Body)
				case a.Status == 200 && leads && o.Current > o.Amount:
					errs <- fmt.Errorf("maximum %v leads at %v, above it: %s", o.Amount, o.Current, a.Body)
				case a.Status == 200 && !leads && (maxShare == 0 || o.Current < o.Amount):
					errs <- fmt.Errorf("bid %v placed but not leading at %v: %s", o.Amount, o.Current, a.Body)
				case a.Status != 200 && a.Status != 409 && a.Status != 503:
					// 503 is right when Redis missed the call's deadline on
					// a loaded machine; the checks below make sure no such
					// bid was applied.
					errs <- fmt.Errorf("bid %v (max %v) by %s: %d %s", o.Amount, o.Max, user, a.Status, a.Body)
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

	// A bid answered 503 but applied anyway would have taken a seq, and
	// its event would match no placed bid.
	it := g.item(t, item)
	evs := waitEvents(t, n.JetStream(), item, int(it.Seq))
	res := rulestest.CheckLinearizable(t, rulestest.History{Ops: ops, Events: evs, StartingPrice: start, MinIncrement: inc})
	autos := 0
	for _, e := range evs {
		if e.Auto {
			autos++
		}
	}
	switch {
	case res.Accepted == 0:
		t.Fatal("no bid accepted")
	case maxShare == 0 && (autos > 0 || len(evs) != res.Accepted):
		t.Errorf("plain bids only, yet %d events (%d automatic) for %d accepted bids", len(evs), autos, res.Accepted)
	case maxShare > 0 && autos == 0:
		t.Error("no automatic bid in the history: the workload did not exercise maxima")
	}
	leader, price, _ := rulestest.Final(ops, evs, start, inc)
	if it.HighestBidderID != leader || it.CurrentBid != price || it.BidCount != int64(len(evs)) {
		t.Errorf("final item: %v by %s after %d bids; the placed bids say %v by %s after %d events", it.CurrentBid, it.HighestBidderID, it.BidCount, price, leader, len(evs))
	}

	// The leader's maximum is its secret.
	var leaderMax models.Money
	for _, o := range ops {
		if o.Status == 200 && o.UserID == leader {
			leaderMax = max(leaderMax, o.Amount)
		}
	}
	if leaderMax > price {
		secret := leaderMax.String()
		if body := do(t, "GET", g.url+"/api/v1/items/"+item, "").Body; strings.Contains(string(body), secret) {
			t.Errorf("GET item shows the leader's maximum %s: %s", secret, body)
		}
		for _, e := range evs {
			if e.Amount == leaderMax || e.PreviousBid == leaderMax {
				t.Errorf("event %d shows the leader's maximum %s", e.Seq, secret)
			}
		}
	}
	t.Logf("%v; %d events (%d automatic); %v by %s", res, len(evs), autos, price, leader)
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
