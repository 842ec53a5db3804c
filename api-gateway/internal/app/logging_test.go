package app

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/bidding-platform/shared/stream"
	"github.com/bidding-platform/shared/testenv"
)

// TestGoRedisLogsThroughTheLogger: go-redis's own lines reach the gateway's
// logger, in its format, instead of stderr. Not parallel: go-redis has one
// logger per process, which a gateway started meanwhile would take over.
func TestGoRedisLogsThroughTheLogger(t *testing.T) {
	n := testenv.NATS(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	var logs testenv.LogBuffer
	g := startGatewayLog(t, testConfig([]string{dead}, false, n.URL()), slog.New(slog.NewJSONHandler(&logs, nil)))
	if a := do(t, "GET", g.url+"/api/v1/items/lot", ""); a.Status != http.StatusServiceUnavailable {
		t.Fatalf("GET item without Redis = %d %s, want 503", a.Status, a.Body)
	}
	testenv.WaitFor(t, 10*time.Second, "go-redis's dial failure in the gateway's log", func() error {
		for _, line := range strings.Split(logs.String(), "\n") {
			if strings.Contains(line, `"component":"go-redis"`) && strings.Contains(line, "failed to dial") {
				return nil
			}
		}
		return fmt.Errorf("log so far:\n%s", logs.String())
	})
}

// TestInvalidEventOnTheFeedIsLogged: the price feed passes over a message
// the shared decoder refuses and says why.
func TestInvalidEventOnTheFeedIsLogged(t *testing.T) {
	t.Parallel()
	r := testenv.Redis(t)
	n := testenv.NATS(t)
	var logs testenv.LogBuffer
	startGatewayLog(t, testConfig([]string{r.Addr()}, false, n.URL()), slog.New(slog.NewJSONHandler(&logs, nil)))
	nc := n.Conn()
	// The feed's subscription reaches the server asynchronously: publish
	// until one message has arrived.
	testenv.WaitFor(t, 10*time.Second, "the invalid event in the gateway's log", func() error {
		if err := nc.Publish(stream.Subject("lot"), []byte(`{"type":"bid","item_id":"lot"}`)); err != nil {
			return err
		}
		for _, line := range strings.Split(logs.String(), "\n") {
			if strings.Contains(line, "skipping an invalid event") && strings.Contains(line, `"subject":"bids.lot"`) &&
				strings.Contains(line, "invalid event without id: no event_id") {
				return nil
			}
		}
		return fmt.Errorf("log so far:\n%s", logs.String())
	})
}

// TestScriptErrorIsA500: when Redis answers but the bid script fails (here
// on an item hash with a corrupted price), the bid gets 500 "internal error"
// on both HTTP paths, never a 503 blaming Redis, and the cause is logged.
func TestScriptErrorIsA500(t *testing.T) {
	t.Parallel()
	r := testenv.Redis(t)
	n := testenv.NATS(t)
	var logs testenv.LogBuffer
	cfg := testConfig([]string{r.Addr()}, false, n.URL())
	g := startGatewayLog(t, cfg, slog.New(slog.NewJSONHandler(&logs, nil)))
	g.createItem(t, "corrupt", "10.00", "1.00")
	key := cfg.RedisKeyPrefix + "item:{corrupt}"
	if err := r.Client().HSet(context.Background(), key, "sp", "ten").Err(); err != nil {
		t.Fatal(err)
	}
	for _, p := range httpPaths {
		a := g.bid(t, "corrupt", "u1", "50.00", p.headers...)
		if a.Status != http.StatusInternalServerError || a.str("message") != "internal error" {
			t.Errorf("%s: bid on a corrupted item = %d %s, want 500 internal error", p.name, a.Status, a.Body)
		}
		if a.Header.Get("Retry-After") != "" {
			t.Errorf("%s: a 500 says Retry-After %q, as if Redis were down", p.name, a.Header.Get("Retry-After"))
		}
	}
	testenv.WaitFor(t, 5*time.Second, "the script error in the gateway's log", func() error {
		for _, line := range strings.Split(logs.String(), "\n") {
			if strings.Contains(line, `"level":"ERROR"`) && strings.Contains(line, `"msg":"place bid"`) &&
				strings.Contains(line, "user_script") {
				return nil
			}
		}
		return fmt.Errorf("log so far:\n%s", logs.String())
	})
}
