package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	gws "github.com/gorilla/websocket"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/bidding-platform/broadcast-service/internal/server"
	"github.com/bidding-platform/shared/models"
	"github.com/bidding-platform/shared/stream"
	"github.com/bidding-platform/shared/testenv"
)

type instance struct {
	addr string
	reg  *prometheus.Registry
}

// startServer runs the real wiring on 127.0.0.1:0 until the test ends.
func startServer(t *testing.T, natsURL string, tune func(*server.Config)) *instance {
	t.Helper()
	cfg := server.DefaultConfig()
	cfg.Addr = "127.0.0.1:0"
	cfg.NATSURL = natsURL
	cfg.ReconnectWait = 100 * time.Millisecond
	cfg.ShutdownTimeout = 5 * time.Second
	if tune != nil {
		tune(&cfg)
	}
	reg := prometheus.NewRegistry()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := server.New(ctx, cfg, reg, log)
	if err != nil {
		cancel()
		t.Fatalf("server.New: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("server.Run: %v", err)
		}
	})
	return &instance{addr: srv.Addr(), reg: reg}
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// metric reads a counter or gauge from the instance's registry.
func (in *instance) metric(t *testing.T, name string) float64 {
	t.Helper()
	mfs, err := in.reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		var sum float64
		for _, m := range mf.GetMetric() {
			sum += value(m)
		}
		return sum
	}
	t.Fatalf("metric %s not found", name)
	return 0
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount())
	}
	return 0
}

// publisher plays the gateway: it publishes gapless events for one item.
type publisher struct {
	t      *testing.T
	js     jetstream.JetStream
	itemID string
	seq    uint64
}

func newPublisher(t *testing.T, js jetstream.JetStream, itemID string) *publisher {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := stream.Ensure(ctx, js); err != nil {
		t.Fatalf("ensure stream: %v", err)
	}
	return &publisher{t: t, js: js, itemID: itemID}
}

func (p *publisher) event() models.Event {
	p.seq++
	ends := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	return models.Event{
		Type: models.EventBid, EventID: models.NewEventID(), ItemID: p.itemID, BidID: models.NewBidID(),
		UserID: fmt.Sprintf("user_%d", p.seq%7), Amount: models.Money(10000 + 100*p.seq), PreviousBid: models.Money(10000 + 100*(p.seq-1)),
		Timestamp: time.Now().UTC(), Seq: p.seq, EndsAt: &ends, BidCount: int64(p.seq),
	}
}

// publish sends n events through JetStream, as the gateway does.
func (p *publisher) publish(n int) {
	p.t.Helper()
	for range n {
		p.send(p.event())
	}
}

func (p *publisher) send(ev models.Event) {
	p.t.Helper()
	if err := p.sendErr(ev); err != nil {
		p.t.Fatal(err)
	}
}

// sendErr is send for goroutines other than the test's.
func (p *publisher) sendErr(ev models.Event) error {
	data, _ := json.Marshal(ev)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := p.js.Publish(ctx, stream.Subject(p.itemID), data, jetstream.WithMsgID(ev.EventID)); err != nil {
		return fmt.Errorf("publish seq %d: %w", ev.Seq, err)
	}
	return nil
}

// viewerMsg is the part of every message the tests look at.
type viewerMsg struct {
	Type       string       `json:"type"`
	Seq        uint64       `json:"seq"`
	ItemID     string       `json:"item_id"`
	Amount     models.Money `json:"amount"`
	CurrentBid models.Money `json:"current_bid"`
	Count      int          `json:"count"`
	Viewers    int          `json:"viewers"`
	FirstSeq   uint64       `json:"first_seq"`
	Replay     bool         `json:"replay"`
	ServerTime time.Time    `json:"server_time"`
}

func dial(t *testing.T, addr, query string) *gws.Conn {
	t.Helper()
	c, err := dialErr(addr, query, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", query, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func dialErr(addr, query string, header http.Header) (*gws.Conn, error) {
	d := gws.Dialer{HandshakeTimeout: 10 * time.Second}
	c, resp, err := d.Dial("ws://"+addr+"/ws?"+query, header)
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	return c, err
}

func read(t *testing.T, c *gws.Conn) viewerMsg {
	t.Helper()
	m, err := readErr(c, 10*time.Second)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return m
}

func readErr(c *gws.Conn, timeout time.Duration) (viewerMsg, error) {
	var m viewerMsg
	if err := c.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return m, err
	}
	_, data, err := c.ReadMessage()
	if err != nil {
		return m, err
	}
	if err := json.Unmarshal(data, &m); err != nil {
		return m, fmt.Errorf("decode %s: %w", data, err)
	}
	if m.Type == "" || m.ServerTime.IsZero() {
		return m, fmt.Errorf("message without type or server_time: %s", data)
	}
	return m, nil
}

// readEvents reads until it has the events from..to (inclusive), skipping
// viewer counts, and fails on anything out of order.
func readEvents(t *testing.T, c *gws.Conn, from, to uint64) {
	t.Helper()
	want := from
	for want <= to {
		m := read(t, c)
		switch m.Type {
		case "viewers":
			continue
		case "bid":
			if m.Seq != want {
				t.Fatalf("got event seq %d, want %d", m.Seq, want)
			}
			want++
		default:
			t.Fatalf("got %q message (seq %d) while waiting for seq %d", m.Type, m.Seq, want)
		}
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func natsJS(t *testing.T, n *testenv.NATSServer) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(n.URL(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatalf("connect nats: %v", err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("jetstream: %v", err)
	}
	return js
}

var errUnexpected = errors.New("unexpected message")
