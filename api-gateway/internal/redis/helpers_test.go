package redis

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/bidding-platform/api-gateway/internal/service"
	"github.com/bidding-platform/shared/models"
	"github.com/bidding-platform/shared/testenv"
)

// topology is one kind of Redis deployment the store must work on.
type topology struct {
	name string
	cfg  Config
	raw  goredis.UniversalClient
}

// topologies starts a single Redis and a three-master cluster for one test.
func topologies(t *testing.T) []topology {
	t.Helper()
	r := testenv.Redis(t)
	c := testenv.Cluster(t)
	single := DefaultConfig()
	single.Addrs = []string{r.Addr()}
	cluster := DefaultConfig()
	cluster.Addrs, cluster.Cluster = c.Addrs(), true
	return []topology{
		{name: "single", cfg: single, raw: r.Client()},
		{name: "cluster", cfg: cluster, raw: c.Client()},
	}
}

var strategies = []string{StrategyLua, StrategyOptimistic}

var prefixes atomic.Int64

// newStore opens a store with its own key prefix, so that tests sharing a
// server never see each other's items, hints or outboxes.
func newStore(t testing.TB, cfg Config, strategy string) *Store {
	t.Helper()
	cfg.Strategy = strategy
	cfg.KeyPrefix = fmt.Sprintf("t%d:", prefixes.Add(1))
	s, err := New(cfg)
	if err != nil {
		t.Fatalf("New(%+v): %v", cfg, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// storeOnOwnRedis opens a store on a Redis of its own, for tests that
// stop or freeze the server; mod, when set, adjusts the configuration.
func storeOnOwnRedis(t testing.TB, strategy string, mod func(*Config)) (*Store, *testenv.RedisServer) {
	t.Helper()
	r := testenv.Redis(t)
	cfg := DefaultConfig()
	cfg.Addrs = []string{r.Addr()}
	if mod != nil {
		mod(&cfg)
	}
	return newStore(t, cfg, strategy), r
}

// forEach runs f as parallel subtests for every topology and strategy.
func forEach(t *testing.T, tops []topology, f func(t *testing.T, s *Store, top topology)) {
	t.Helper()
	for _, top := range tops {
		for _, strategy := range strategies {
			t.Run(top.name+"/"+strategy, func(t *testing.T) {
				t.Parallel()
				f(t, newStore(t, top.cfg, strategy), top)
			})
		}
	}
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

var items atomic.Int64

func newItem(t testing.TB, s *Store, it models.Item) models.Item {
	t.Helper()
	if it.ID == "" {
		it.ID = fmt.Sprintf("item_%d", items.Add(1))
	}
	if it.Name == "" {
		it.Name = "Vintage Watch"
	}
	if it.StartingPrice == 0 {
		it.StartingPrice = 1000
	}
	if it.MinIncrement == 0 {
		it.MinIncrement = 100
	}
	if it.EndsAt.IsZero() {
		it.EndsAt = time.Now().Add(time.Hour)
	}
	got, err := s.CreateItem(ctxT(t), it)
	if err != nil {
		t.Fatalf("CreateItem(%+v): %v", it, err)
	}
	return got
}

func bid(item, user string, amount models.Money) service.BidRequest {
	return service.BidRequest{
		ItemID:      item,
		UserID:      user,
		Amount:      amount,
		RequestHash: fmt.Sprintf("%s|%s|%d", item, user, amount),
		BidID:       models.NewBidID(),
		EventID:     models.NewEventID(),
	}
}

func place(t testing.TB, s *Store, reqs ...service.BidRequest) []service.BidResult {
	t.Helper()
	res, err := s.PlaceBids(ctxT(t), reqs)
	if err != nil {
		t.Fatalf("PlaceBids(%+v): %v", reqs, err)
	}
	if len(res) != len(reqs) {
		t.Fatalf("PlaceBids: %d results for %d bids", len(res), len(reqs))
	}
	return res
}

func placeOne(t testing.TB, s *Store, r service.BidRequest) service.BidResult {
	t.Helper()
	return place(t, s, r)[0]
}

func item(t testing.TB, s *Store, id string) models.Item {
	t.Helper()
	it, err := s.Item(ctxT(t), id)
	if err != nil {
		t.Fatalf("Item(%s): %v", id, err)
	}
	return it
}

func wantOutcome(t testing.TB, what string, got service.BidResult, want models.Outcome) {
	t.Helper()
	if got.Outcome != want {
		t.Fatalf("%s: outcome %s (item %+v), want %s", what, got.Outcome, got.Item, want)
	}
}

// Direct reads and writes for what the API cannot set up or show.

func (s *Store) rdbHSetForTest(t testing.TB, id string, field, value string) (int64, error) {
	t.Helper()
	return s.rdb.HSet(ctxT(t), s.itemKey(id), field, value).Result()
}

func (s *Store) rdbTTLForTest(t testing.TB, key string) time.Duration {
	t.Helper()
	d, err := s.rdb.PTTL(ctxT(t), key).Result()
	if err != nil {
		t.Fatalf("PTTL %s: %v", key, err)
	}
	return d
}

func (s *Store) rdbMembersForTest(t testing.TB) []string {
	t.Helper()
	m, err := s.rdb.SMembers(ctxT(t), s.outboxesKey()).Result()
	if err != nil {
		t.Fatalf("SMEMBERS: %v", err)
	}
	return m
}
