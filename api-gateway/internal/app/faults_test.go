package app

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bidding-platform/api-gateway/internal/redis"
	"github.com/bidding-platform/api-gateway/internal/service"
	"github.com/bidding-platform/shared/models"
	"github.com/bidding-platform/shared/testenv"
)

// bidder keeps bidding rising amounts on one item from several users until
// stopped, and records every answer.
type bidder struct {
	mu       sync.Mutex
	accepted map[string]models.Money // event id -> amount
	answers  atomic.Int64
	bad      []string
	stop     chan struct{}
	done     sync.WaitGroup
}

func startBidding(g *gateway, item string, users int) *bidder {
	b := &bidder{accepted: map[string]models.Money{}, stop: make(chan struct{})}
	var ticket atomic.Int64
	for u := 0; u < users; u++ {
		b.done.Add(1)
		go func() {
			defer b.done.Done()
			user := "u" + strconv.Itoa(u)
			for {
				select {
				case <-b.stop:
					return
				default:
				}
				amount := models.Money(100 * (ticket.Add(1) + int64(u%3)))
				a, err := try("POST", g.url+"/api/v1/items/"+item+"/bid", fmt.Sprintf(`{"user_id":%q,"amount":%s}`, user, amount))
				b.mu.Lock()
				switch {
				case err != nil:
					b.bad = append(b.bad, err.Error())
				case a.Status == 200:
					b.accepted[a.str("event_id")] = amount
				case a.Status != 409:
					b.bad = append(b.bad, fmt.Sprintf("%d %s", a.Status, a.Body))
				}
				b.mu.Unlock()
				b.answers.Add(1)
			}
		}()
	}
	return b
}

func (b *bidder) waitAnswers(t *testing.T, n int64) {
	t.Helper()
	target := b.answers.Load() + n
	testenv.WaitFor(t, 30*time.Second, fmt.Sprintf("%d more answers", n), func() error {
		if got := b.answers.Load(); got < target {
			return fmt.Errorf("%d of %d", got, target)
		}
		return nil
	})
}

func (b *bidder) finish(t *testing.T) map[string]models.Money {
	t.Helper()
	close(b.stop)
	b.done.Wait()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, s := range b.bad {
		t.Errorf("bid failed: %s", s)
	}
	return b.accepted
}

// checkExactlyOnce: JetStream holds every accepted event once, and nothing
// else, in seq order.
func checkExactlyOnce(t *testing.T, n *testenv.NATSServer, item string, accepted map[string]models.Money) {
	t.Helper()
	js := n.JetStream()
	evs := waitEvents(t, js, item, len(accepted))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	raw, err := streamEvents(ctx, js, item)
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range raw {
		if e.Seq != uint64(i+1) {
			t.Errorf("JetStream position %d holds seq %d: the stream is not in seq order", i+1, e.Seq)
			break
		}
	}
	seen := map[string]bool{}
	for i, e := range evs {
		if seen[e.EventID] {
			t.Errorf("event %s twice", e.EventID)
		}
		seen[e.EventID] = true
		if amount, ok := accepted[e.EventID]; !ok || amount != e.Amount {
			t.Errorf("event %+v: not an accepted bid (or another amount)", e)
		}
		if e.Seq != uint64(i+1) {
			t.Errorf("event %d has seq %d", i, e.Seq)
		}
	}
}

// NATS dies while bids flow: no bid fails, and once it is back JetStream
// holds every accepted event exactly once.
func TestNATSOutage(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	g := e.gw
	g.createItem(t, "lot", "1.00", "1.00")
	b := startBidding(g, "lot", 8)
	b.waitAnswers(t, 100)
	e.nats.Kill()
	b.waitAnswers(t, 300)
	if a := do(t, "GET", g.url+"/ready", ""); a.Status != 200 || a.str("status") != "degraded" {
		t.Errorf("/ready without NATS = %d %s, want 200 degraded (bids still work)", a.Status, a.Body)
	}
	e.nats.Start()
	b.waitAnswers(t, 100)
	accepted := b.finish(t)
	checkExactlyOnce(t, e.nats, "lot", accepted)
	testenv.WaitFor(t, 10*time.Second, "outbox to drain", func() error {
		if a := do(t, "GET", g.url+"/metrics", ""); !containsLine(string(a.Body), "gateway_outbox_backlog 0") {
			return fmt.Errorf("backlog not 0")
		}
		return nil
	})
}

// A gateway that dies between the Redis write and the publish leaves the
// event in the outbox; the relay publishes it.
func TestRelayPublishesOrphanedOutboxEntry(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	g := e.gw
	g.createItem(t, "lot", "1.00", "1.00")
	// The "crashed" gateway: the same Redis keys, but nobody publishes.
	store, err := redis.New(redis.Config{Addrs: g.cfg.RedisAddrs, KeyPrefix: g.cfg.RedisKeyPrefix})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	req := service.BidRequest{ItemID: "lot", UserID: "ghost", Amount: 500, BidID: models.NewBidID(), EventID: models.NewEventID()}
	res, err := store.PlaceBids(context.Background(), []service.BidRequest{req})
	if err != nil || res[0].Outcome != models.OutcomeAccepted {
		t.Fatalf("PlaceBids = %+v, %v", res, err)
	}
	evs := waitEvents(t, e.nats.JetStream(), "lot", 1)
	if evs[0].EventID != req.EventID || evs[0].UserID != "ghost" {
		t.Errorf("relayed event %+v, want %s", evs[0], req.EventID)
	}
	testenv.WaitFor(t, 10*time.Second, "outbox to drain", func() error {
		n, err := store.Backlog(context.Background())
		if err != nil || n != 0 {
			return fmt.Errorf("backlog %d, %v", n, err)
		}
		return nil
	})
}

// Redis stopped: bids answer 503 (not a hang); Redis back: bidding resumes
// without restarting the gateway.
func TestRedisOutage(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	g := e.gw
	g.createItem(t, "lot", "1.00", "1.00")
	if a := g.bid(t, "lot", "alice", "5.00"); a.Status != 200 {
		t.Fatalf("bid = %d %s", a.Status, a.Body)
	}
	// A hung Redis (SIGSTOP) is a 503 too, not a hang; the client's own
	// 10s timeout turns a hang into a failure here.
	e.redis.Pause()
	if a := g.bid(t, "lot", "bob", "6.00"); a.Status != 503 {
		t.Errorf("bid with Redis hung = %d %s, want 503", a.Status, a.Body)
	}
	e.redis.Resume()
	testenv.WaitFor(t, 10*time.Second, "bids after Redis resumed", func() error {
		if a := g.bid(t, "lot", "bob", "6.00"); a.Status != 200 {
			return fmt.Errorf("%d %s", a.Status, a.Body)
		}
		return nil
	})
	e.redis.Stop()
	for _, amount := range []string{"8.00", "1.00", "9.00"} {
		a := g.bid(t, "lot", "bob", amount)
		if a.Status != 503 || a.Header.Get("Retry-After") == "" {
			t.Errorf("bid %s with Redis down = %d %s, want 503 with Retry-After", amount, a.Status, a.Body)
		}
	}
	if a := do(t, "GET", g.url+"/ready", ""); a.Status != 503 {
		t.Errorf("/ready with Redis down = %d %s, want 503", a.Status, a.Body)
	}
	if a := do(t, "GET", g.url+"/api/v1/items/lot", ""); a.Status != 503 {
		t.Errorf("GET item with Redis down = %d %s, want 503", a.Status, a.Body)
	}
	e.redis.Start()
	// This Redis keeps no data, so the item comes back through auto-create.
	testenv.WaitFor(t, 10*time.Second, "bidding to resume", func() error {
		if a := do(t, "GET", g.url+"/api/v1/items/lot", ""); a.Status != 200 {
			return fmt.Errorf("GET item %d", a.Status)
		}
		if a := g.bid(t, "lot", "bob", "3.00"); a.Status != 200 {
			return fmt.Errorf("bid %d %s", a.Status, a.Body)
		}
		return nil
	})
}

// SIGTERM while bids are in flight: they finish, Run returns cleanly, and
// every accepted event reaches JetStream.
func TestGracefulShutdown(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	g := e.gw
	g.createItem(t, "lot", "1.00", "1.00")
	b := startBidding(g, "lot", 8)
	b.waitAnswers(t, 200)
	if err := g.shutdown(); err != nil {
		t.Fatalf("Run after shutdown: %v", err)
	}
	close(b.stop)
	b.done.Wait()
	// Bids after the listener closed fail to connect; none may be a 5xx.
	for _, s := range b.bad {
		if len(s) > 0 && s[0] == '5' {
			t.Errorf("bid during shutdown: %s", s)
		}
	}
	// Whatever the stopped gateway did not publish, the next one relays.
	cfg := g.cfg
	startGateway(t, cfg)
	checkExactlyOnce(t, e.nats, "lot", b.accepted)
}

func containsLine(text, line string) bool {
	for len(text) > 0 {
		i := 0
		for i < len(text) && text[i] != '\n' {
			i++
		}
		if text[:i] == line {
			return true
		}
		if i == len(text) {
			break
		}
		text = text[i+1:]
	}
	return false
}
