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
	"github.com/valyala/fasthttp"

	"github.com/bidding-platform/api-gateway/internal/service"
	"github.com/bidding-platform/shared/auth"
	"github.com/bidding-platform/shared/models"
)

// tooLow answers every bid from a fixed price, as the pre-filter does.
type tooLow struct{}

func (tooLow) PlaceBid(ctx context.Context, b service.Bid) (service.BidResult, error) {
	return service.BidResult{Outcome: models.OutcomeTooLow, Item: models.Item{CurrentBid: 50000, MinIncrement: 100, BidCount: 1, HighestBidderID: "x"}}, nil
}
func (tooLow) Item(ctx context.Context, id string) (models.Item, error) { return models.Item{}, nil }
func (tooLow) CreateItem(ctx context.Context, n service.NewItem) (models.Item, error) {
	return models.Item{}, nil
}
func (tooLow) CancelItem(ctx context.Context, id string, by service.Canceller) (models.Item, error) {
	return models.Item{}, nil
}

// noAuth is a verifier with authentication disabled: the benchmarks
// measure the HTTP paths, not token checks.
func noAuth(tb testing.TB) Config {
	cfg := auth.DefaultConfig()
	cfg.Disabled = true
	v, err := auth.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		tb.Fatal(err)
	}
	return Config{Auth: v}
}

// BenchmarkBidHandler is the HTTP side of a pre-filtered bid through the
// chi router (browsers' bids), without the network: what the gateway adds
// to a plain handler.
func BenchmarkBidHandler(b *testing.B) {
	reg := prometheus.NewRegistry()
	h := newServer(noAuth(b), Deps{Bids: tooLow{}, Metrics: NewMetrics(reg), Gatherer: reg, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}).router()
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

// BenchmarkFastBidHandler is the same on the gateway's fasthttp path: what
// the server's native bid route adds to a plain handler.
func BenchmarkFastBidHandler(b *testing.B) {
	reg := prometheus.NewRegistry()
	h, _ := NewFast(noAuth(b), Deps{Bids: tooLow{}, Metrics: NewMetrics(reg), Gatherer: reg, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	body := []byte(`{"user_id":"user_42","amount":123.45}`)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		var ctx fasthttp.RequestCtx
		for pb.Next() {
			ctx.Request.Reset()
			ctx.Response.Reset()
			ctx.Request.Header.SetMethod(fasthttp.MethodPost)
			ctx.Request.SetRequestURI("/api/v1/items/hot/bid")
			ctx.Request.SetBody(body)
			h(&ctx)
			if ctx.Response.StatusCode() != http.StatusConflict {
				b.Fatalf("status %d %s", ctx.Response.StatusCode(), ctx.Response.Body())
			}
		}
	})
}
