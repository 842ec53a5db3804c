package app

import (
	"bytes"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
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
	var logs syncBuffer
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
	var logs syncBuffer
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

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
