package app

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bidding-platform/api-gateway/internal/redis"
	"github.com/bidding-platform/api-gateway/internal/service"
	"github.com/bidding-platform/shared/models"
	"github.com/bidding-platform/shared/stream"
	"github.com/bidding-platform/shared/testenv"
)

// bidder keeps bidding rising amounts on one item from several users until
// stopped, and records every answer.
type bidder struct {
	mu       sync.Mutex
	accepted map[string]models.Money // event id -> amount
	// unknown holds the bids (user and amount) answered 503 because Redis
	// was lost after they were sent: each may or may not be applied.
	unknown map[string]bool
	answers atomic.Int64
	bad     []string
	stop    chan struct{}
	done    sync.WaitGroup
}

func startBidding(g *gateway, item string, users int) *bidder {
	b := &bidder{accepted: map[string]models.Money{}, unknown: map[string]bool{}, stop: make(chan struct{})}
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
				case a.Status == 503 && strings.Contains(a.str("message"), "may have been accepted"):
					b.unknown[unknownKey(user, amount)] = true
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

// finish stops the bidders and returns the accepted bids. Every other
// answer was a 409, except those starting with one of allowed (such as
// "503" while Redis is down).
func (b *bidder) finish(t *testing.T, allowed ...string) map[string]models.Money {
	t.Helper()
	close(b.stop)
	b.done.Wait()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, s := range b.bad {
		if !slices.ContainsFunc(allowed, func(p string) bool { return strings.HasPrefix(s, p) }) {
			t.Errorf("bid failed: %s", s)
		}
	}
	return b.accepted
}

func unknownKey(user string, amount models.Money) string { return user + "/" + amount.String() }

// checkExactlyOnce: JetStream holds every accepted event once, in seq order
// 1..N, and nothing else but bids whose outcome was unknown (unknown may be
// nil). It returns the stream's events.
func checkExactlyOnce(t *testing.T, n *testenv.NATSServer, item string, accepted map[string]models.Money, unknown map[string]bool) []models.Event {
	t.Helper()
	js := n.JetStream()
	var evs []models.Event
	testenv.WaitFor(t, 30*time.Second, "every accepted event in JetStream", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var err error
		if evs, err = testenv.StreamEvents(ctx, js, item); err != nil {
			return err
		}
		have := map[string]bool{}
		for _, e := range evs {
			have[e.EventID] = true
		}
		for id := range accepted {
			if !have[id] {
				return fmt.Errorf("accepted event %s not in the stream (of %d events)", id, len(evs))
			}
		}
		return nil
	})
	seen := map[string]bool{}
	for i, e := range evs {
		if seen[e.EventID] {
			t.Errorf("event %s twice", e.EventID)
		}
		seen[e.EventID] = true
		amount, ok := accepted[e.EventID]
		switch {
		case ok && amount != e.Amount:
			t.Errorf("event %+v: another amount than its answer's %v", e, amount)
		case !ok && !unknown[unknownKey(e.UserID, e.Amount)]:
			t.Errorf("event %+v: not a bid answered as accepted (nor one whose outcome was unknown)", e)
		}
		if e.Seq != uint64(i+1) {
			t.Errorf("event %d has seq %d", i, e.Seq)
		}
	}
	return evs
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
	checkExactlyOnce(t, e.nats, "lot", accepted, nil)
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
	// This Redis keeps no data: the item comes back from the event log,
	// where bob's 6.00 is the last event, and the auction goes on from it.
	waitEvents(t, e.nats.JetStream(), "lot", 2)
	testenv.WaitFor(t, 10*time.Second, "reading the item again", func() error {
		it, err := try("GET", g.url+"/api/v1/items/lot", "")
		if err != nil || it.Status != 200 {
			return fmt.Errorf("GET item: %v %d %s", err, it.Status, it.Body)
		}
		if it.str("current_bid") != "6.00" || it.str("highest_bidder_id") != "bob" || it.str("seq") != "2" {
			return fmt.Errorf("item after Redis lost it = %s, want 6.00 by bob at seq 2", it.Body)
		}
		return nil
	})
	for _, amount := range []string{"3.00", "6.00"} {
		if a := g.bid(t, "lot", "carol", amount); a.Status != 409 || a.str("current_bid") != "6.00" {
			t.Errorf("bid %s after Redis lost the item = %d %s, want 409 against 6.00", amount, a.Status, a.Body)
		}
	}
	a := g.bid(t, "lot", "carol", "7.00")
	if a.Status != 200 {
		t.Fatalf("bid 7.00 after Redis lost the item = %d %s, want 200", a.Status, a.Body)
	}
	// No seq is issued twice: the stream holds seqs 1, 2, 3 once each.
	evs := waitEvents(t, e.nats.JetStream(), "lot", 3)
	for i, ev := range evs {
		if ev.Seq != uint64(i+1) {
			t.Errorf("event %d has seq %d, want %d", i, ev.Seq, i+1)
		}
	}
	if evs[2].EventID != a.str("event_id") || evs[2].Amount != 700 || evs[2].PreviousBid != 600 {
		t.Errorf("third event = %+v, want carol's 7.00 after 6.00", evs[2])
	}
}

// publishedAuction creates item "lot" with alice's 5.00 and bob's 6.00,
// and returns their two events once JetStream has them.
func publishedAuction(t *testing.T, e *env) []models.Event {
	t.Helper()
	e.gw.createItem(t, "lot", "1.00", "1.00")
	for _, b := range []struct{ user, amount string }{{"alice", "5.00"}, {"bob", "6.00"}} {
		if a := e.gw.bid(t, "lot", b.user, b.amount); a.Status != 200 {
			t.Fatalf("bid %s = %d %s", b.amount, a.Status, a.Body)
		}
	}
	return waitEvents(t, e.nats.JetStream(), "lot", 2)
}

// TestRedisBehindTheLog: a Redis that failed over to a replica which
// missed the last writes holds the item at an older seq, under another
// instance than the one that last checked it. The gateway brings the item up
// to the log before deciding: the lost price cannot be undercut, no seq is
// reissued, and the auction goes on for both strategies.
func TestRedisBehindTheLog(t *testing.T) {
	t.Parallel()
	for _, strategy := range []string{"lua", "optimistic"} {
		t.Run(strategy, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, func(c *Config) { c.RedisStrategy = strategy })
			g := e.gw
			publishedAuction(t, e)
			// What the replica has: alice's bid only, written under the
			// old primary.
			key := g.cfg.RedisKeyPrefix + "item:{lot}"
			err := e.redis.Client().HSet(context.Background(), key,
				"cur", 500, "bdr", "alice", "cnt", 1, "seq", 1, "ep", "0123456789abcdef").Err()
			if err != nil {
				t.Fatal(err)
			}
			if a := g.bid(t, "lot", "carol", "5.50"); a.Status != 409 || a.str("current_bid") != "6.00" {
				t.Errorf("bid 5.50 below the published 6.00 = %d %s, want 409 against 6.00", a.Status, a.Body)
			}
			a := g.bid(t, "lot", "carol", "7.00")
			if a.Status != 200 {
				t.Fatalf("bid 7.00 = %d %s, want 200", a.Status, a.Body)
			}
			evs := waitEvents(t, e.nats.JetStream(), "lot", 3)
			if evs[2].Seq != 3 || evs[2].EventID != a.str("event_id") || evs[2].PreviousBid != 600 {
				t.Errorf("third event = %+v, want carol's 7.00 at seq 3 after 6.00", evs[2])
			}
		})
	}
}

// TestRestoreTakesTheHighestSeq: an event republished late (by the relay,
// for a gateway that died before publishing it) can be stored after one
// with a higher seq. Restoring from the item's last message alone would
// then rewind the auction; the highest seq must win.
func TestRestoreTakesTheHighestSeq(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	g := e.gw
	evs := publishedAuction(t, e)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Carol's seq 3 as another gateway published it, then bob's seq 2 once
	// more as a late republish (under a new message id, so that it is
	// stored again): the subject's last message is now seq 2.
	third := models.Event{Type: models.EventBid, EventID: models.NewEventID(), ItemID: "lot", BidID: models.NewBidID(),
		UserID: "carol", Amount: 800, PreviousBid: 600, Timestamp: time.Now().UTC(), Seq: 3, BidCount: 3}
	for _, ev := range []models.Event{third, evs[1]} {
		b, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.nats.JetStream().Publish(ctx, stream.Subject("lot"), b); err != nil {
			t.Fatal(err)
		}
	}
	// Redis loses the item.
	if err := e.redis.Client().Del(ctx, g.cfg.RedisKeyPrefix+"item:{lot}").Err(); err != nil {
		t.Fatal(err)
	}
	if a := g.bid(t, "lot", "dave", "7.00"); a.Status != 409 || a.str("current_bid") != "8.00" {
		t.Errorf("bid 7.00 after the restore = %d %s, want 409 against carol's 8.00", a.Status, a.Body)
	}
	a := g.bid(t, "lot", "dave", "9.00")
	if a.Status != 200 {
		t.Fatalf("bid 9.00 after the restore = %d %s, want 200", a.Status, a.Body)
	}
	if it := g.item(t, "lot"); it.Seq != 4 || it.HighestBidderID != "dave" {
		t.Errorf("item = %+v, want dave's 9.00 at seq 4", it)
	}
}

// TestLostAuctionStillCloses: Redis restarts empty and nobody bids on or
// reads the item again; its auction still closes at its end, once, with
// the winner the event log names.
func TestLostAuctionStillCloses(t *testing.T) {
	t.Parallel()
	// Without soft close the bid leaves the end where it was.
	e := newEnv(t, func(c *Config) { c.SoftClose = 0 })
	g := e.gw
	ends := time.Now().Add(4 * time.Second).UTC().Format(time.RFC3339Nano)
	body := fmt.Sprintf(`{"id":"short","name":"Short lot","starting_price":1.00,"ends_at":%q}`, ends)
	if a := do(t, "POST", g.url+"/api/v1/items", body); a.Status != 201 {
		t.Fatalf("create = %d %s", a.Status, a.Body)
	}
	if a := g.bid(t, "short", "alice", "5.00"); a.Status != 200 {
		t.Fatalf("bid = %d %s", a.Status, a.Body)
	}
	waitEvents(t, e.nats.JetStream(), "short", 1)
	e.redis.Stop()
	e.redis.Start()
	evs := waitEvents(t, e.nats.JetStream(), "short", 2)
	if c := evs[1]; c.Type != models.EventAuctionClosed || c.WinnerID != "alice" || c.Amount != 500 || c.Seq != 2 {
		t.Errorf("second event = %+v, want auction_closed at seq 2 won by alice at 5.00", c)
	}
}

// TestRedisKilledWithFsyncAlways: Redis on disk before the answer. Bids
// run while Redis is killed with SIGKILL and started again from its
// append-only file; every bid answered 200 is in JetStream exactly once,
// in seq order, and the item is where the last of them left it.
func TestRedisKilledWithFsyncAlways(t *testing.T) {
	t.Parallel()
	r := testenv.DurableRedis(t)
	n := testenv.NATS(t)
	g := startGateway(t, testConfig([]string{r.Addr()}, false, n.URL()))
	g.createItem(t, "lot", "1.00", "1.00")
	b := startBidding(g, "lot", 8)
	b.waitAnswers(t, 200)
	r.Kill()
	r.Start()
	b.waitAnswers(t, 200)
	accepted := b.finish(t, "503")
	// A bid with an unknown outcome that was applied reaches the stream
	// through the relay, after the bids answered 200.
	it := g.item(t, "lot")
	testenv.WaitFor(t, 30*time.Second, "the stream to reach the item's seq", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		evs, err := testenv.StreamEvents(ctx, n.JetStream(), "lot")
		if err != nil || len(evs) == 0 || evs[len(evs)-1].Seq < it.Seq {
			return fmt.Errorf("%d events, item at seq %d: %v", len(evs), it.Seq, err)
		}
		return nil
	})
	evs := checkExactlyOnce(t, n, "lot", accepted, b.unknown)
	if last := evs[len(evs)-1]; it.CurrentBid != last.Amount || it.Seq != last.Seq {
		t.Errorf("item after the crash = %+v, want %v at seq %d as the stream's last event", it, last.Amount, last.Seq)
	}
	t.Logf("%d accepted, %d with an unknown outcome, %d events", len(accepted), len(b.unknown), len(evs))
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
	checkExactlyOnce(t, e.nats, "lot", b.accepted, nil)
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
