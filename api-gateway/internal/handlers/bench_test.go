package handlers

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bidding-platform/api-gateway/internal/service"
	"github.com/bidding-platform/shared/models"
)

// tooLow answers every bid from a fixed price, as the pre-filter does.
type tooLow struct{}

func (tooLow) PlaceBid(ctx context.Context, b service.Bid) (service.BidResult, error) {
	return service.BidResult{Outcome: service.OutcomeTooLow, Item: models.Item{CurrentBid: 50000, MinIncrement: 100, BidCount: 1, HighestBidderID: "x"}}, nil
}
func (tooLow) Item(ctx context.Context, id string) (models.Item, error) { return models.Item{}, nil }
func (tooLow) CreateItem(ctx context.Context, n service.NewItem) (models.Item, error) {
	return models.Item{}, nil
}

// BenchmarkBidHandler is the HTTP side of a pre-filtered bid, without the
// network: what the gateway adds to a plain handler.
func BenchmarkBidHandler(b *testing.B) {
	reg := prometheus.NewRegistry()
	h := New(Config{}, Deps{Bids: tooLow{}, Metrics: NewMetrics(reg), Gatherer: reg, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	body := `{"user_id":"user_42","amount":123.45}`
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req := httptest.NewRequest("POST", "/api/v1/items/hot/bid", strings.NewReader(body))
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code != http.StatusConflict {
				b.Fatalf("status %d %s", w.Code, w.Body)
			}
		}
	})
}
