package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/bidding-platform/load-tests/internal/auctiontest"
	"github.com/bidding-platform/load-tests/internal/hello"
	"github.com/bidding-platform/shared/models"
)

func testConfig(url string) Config {
	cfg := DefaultConfig()
	cfg.URL = url
	cfg.Item = "hot"
	cfg.Users = 7
	cfg.Concurrency = 8
	cfg.Duration = 30 * time.Second
	cfg.Requests = 400
	return cfg
}

func TestRunCountsMatchServer(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		client    string
		mode      string
		chunked   bool
		closeEach bool
	}{
		{name: "raw climb", client: ClientRaw, mode: ModeClimb},
		{name: "raw climb chunked", client: ClientRaw, mode: ModeClimb, chunked: true},
		{name: "raw climb connection close", client: ClientRaw, mode: ModeClimb, closeEach: true},
		{name: "net/http climb", client: ClientNetHTTP, mode: ModeClimb},
		{name: "raw flood", client: ClientRaw, mode: ModeFlood},
		{name: "net/http flood", client: ClientNetHTTP, mode: ModeFlood},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := auctiontest.New()
			a.Chunked, a.CloseEach = tt.chunked, tt.closeEach
			srv := httptest.NewServer(a)
			defer srv.Close()
			cfg := testConfig(srv.URL)
			cfg.Client, cfg.Mode = tt.client, tt.mode

			rep, err := Run(context.Background(), cfg)
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if got, want := rep.Requests, uint64(cfg.Requests); got != want {
				t.Errorf("report requests = %d, want the budget %d", got, want)
			}
			if got, want := rep.Requests, uint64(a.Counts().Requests); got != want {
				t.Errorf("report requests = %d, server saw %d", got, want)
			}
			if got, want := rep.Accepted, uint64(a.Counts().Accepted); got != want {
				t.Errorf("report accepted = %d, server accepted %d", got, want)
			}
			if got, want := rep.Rejected, uint64(a.Counts().Rejected); got != want {
				t.Errorf("report rejected = %d, server rejected %d", got, want)
			}
			if got, want := rep.Status["200"]+rep.Status["409"], rep.Requests; got != want {
				t.Errorf("200+409 = %d, want every request %d (status %v)", got, want, rep.Status)
			}
			if rep.Errors != 0 {
				t.Errorf("errors = %d (%v), want 0", rep.Errors, rep.ErrorSamples)
			}
			if rep.DoubleWins != 0 || !rep.WinsChecked {
				t.Errorf("double wins = %d (checked %v), want 0 of a complete check", rep.DoubleWins, rep.WinsChecked)
			}
			if got, want := rep.HighestAccepted, a.Price("hot"); got != want {
				t.Errorf("highest accepted = %s, server price %s", got, want)
			}
			if got := rep.Latency.Max; got <= 0 || got < rep.Latency.P50 {
				t.Errorf("latency max %v, p50 %v: want max >= p50 > 0", got, rep.Latency.P50)
			}
			// Climbing workers follow min_next_bid, so a good share of bids wins;
			// random flood amounts within 100.00 of the start mostly lose once
			// the price has moved.
			if tt.mode == ModeClimb && rep.Accepted < uint64(cfg.Requests)/uint64(cfg.Concurrency) {
				t.Errorf("climb accepted %d of %d, want at least one per worker round", rep.Accepted, rep.Requests)
			}
		})
	}
}

func TestFloodFixedAmountHasOneWinner(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(auctiontest.New())
	defer srv.Close()
	cfg := testConfig(srv.URL)
	cfg.Mode = ModeFlood
	cfg.FloodAmount = 500_00
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if got, want := rep.Accepted, uint64(1); got != want {
		t.Errorf("accepted = %d, want %d: one amount can win once", got, want)
	}
	if got, want := rep.Rejected, uint64(cfg.Requests-1); got != want {
		t.Errorf("rejected = %d, want %d", got, want)
	}
	if got, want := rep.HighestAccepted, models.Money(500_00); got != want {
		t.Errorf("highest accepted = %s, want %s", got, want)
	}
}

func TestDoubleWinsAreReported(t *testing.T) {
	t.Parallel()
	// A target that accepts every bid lets several workers win at one price.
	srv := httptest.NewServer(hello.Handler())
	defer srv.Close()
	cfg := testConfig(srv.URL)
	cfg.Concurrency = 4
	cfg.Requests = 40
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if rep.Accepted != 40 || !rep.WinsChecked {
		t.Fatalf("accepted = %d (checked %v), want 40, all checked", rep.Accepted, rep.WinsChecked)
	}
	// Every worker starts at the same amount, so at least the first round
	// of three other workers repeats the first winner's amount.
	if rep.DoubleWins < 3 {
		t.Errorf("double wins = %d, want at least 3", rep.DoubleWins)
	}
	cfg.CheckWins = false
	rep, err = Run(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if rep.DoubleWins != 0 || rep.WinsChecked {
		t.Errorf("with the check off: double wins = %d, checked %v; want 0, false", rep.DoubleWins, rep.WinsChecked)
	}
}

func TestRunContinuesExistingItem(t *testing.T) {
	t.Parallel()
	a := auctiontest.New()
	a.Put("hot", 1000_00, 5_00, 3)
	srv := httptest.NewServer(a)
	defer srv.Close()
	cfg := testConfig(srv.URL)
	cfg.Requests = 1
	cfg.Concurrency = 1
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	// The first bid is the item's current price plus its own increment,
	// read from GET, not the generator's default increment.
	if got, want := rep.HighestAccepted, models.Money(1005_00); got != want {
		t.Errorf("first bid = %s, want %s", got, want)
	}
}

func TestRunStopsAtDuration(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(auctiontest.New())
	defer srv.Close()
	cfg := testConfig(srv.URL)
	cfg.Requests = 0
	cfg.Duration = 300 * time.Millisecond
	done := make(chan Report, 1)
	go func() {
		rep, err := Run(context.Background(), cfg)
		if err != nil {
			t.Errorf("Run: %v", err)
		}
		done <- rep
	}()
	select {
	case rep := <-done:
		if rep.Requests == 0 {
			t.Errorf("no requests answered in %s", cfg.Duration)
		}
		if rep.Errors != 0 {
			t.Errorf("errors = %d (%v): requests cut off by the end must not count", rep.Errors, rep.ErrorSamples)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not stop after its duration")
	}
}

func TestRunCountsTransportErrors(t *testing.T) {
	t.Parallel()
	a := auctiontest.New()
	// Bids get their connection cut without an answer.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/bid") {
			c, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				c.Close()
			}
			return
		}
		a.ServeHTTP(w, r)
	}))
	defer srv.Close()
	cfg := testConfig(srv.URL)
	cfg.Requests = 20
	cfg.Concurrency = 2
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if got, want := rep.Errors, uint64(cfg.Requests); got != want {
		t.Errorf("errors = %d, want %d (every bid lost its connection)", got, want)
	}
	if rep.Requests != 0 {
		t.Errorf("answered requests = %d, want 0", rep.Requests)
	}
	if len(rep.ErrorSamples) == 0 || len(rep.ErrorSamples) > maxErrorSamples {
		t.Errorf("error samples = %q, want 1..%d", rep.ErrorSamples, maxErrorSamples)
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		modify func(*Config)
		want   string // substring of the error; empty for valid
	}{
		{"default", func(*Config) {}, ""},
		{"localhost", func(c *Config) { c.URL = "http://localhost:9" }, ""},
		{"ipv6 loopback", func(c *Config) { c.URL = "http://[::1]:9" }, ""},
		{"remote host", func(c *Config) { c.URL = "http://example.com:8080" }, "only loopback"},
		{"private address", func(c *Config) { c.URL = "http://10.0.0.1:8080" }, "only loopback"},
		{"https", func(c *Config) { c.URL = "https://127.0.0.1:8080" }, "http://host:port"},
		{"bad item", func(c *Config) { c.Item = "a.b" }, "item"},
		{"no users", func(c *Config) { c.Users = 0 }, "users"},
		{"too many workers", func(c *Config) { c.Concurrency = MaxConcurrency + 1 }, "concurrency"},
		{"too long", func(c *Config) { c.Duration = MaxDuration + time.Second }, "duration"},
		{"too many requests", func(c *Config) { c.Requests = MaxRequests + 1 }, "requests"},
		{"mode", func(c *Config) { c.Mode = "random" }, "bid mode"},
		{"client", func(c *Config) { c.Client = "curl" }, "client"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := DefaultConfig()
			tt.modify(&cfg)
			err := cfg.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("Validate() = %v, want nil", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("Validate() = %v, want an error mentioning %q", err, tt.want)
			}
		})
	}
}

func TestAppendBidAndMoneyField(t *testing.T) {
	t.Parallel()
	tests := []struct {
		amount models.Money
		want   string
	}{
		{1, `{"user_id":"lg_user_3","amount":0.01}`},
		{10, `{"user_id":"lg_user_3","amount":0.10}`},
		{100_00, `{"user_id":"lg_user_3","amount":100.00}`},
		{123_45, `{"user_id":"lg_user_3","amount":123.45}`},
	}
	for _, tt := range tests {
		if got := string(appendBid(nil, 3, tt.amount, false)); got != tt.want {
			t.Errorf("appendBid(3, %d) = %s, want %s", tt.amount, got, tt.want)
		}
		wantMax := strings.Replace(tt.want, `"amount"`, `"max_amount"`, 1)
		if got := string(appendBid(nil, 3, tt.amount, true)); got != wantMax {
			t.Errorf("appendBid(3, %d, max) = %s, want %s", tt.amount, got, wantMax)
		}
		var back struct{ Amount models.Money }
		if err := json.Unmarshal([]byte(tt.want), &back); err != nil || back.Amount != tt.amount {
			t.Errorf("%s decodes to %d (%v), want %d", tt.want, back.Amount, err, tt.amount)
		}
	}

	body := []byte(`{"success":false,"current_bid": 250.00,"your_bid":200.00,"min_next_bid":251.5}`)
	fields := []struct {
		key  string
		want models.Money
		ok   bool
	}{
		{"current_bid", 250_00, true},
		{"min_next_bid", 251_50, true},
		{"your_bid", 200_00, true},
		{"event_id", 0, false},
		{"success", 0, false},
	}
	for _, f := range fields {
		got, ok := moneyField(body, f.key)
		if got != f.want || ok != f.ok {
			t.Errorf("moneyField(%s) = %d, %v; want %d, %v", f.key, got, ok, f.want, f.ok)
		}
	}
}

func TestReportText(t *testing.T) {
	t.Parallel()
	r := Report{Label: "lua", Mode: ModeClimb, Requests: 10, Accepted: 4, Status: map[string]uint64{"200": 4, "409": 6}}
	var b bytes.Buffer
	if err := r.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"label:        lua", "200=4 409=6", "requests:     10"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("text report lacks %q:\n%s", want, b.String())
		}
	}
}
