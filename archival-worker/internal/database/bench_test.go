package database_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/bidding-platform/archival-worker/internal/database"
	"github.com/bidding-platform/shared/models"
	"github.com/bidding-platform/shared/testenv"
)

// BenchmarkWrite measures PostgreSQL alone, without NATS: rows per second
// for each strategy at 500-row batches. Run by hand:
//
//	go test -run '^$' -bench Write -benchtime 3x ./internal/database/
func BenchmarkWrite(b *testing.B) {
	for _, strategy := range database.Strategies {
		b.Run(string(strategy), func(b *testing.B) {
			ctx := context.Background()
			s, err := database.Open(ctx, database.Config{URL: testenv.PostgresDB(b), Strategy: strategy, MaxConns: 1})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			if err := s.Migrate(ctx); err != nil {
				b.Fatal(err)
			}
			total := 100_000
			if strategy == database.Single {
				total = 20_000
			}
			// Best of b.N runs, each inserting new events (a repeat would
			// only measure skipped duplicates).
			best := 0.0
			for n := range b.N {
				evs := make([]models.Event, total)
				now := time.Now()
				for i := range evs {
					evs[i] = models.Event{Type: models.EventBid, EventID: models.NewEventID(), ItemID: fmt.Sprintf("item_%03d", i%200),
						BidID: models.NewBidID(), UserID: "u", Amount: models.Money(100 + i), PreviousBid: models.Money(99 + i),
						Seq: uint64(n*total/200 + i/200 + 1), Timestamp: now}
				}
				start := time.Now()
				for i := 0; i < total; i += 500 {
					if _, err := s.Write(ctx, evs[i:min(total, i+500)], nil); err != nil {
						b.Fatal(err)
					}
				}
				best = max(best, float64(total)/time.Since(start).Seconds())
			}
			b.ReportMetric(best, "rows/s")
			b.ReportMetric(0, "ns/op")
		})
	}
}
