package app_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	gws "github.com/gorilla/websocket"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/bidding-platform/broadcast-service/internal/app"
	"github.com/bidding-platform/shared/models"
	"github.com/bidding-platform/shared/stream"
	"github.com/bidding-platform/shared/testenv"
)

type instance struct {
	addr string
}

// startServer runs the real wiring on 127.0.0.1:0 until the test ends.
func startServer(t *testing.T, natsURL string, tune func(*app.Config)) *instance {
	t.Helper()
	cfg := app.DefaultConfig()
	cfg.Addr = "127.0.0.1:0"
	cfg.NATSURL = natsURL
	cfg.ReconnectWait = 100 * time.Millisecond
	cfg.ShutdownTimeout = 5 * time.Second
	// Every test viewer comes from 127.0.0.1; the tests of the limit set it.
	cfg.MaxConnsPerIP = 0
	// The item channel needs no token; the personal channel's tests of
	// authentication set a secret.
	cfg.Auth.Disabled = true
	// No gateway by default: personal channels then follow live events only.
	cfg.GatewayInternalURL = closedURL(t)
	if tune != nil {
		tune(&cfg)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	ctx, cancel := context.WithCancel(context.Background())
	a, err := app.New(ctx, cfg, log)
	if err != nil {
		cancel()
		t.Fatalf("app.New: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("app.Run: %v", err)
		}
	})
	return &instance{addr: a.Addr()}
}

// closedURL is an HTTP address nothing listens on.
func closedURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

var httpClient = &http.Client{Timeout: 5 * time.Second}

// metric reads a counter or gauge from the instance's /metrics, summed
// over its labels.
func (in *instance) metric(t *testing.T, name string) float64 {
	t.Helper()
	resp, err := httpClient.Get("http://" + in.addr + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	var sum float64
	found := false
	// Sample lines are `name value` or `name{labels} value`.
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), name)
		if !ok || rest == "" || (rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		fields := strings.Fields(rest)
		v, err := strconv.ParseFloat(fields[len(fields)-1], 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", sc.Text(), err)
		}
		sum += v
		found = true
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("read /metrics: %v", err)
	}
	if !found {
		t.Fatalf("metric %s not found", name)
	}
	return sum
}

// metricIs is a condition for testenv.WaitFor.
func (in *instance) metricIs(t *testing.T, name string, want float64) error {
	t.Helper()
	if got := in.metric(t, name); got != want {
		return fmt.Errorf("%s = %v, want %v", name, got, want)
	}
	return nil
}

// readyIs is a condition for testenv.WaitFor: /ready answers want.
func (in *instance) readyIs(want int) error {
	resp, err := httpClient.Get("http://" + in.addr + "/ready")
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != want {
		return fmt.Errorf("GET /ready = %d, want %d", resp.StatusCode, want)
	}
	return nil
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
	if _, err := stream.Ensure(ctx, js, 1); err != nil {
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

// sendRaw publishes data on the item's subject as it is, for messages no
// gateway would send.
func (p *publisher) sendRaw(data string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := p.js.Publish(ctx, stream.Subject(p.itemID), []byte(data)); err != nil {
		p.t.Fatalf("publish %s: %v", data, err)
	}
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
