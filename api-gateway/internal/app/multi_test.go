package app

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bidding-platform/shared/models"
	"github.com/bidding-platform/shared/stream"
	"github.com/bidding-platform/shared/testenv"
)

// Two gateways on one Redis and NATS: each pre-filters with prices learned
// from the other's events. No bid that could win is rejected: every
// rejection names a price that had been reached before the request ended
// and that the bid does not beat.
func TestPrefilterAcrossGateways(t *testing.T) {
	t.Parallel()
	r := testenv.Redis(t)
	n := testenv.NATS(t)
	cfg := testConfig([]string{r.Addr()}, false, n.URL())
	g1 := startGateway(t, cfg)
	g2 := startGateway(t, cfg)
	g1.createItem(t, "lot", "1.00", "1.00")
	// g2 learns the item's rules and price from its own answer...
	if a := g2.bid(t, "lot", "seed", "1.00"); a.Status != 200 {
		t.Fatalf("seed bid = %d %s", a.Status, a.Body)
	}
	// ...and the later prices only from g1's events.
	for i := 2; i <= 50; i++ {
		if a := g1.bid(t, "lot", "alice", fmt.Sprintf("%d.00", i*10)); a.Status != 200 {
			t.Fatalf("g1 bid = %d %s", a.Status, a.Body)
		}
	}
	testenv.WaitFor(t, 10*time.Second, "g2 to pre-filter with g1's price", func() error {
		a := g2.bid(t, "lot", "bob", "400.00")
		if a.Status != 409 || a.str("current_bid") != "500.00" {
			return fmt.Errorf("%d %s", a.Status, a.Body)
		}
		m := do(t, "GET", g2.url+"/metrics", "")
		if !strings.Contains(string(m.Body), `gateway_prefilter_hits_total{outcome="too_low"}`) {
			return fmt.Errorf("no pre-filter hit counted")
		}
		return nil
	})
	if a := g2.bid(t, "lot", "bob", "501.00"); a.Status != 200 {
		t.Errorf("winnable bid through g2 = %d %s, want 200", a.Status, a.Body)
	}

	// Now both at once, with rising amounts.
	var ticket atomic.Int64
	ticket.Store(600)
	var mu sync.Mutex
	var ops []op
	var wg sync.WaitGroup
	for u := 0; u < 20; u++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			g := []*gateway{g1, g2}[u%2]
			for k := 0; k < 25; k++ {
				amount := models.Money(100 * (ticket.Add(1) + int64(u%4)))
				o := op{user: fmt.Sprintf("m%d", u), amount: amount, start: time.Now()}
				a, err := try("POST", g.url+"/api/v1/items/lot/bid", fmt.Sprintf(`{"user_id":%q,"amount":%s}`, o.user, amount))
				o.end = time.Now()
				if err != nil {
					t.Error(err)
					return
				}
				o.status = a.Status
				o.current, _ = models.ParseMoney(a.str("current_bid"))
				o.eventID = a.str("event_id")
				mu.Lock()
				ops = append(ops, o)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	it := g1.item(t, "lot")
	evs := waitEvents(t, n.JetStream(), "lot", int(it.BidCount))
	reachedBy := map[models.Money]time.Time{} // price -> when its bid was answered
	byID := map[string]op{}
	for _, o := range ops {
		if o.status == 200 {
			byID[o.eventID] = o
		}
	}
	for _, e := range evs {
		end := time.Time{} // bids from the first phase: long before
		if o, ok := byID[e.EventID]; ok {
			end = o.start
		}
		reachedBy[e.Amount] = end
	}
	for _, o := range ops {
		switch o.status {
		case 200:
		case 409:
			when, ok := reachedBy[o.current]
			if !ok || when.After(o.end) || o.amount >= o.current+100 {
				t.Errorf("rejection of %v named %v (reached %v, request ended %v): a winnable bid was rejected", o.amount, o.current, when, o.end)
			}
		default:
			t.Errorf("bid %v = %d", o.amount, o.status)
		}
	}
}

// A stream lost with NATS's storage is recreated, and the events that could
// not be published meanwhile arrive.
func TestStreamRecreated(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	g := e.gw
	g.createItem(t, "lot", "1.00", "1.00")
	if a := g.bid(t, "lot", "alice", "2.00"); a.Status != 200 {
		t.Fatalf("bid = %d %s", a.Status, a.Body)
	}
	js := e.nats.JetStream()
	waitEvents(t, js, "lot", 1)
	if err := js.DeleteStream(context.Background(), stream.Name); err != nil {
		t.Fatal(err)
	}
	b := g.bid(t, "lot", "bob", "3.00")
	if b.Status != 200 {
		t.Fatalf("bid after the stream was lost = %d %s", b.Status, b.Body)
	}
	evs := waitEvents(t, js, "lot", 1)
	if evs[0].EventID != b.str("event_id") {
		t.Errorf("recreated stream holds %+v, want %s", evs[0], b.str("event_id"))
	}
}
