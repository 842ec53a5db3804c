package service

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bidding-platform/shared/models"
	"github.com/bidding-platform/shared/testenv"
)

// memStore is a sequential in-memory store deciding by the shared rules,
// one layer below the service (the real one is tested against Redis in
// internal/redis and internal/app).
type memStore struct {
	mu    sync.Mutex
	items map[string]models.Item
	calls [][]BidRequest
	// gate, when set, holds each PlaceBids call until it receives.
	gate chan struct{}
	// fail, when set, is what PlaceBids returns after the gate.
	fail error
}

func newMemStore() *memStore { return &memStore{items: map[string]models.Item{}} }

func (m *memStore) PlaceBids(ctx context.Context, reqs []BidRequest) ([]BidResult, error) {
	if m.gate != nil {
		<-m.gate
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls = append(m.calls, reqs)
	if m.fail != nil {
		return nil, m.fail
	}
	out := make([]BidResult, len(reqs))
	for i, r := range reqs {
		it, ok := m.items[r.ItemID]
		if !ok {
			out[i] = BidResult{Outcome: models.OutcomeNotFound}
			continue
		}
		d := models.Decide(it, models.BidAttempt{UserID: r.UserID, Amount: r.Amount, Max: r.Max, SoftClose: r.SoftClose}, time.Now())
		out[i] = BidResult{Outcome: d.Outcome, Item: d.Item}
		if d.Outcome.Placed() {
			m.items[r.ItemID] = d.Item
		}
		for k, st := range d.Steps {
			out[i].Entries = append(out[i].Entries, OutboxEntry{ID: fmt.Sprint(st.Seq), LeaderMax: st.LeaderMax, Event: models.Event{
				Type: models.EventBid, EventID: fmt.Sprintf("%s-%d", r.EventID, k), ItemID: r.ItemID, UserID: st.UserID,
				Amount: st.Amount, PreviousBid: st.PreviousBid, Auto: st.Auto, Seq: st.Seq}})
		}
		if len(out[i].Entries) > 0 {
			out[i].Event = &out[i].Entries[0].Event
		}
	}
	return out, nil
}

func (m *memStore) CreateItem(ctx context.Context, it models.Item) (models.Item, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.items[it.ID]; ok {
		return models.Item{}, ErrItemExists
	}
	m.items[it.ID] = it
	return it, nil
}

func (m *memStore) Item(ctx context.Context, id string) (models.Item, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	it, ok := m.items[id]
	if !ok {
		return models.Item{}, ErrItemNotFound
	}
	return it, nil
}

func (m *memStore) CloseDue(ctx context.Context) ([]OutboxEntry, []string, error) {
	return nil, nil, nil
}
func (m *memStore) Restore(context.Context, models.Item, *OutboxEntry) error { return nil }
func (m *memStore) Cancel(context.Context, string, string, bool) (OutboxEntry, error) {
	return OutboxEntry{}, ErrItemNotFound
}
func (m *memStore) Instance(context.Context) (string, error) { return "mem", nil }
func (m *memStore) Ping(ctx context.Context) error           { return nil }

type pubs struct {
	mu  sync.Mutex
	got []OutboxEntry
}

func (p *pubs) Hold(string) {}

func (p *pubs) Publish(e OutboxEntry) {
	p.mu.Lock()
	p.got = append(p.got, e)
	p.mu.Unlock()
}

func newService(t *testing.T, store BidStore, cfg Config) (*Service, *pubs) {
	t.Helper()
	p := &pubs{}
	s := New(store, p, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if _, err := s.CreateItem(context.Background(), NewItem{ID: "lot", Name: "Lot", StartingPrice: 1000, MinIncrement: 100, StartsAt: time.Now().Add(-time.Minute)}); err != nil {
		t.Fatal(err)
	}
	return s, p
}

// With and without the pre-filter (and coalescing), the same sequence of
// bids gets the same answers: the cache never changes an answer.
func TestPrefilterNeverChangesAnAnswer(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	plain, _ := newService(t, newMemStore(), Config{})
	hits := &countHits{}
	fast, _ := newService(t, newMemStore(), Config{Prefilter: true, Coalesce: true, Metrics: hits})
	ctx := context.Background()
	for i := 0; i < 2000; i++ {
		b := Bid{ItemID: "lot", UserID: fmt.Sprintf("u%d", rng.IntN(10)), Amount: models.Money(900 + rng.IntN(20*(i+1)))}
		want, err1 := plain.PlaceBid(ctx, b)
		got, err2 := fast.PlaceBid(ctx, b)
		if err1 != nil || err2 != nil {
			t.Fatal(err1, err2)
		}
		if got.Outcome != want.Outcome || got.Item.CurrentBid != want.Item.CurrentBid || got.Item.MinNextBid() != want.Item.MinNextBid() {
			t.Fatalf("bid %d %+v: pre-filtered answer %v at %v, want %v at %v", i, b, got.Outcome, got.Item.CurrentBid, want.Outcome, want.Item.CurrentBid)
		}
	}
	if hits.n.Load() == 0 {
		t.Error("the pre-filter answered nothing; the test proves nothing")
	}
}

type countHits struct{ n atomic.Int64 }

func (c *countHits) Prefiltered(models.Outcome)          { c.n.Add(1) }
func (c *countHits) StoreCall(time.Duration, int, error) {}

func TestDecide(t *testing.T) {
	t.Parallel()
	now := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	cfg := Config{}
	cfg.defaults()
	open := models.Item{ID: "x", Status: models.StatusActive, StartingPrice: 1000, MinIncrement: 100, CurrentBid: 2000, HighestBidderID: "a", BidCount: 1,
		StartsAt: now.Add(-time.Hour), EndsAt: now.Add(time.Hour)}
	with := func(f func(*models.Item)) models.Item { it := open; f(&it); return it }
	tests := []struct {
		name    string
		item    models.Item
		known   bool
		checked time.Time
		amount  models.Money
		want    models.Outcome // 0: ask the store
	}{
		{"unknown item", open, false, now, 1, 0},
		{"below min next", open, true, now, 2099, models.OutcomeTooLow},
		{"tie", open, true, now, 2000, models.OutcomeTooLow},
		{"exactly min next", open, true, now, 2100, 0},
		{"above", open, true, now, 5000, 0},
		// Under a leader's maximum a bid at or above the minimum next bid
		// may be outbid at once: only the store can say.
		{"under a hidden maximum", with(func(it *models.Item) { it.LeaderMax = 9000 }), true, now, 5000, 0},
		{"below min next, under a hidden maximum", with(func(it *models.Item) { it.LeaderMax = 9000 }), true, now, 2099, models.OutcomeTooLow},
		{"stale cache", open, true, now.Add(-time.Minute), 1, 0},
		{"no bids yet, below start", with(func(it *models.Item) { it.BidCount, it.HighestBidderID, it.CurrentBid = 0, "", 0 }), true, now, 999, models.OutcomeTooLow},
		{"no bids yet, at start", with(func(it *models.Item) { it.BidCount, it.HighestBidderID, it.CurrentBid = 0, "", 0 }), true, now, 1000, 0},
		{"near the end", with(func(it *models.Item) { it.EndsAt = now.Add(time.Second) }), true, now, 1, 0},
		{"past the end", with(func(it *models.Item) { it.EndsAt = now.Add(-time.Second) }), true, now, 1, 0},
		{"just started", with(func(it *models.Item) { it.StartsAt = now.Add(-time.Second) }), true, now, 1, 0},
		{"long past the end", with(func(it *models.Item) { it.EndsAt = now.Add(-time.Hour) }), true, now, 1_000_000, models.OutcomeNotActive},
		{"about to start", with(func(it *models.Item) { it.Status, it.StartsAt = models.StatusScheduled, now.Add(time.Second) }), true, now, 1, 0},
		{"long before the start", with(func(it *models.Item) { it.Status, it.StartsAt = models.StatusScheduled, now.Add(time.Hour) }), true, now, 1_000_000, models.OutcomeNotActive},
		// The status word is as of the store's answer; the times say it
		// has started since.
		{"started since it was cached", with(func(it *models.Item) { it.Status = models.StatusScheduled }), true, now, 1, models.OutcomeTooLow},
		{"closed", with(func(it *models.Item) { it.Status = models.StatusClosed }), true, now, 1_000_000, models.OutcomeNotActive},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			l := &lane{item: tt.item, known: tt.known, checked: tt.checked}
			for _, maxBid := range []bool{false, true} {
				res, ok := l.decide(tt.amount, maxBid, now, cfg)
				got := models.Outcome(0)
				if ok {
					got = res.Outcome
				}
				if got != tt.want {
					t.Errorf("decide(%v, max %v) on %+v = %v, want %v", tt.amount, maxBid, tt.item, got, tt.want)
				}
			}
		})
	}
}

// Bids arriving while a store call is in flight wait for it and then go in
// one call, each with its own answer; the ones the new price already beats
// never reach the store.
func TestCoalescing(t *testing.T) {
	t.Parallel()
	store := newMemStore()
	s, p := newService(t, store, Config{Prefilter: true, Coalesce: true})
	store.gate = make(chan struct{})
	ctx := context.Background()

	first := make(chan BidResult, 1)
	go func() {
		r, _ := s.PlaceBid(ctx, Bid{ItemID: "lot", UserID: "a", Amount: 5000})
		first <- r
	}()
	// Wait until the first call holds the lane.
	waitLane(t, s, func(l *lane) bool { return l.busy })
	type answer struct {
		amount models.Money
		res    BidResult
	}
	answers := make(chan answer, 20)
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		amount := models.Money(4000 + 100*i) // 4000..5900: the low half cannot beat 5000
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := s.PlaceBid(ctx, Bid{ItemID: "lot", UserID: fmt.Sprintf("u%d", i), Amount: amount})
			if err != nil {
				t.Error(err)
			}
			answers <- answer{amount, r}
		}()
	}
	waitLane(t, s, func(l *lane) bool { return len(l.queue) == 20 })
	store.gate <- struct{}{} // the first bid
	store.gate <- struct{}{} // everything that queued, in one call
	wg.Wait()
	close(answers)
	if r := <-first; r.Outcome != models.OutcomeAccepted {
		t.Fatalf("first bid: %v", r.Outcome)
	}
	store.mu.Lock()
	calls := len(store.calls)
	second := len(store.calls[1])
	store.mu.Unlock()
	if calls != 2 {
		t.Errorf("%d store calls, want 2", calls)
	}
	if second != 9 {
		t.Errorf("second call carried %d bids, want the 9 above 5000", second)
	}
	for a := range answers {
		if a.amount < 5100 && (a.res.Outcome != models.OutcomeTooLow || a.res.Item.CurrentBid != 5000) {
			t.Errorf("bid %v: %v at %v, want too low at 50.00", a.amount, a.res.Outcome, a.res.Item.CurrentBid)
		}
	}
	it, _ := store.Item(ctx, "lot")
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.got) != int(it.BidCount) {
		t.Errorf("%d events published, want %d", len(p.got), it.BidCount)
	}
}

// When Redis does not answer, the bids queued behind the failed call get
// their 503 at once instead of each batch waiting out its own timeout.
func TestOutageAnswersQueuedBidsAtOnce(t *testing.T) {
	t.Parallel()
	store := newMemStore()
	s, _ := newService(t, store, Config{Prefilter: true, Coalesce: true})
	store.gate = make(chan struct{})
	ctx := context.Background()

	errs := make(chan error, 11)
	bid := func(user string) {
		_, err := s.PlaceBid(ctx, Bid{ItemID: "lot", UserID: user, Amount: 5000})
		errs <- err
	}
	go bid("first")
	waitLane(t, s, func(l *lane) bool { return l.busy })
	for i := 0; i < 10; i++ {
		go bid(fmt.Sprintf("u%d", i))
	}
	waitLane(t, s, func(l *lane) bool { return len(l.queue) == 10 })
	store.mu.Lock()
	store.fail = fmt.Errorf("dial tcp: connection refused: %w", ErrUnavailable)
	store.mu.Unlock()
	store.gate <- struct{}{} // only the first call gets through, and fails

	deadline := time.After(5 * time.Second)
	for i := 0; i < 11; i++ {
		select {
		case err := <-errs:
			if !errors.Is(err, ErrUnavailable) {
				t.Errorf("bid %d: err = %v, want ErrUnavailable", i, err)
			}
		case <-deadline:
			t.Fatalf("%d of 11 bids answered; the rest wait for another store call", i)
		}
	}
	store.mu.Lock()
	defer store.mu.Unlock()
	if got := len(store.calls); got != 1 {
		t.Errorf("%d store calls, want 1 (queued bids must not reach the store)", got)
	}
}

func waitLane(t *testing.T, s *Service, cond func(*lane) bool) {
	t.Helper()
	testenv.WaitFor(t, 5*time.Second, "the lane's expected state", func() error {
		l := s.lanes.lookup("lot")
		if l == nil {
			return errors.New("no lane")
		}
		l.mu.Lock()
		defer l.mu.Unlock()
		if !cond(l) {
			return errors.New("lane not there yet")
		}
		return nil
	})
}
