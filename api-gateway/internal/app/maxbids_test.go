package app

import (
	"encoding/json"
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

// 1,000 concurrent bids from 100 users on one item, half of them maxima,
// for each strategy on a single Redis and on a Redis Cluster. The history
// must be linearizable (automatic bids included), the final price and
// leader must follow from the placed bids' values alone, and the leader's
// maximum above the price must appear in no answer to a read and no event.
func TestConcurrentMaxBids(t *testing.T) {
	t.Parallel()
	eachStore(t, testenv.Redis(t), func(t *testing.T, cfg Config, n *testenv.NATSServer) {
		runMaxContention(t, startGateway(t, cfg), n, 100, 10)
	})
}

func runMaxContention(t *testing.T, g *gateway, n *testenv.NATSServer, users, perUser int) {
	const item = "hot_max"
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
			rng := rand.New(rand.NewPCG(uint64(u), 11))
			user := "user_" + strconv.Itoa(u)
			for k := 0; k < perUser; k++ {
				// Values rise with time, jittered so that concurrent bids
				// win, lose to hidden maxima and tie; a maximum reaches
				// further than a plain bid of the same moment.
				o := rulestest.Op{UserID: user, Max: rng.IntN(2) == 0}
				o.Amount = models.Money(100 * (ticket.Add(1) + int64(rng.IntN(50))))
				field := "amount"
				if o.Max {
					o.Amount += models.Money(100 * rng.IntN(100))
					field = "max_amount"
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
				switch {
				case a.Status == 200 && a.str("is_highest") == "true" && !o.Max && o.Current != o.Amount:
					errs <- fmt.Errorf("plain bid %v leads at %v: %s", o.Amount, o.Current, a.Body)
				case a.Status == 200 && a.str("is_highest") == "true" && o.Current > o.Amount:
					errs <- fmt.Errorf("maximum %v leads at %v, above it: %s", o.Amount, o.Current, a.Body)
				case a.Status == 200 && a.str("is_highest") == "false" && o.Current < o.Amount:
					errs <- fmt.Errorf("bid %v outbid at %v, below it: %s", o.Amount, o.Current, a.Body)
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

	it := g.item(t, item)
	evs := waitEvents(t, n.JetStream(), item, int(it.Seq))
	res := rulestest.CheckLinearizable(t, rulestest.History{Ops: ops, Events: evs, StartingPrice: start, MinIncrement: inc})
	autos := 0
	for _, e := range evs {
		if e.Auto {
			autos++
		}
	}
	if autos == 0 {
		t.Error("no automatic bid in the history: the workload did not exercise maxima")
	}
	leader, price, ok := rulestest.Final(ops, evs, start, inc)
	if !ok || it.HighestBidderID != leader || it.CurrentBid != price || it.BidCount != int64(len(evs)) {
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
		body := do(t, "GET", g.url+"/api/v1/items/"+item, "").Body
		if strings.Contains(string(body), secret) {
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

// The answers to maximum bids over HTTP: a maximum leads below its amount
// and only its bidder hears the amount; a lower bid is placed and outbid at
// once (200, not highest) with the automatic bid's events in history; the
// leader raising its maximum moves no price; both amounts at once, or a
// maximum that does not raise one's own, change nothing.
func TestMaxBidAnswers(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	g := e.gw
	g.createItem(t, "lot_max", "10.00", "1.00")
	maxBid := func(user, amount string) answer {
		return do(t, "POST", g.url+"/api/v1/items/lot_max/bid", fmt.Sprintf(`{"user_id":%q,"max_amount":%s}`, user, amount))
	}
	if a := maxBid("alice", "50.00"); a.Status != 200 || a.str("current_bid") != "10.00" || a.str("is_highest") != "true" || a.str("max_amount") != "50.00" {
		t.Fatalf("alice's maximum: %d %s", a.Status, a.Body)
	}
	if a := g.bid(t, "lot_max", "bob", "20.00"); a.Status != 200 || a.str("success") != "true" || a.str("is_highest") != "false" ||
		a.str("current_bid") != "21.00" || !strings.Contains(a.str("message"), "automatic bid") || strings.Contains(string(a.Body), "50.00") {
		t.Fatalf("bob's bid under alice's maximum: %d %s", a.Status, a.Body)
	}
	before := g.item(t, "lot_max")
	for _, tc := range []struct {
		name, body string
		status     int
	}{
		{"both amounts", `{"user_id":"carol","amount":30.00,"max_amount":40.00}`, 400},
		{"neither amount", `{"user_id":"carol"}`, 400},
		{"a maximum not above one's own", `{"user_id":"alice","max_amount":50.00}`, 409},
		{"a bad maximum", `{"user_id":"carol","max_amount":"lots"}`, 400},
	} {
		a := do(t, "POST", g.url+"/api/v1/items/lot_max/bid", tc.body)
		if a.Status != tc.status {
			t.Errorf("%s: %d %s, want %d", tc.name, a.Status, a.Body, tc.status)
		}
		if after := g.item(t, "lot_max"); after.Seq != before.Seq || after.CurrentBid != before.CurrentBid {
			t.Errorf("%s changed the item: %+v, was %+v", tc.name, after, before)
		}
	}
	if a := maxBid("alice", "80.00"); a.Status != 200 || a.str("current_bid") != "21.00" || a.str("is_highest") != "true" || a.str("event_id") != "" {
		t.Fatalf("alice raising her maximum: %d %s", a.Status, a.Body)
	}
	body := string(do(t, "GET", g.url+"/api/v1/items/lot_max", "").Body)
	if strings.Contains(body, "80.00") || strings.Contains(body, "50.00") || !strings.Contains(body, `"highest_bidder_id":"alice"`) {
		t.Errorf("GET item: %s", body)
	}
	evs := waitEvents(t, e.nats.JetStream(), "lot_max", 3)
	if evs[1].UserID != "bob" || evs[1].Amount != 2000 || evs[1].Auto || evs[2].UserID != "alice" || evs[2].Amount != 2100 || !evs[2].Auto || evs[2].PreviousBid != 2000 {
		t.Errorf("events: %+v", evs)
	}
}

// A Redis that lost everything gets the leader's maximum back from the
// event log, where it is logged beside the last bid event (never in it):
// the next lower bid is still outbid automatically, and a tie still goes to
// the leader.
func TestLeaderMaxSurvivesRedisLoss(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	g := e.gw
	g.createItem(t, "lot", "10.00", "1.00")
	if a := do(t, "POST", g.url+"/api/v1/items/lot/bid", `{"user_id":"alice","max_amount":50.00}`); a.Status != 200 {
		t.Fatalf("alice's maximum: %d %s", a.Status, a.Body)
	}
	if a := g.bid(t, "lot", "bob", "20.00"); a.Status != 200 || a.str("is_highest") != "false" {
		t.Fatalf("bob's bid: %d %s", a.Status, a.Body)
	}
	evs := waitEvents(t, e.nats.JetStream(), "lot", 3)
	for _, ev := range evs {
		if b, _ := json.Marshal(ev); strings.Contains(string(b), "50.00") {
			t.Errorf("event %d shows alice's maximum: %s", ev.Seq, b)
		}
	}
	e.redis.Stop()
	e.redis.Start() // empty: this Redis keeps no data
	testenv.WaitFor(t, 10*time.Second, "reading the item again", func() error {
		it, err := try("GET", g.url+"/api/v1/items/lot", "")
		if err != nil || it.Status != 200 || it.str("current_bid") != "21.00" || it.str("highest_bidder_id") != "alice" {
			return fmt.Errorf("GET item: %v %d %s", err, it.Status, it.Body)
		}
		return nil
	})
	if a := g.bid(t, "lot", "bob", "30.00"); a.Status != 200 || a.str("is_highest") != "false" || a.str("current_bid") != "31.00" {
		t.Errorf("bob's 30.00 after Redis lost the item: %d %s, want outbid at 31.00", a.Status, a.Body)
	}
	if a := g.bid(t, "lot", "bob", "50.00"); a.Status != 200 || a.str("is_highest") != "false" || a.str("current_bid") != "50.00" {
		t.Errorf("bob's 50.00, alice's maximum: %d %s, want outbid at 50.00", a.Status, a.Body)
	}
	if a := g.bid(t, "lot", "bob", "51.00"); a.Status != 200 || a.str("is_highest") != "true" {
		t.Errorf("bob's 51.00, above alice's maximum: %d %s, want the lead", a.Status, a.Body)
	}
}
