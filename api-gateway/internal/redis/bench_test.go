package redis

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/bidding-platform/api-gateway/internal/service"
	"github.com/bidding-platform/shared/models"
	"github.com/bidding-platform/shared/testenv"
)

// BenchmarkPlaceBids measures contended bids on one hot item against a
// single local Redis: every goroutine bids on the same item with amounts
// that climb, so most bids race for the same price. group is the number of
// bids per PlaceBids call, as the gateway's coalescing would send them.
// Run it alone: go test -run '^$' -bench PlaceBids ./internal/redis
func BenchmarkPlaceBids(b *testing.B) {
	r := testenv.Redis(b)
	cfg := DefaultConfig()
	cfg.Addrs = []string{r.Addr()}
	for _, tc := range []struct {
		strategy string
		group    int
	}{
		{StrategyLua, 1}, {StrategyLua, 32}, {StrategyOptimistic, 1},
	} {
		b.Run(fmt.Sprintf("%s/group=%d", tc.strategy, tc.group), func(b *testing.B) {
			s := newStore(b, cfg, tc.strategy)
			it := newItem(b, s, models.Item{StartingPrice: 100, MinIncrement: 1})
			var next atomic.Int64
			var accepted, failed atomic.Int64
			b.SetParallelism(8)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				reqs := make([]service.BidRequest, 0, tc.group)
				for pb.Next() {
					reqs = append(reqs, bid(it.ID, "bench_user", models.Money(100+next.Add(1))))
					if len(reqs) < tc.group {
						continue
					}
					res, err := s.PlaceBids(context.Background(), reqs)
					if err != nil {
						failed.Add(1)
					}
					for _, r := range res {
						if r.Outcome == models.OutcomeAccepted {
							accepted.Add(1)
						}
					}
					reqs = reqs[:0]
				}
			})
			b.StopTimer()
			b.ReportMetric(float64(accepted.Load())/float64(b.N), "accepted/op")
			if n := failed.Load(); n > 0 {
				b.Logf("%d calls failed", n)
			}
		})
	}
}
