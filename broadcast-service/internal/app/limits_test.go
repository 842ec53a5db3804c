package app_test

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	gws "github.com/gorilla/websocket"

	"github.com/bidding-platform/broadcast-service/internal/app"
	"github.com/bidding-platform/broadcast-service/internal/websocket"
	"github.com/bidding-platform/shared/testenv"
)

// refusal is a handshake the service answered without upgrading.
type refusal struct {
	status int
	body   string
}

// dialFrom opens a viewer whose TCP connection comes from the local address
// ip (Linux routes all of 127/8 to loopback, so 127.0.0.2 is a second
// client address). A refused handshake comes back as a refusal.
func dialFrom(ip, addr, query string, header http.Header) (*gws.Conn, *refusal, error) {
	d := gws.Dialer{HandshakeTimeout: 10 * time.Second,
		NetDialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}).DialContext}
	c, resp, err := d.Dial("ws://"+addr+"/ws?"+query, header)
	if resp != nil && resp.Body != nil {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if errors.Is(err, gws.ErrBadHandshake) {
			return nil, &refusal{status: resp.StatusCode, body: string(body)}, nil
		}
	}
	return c, nil, err
}

// viewerFrom is dialFrom for a viewer that must be let in; it reads the
// snapshot.
func viewerFrom(t *testing.T, ip, addr, query string, header http.Header) *gws.Conn {
	t.Helper()
	c, ref, err := dialFrom(ip, addr, query, header)
	if err != nil || ref != nil {
		t.Fatalf("viewer from %s (X-Forwarded-For %q) of %s: err %v, refused %+v; want it let in", ip, header.Get("X-Forwarded-For"), query, err, ref)
	}
	t.Cleanup(func() { c.Close() })
	if m := read(t, c); m.Type != "snapshot" {
		t.Fatalf("first message %+v, want a snapshot", m)
	}
	return c
}

// refusedFrom fails unless the viewer is refused with 429 and a message
// that says why.
func refusedFrom(t *testing.T, ip, addr, query string, header http.Header) {
	t.Helper()
	c, ref, err := dialFrom(ip, addr, query, header)
	if c != nil {
		c.Close()
	}
	if err != nil || ref == nil {
		t.Fatalf("viewer from %s (X-Forwarded-For %q): err %v, refused %v; want 429", ip, header.Get("X-Forwarded-For"), err, ref)
	}
	if ref.status != http.StatusTooManyRequests || !strings.Contains(ref.body, "too many connections from this address") {
		t.Fatalf("viewer from %s (X-Forwarded-For %q) refused with %d %q, want 429 naming the address limit", ip, header.Get("X-Forwarded-For"), ref.status, ref.body)
	}
}

func xff(v string) http.Header { return http.Header{"X-Forwarded-For": {v}} }

const perIPRejected = `broadcast_connections_rejected_total{reason="per_ip"}`

// TestPerIPConnectionLimit: a flood from one address is refused with 429
// past WS_MAX_CONNS_PER_IP, while another address still connects and every
// admitted viewer keeps getting events; closed viewers and failed upgrades
// give their slots back.
func TestPerIPConnectionLimit(t *testing.T) {
	const limit = 3
	n := testenv.NATS(t)
	in := startServer(t, n.URL(), func(c *app.Config) { c.MaxConnsPerIP = limit })
	pub := newPublisher(t, natsJS(t, n), "perip_item")
	const q = "item_id=perip_item"

	var mine []*gws.Conn
	for range limit {
		mine = append(mine, viewerFrom(t, "127.0.0.1", in.addr, q, nil))
	}
	for range 20 {
		refusedFrom(t, "127.0.0.1", in.addr, q, nil)
	}
	if got := in.metric(t, perIPRejected); got != 20 {
		t.Errorf("%s = %v, want 20", perIPRejected, got)
	}
	if got := in.metric(t, `broadcast_connections_rejected_total{reason="max_connections"}`); got != 0 {
		t.Errorf("refusals counted as max_connections: %v, want 0", got)
	}
	other := viewerFrom(t, "127.0.0.2", in.addr, q, nil)
	pub.publish(3)
	for _, c := range append(mine, other) {
		readEvents(t, c, 1, 3)
	}

	// One viewer leaves; handshakes that fail (not an upgrade, an origin
	// not allowed) take no slot for good.
	mine[0].Close()
	testenv.WaitFor(t, 10*time.Second, "the closed viewer's slot", func() error { return in.metricIs(t, "broadcast_connections", limit) })
	for range 5 {
		resp, err := http.Get("http://" + in.addr + "/ws?" + q)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("GET /ws without an upgrade = %d, want 400", resp.StatusCode)
		}
		c, ref, err := dialFrom("127.0.0.1", in.addr, q, http.Header{"Origin": {"http://evil.example"}})
		if c != nil || err != nil || ref == nil || ref.status != http.StatusForbidden {
			t.Fatalf("viewer with a foreign origin: conn %v, err %v, refused %+v; want 403", c, err, ref)
		}
	}
	again := viewerFrom(t, "127.0.0.1", in.addr, q, nil)
	refusedFrom(t, "127.0.0.1", in.addr, q, nil)
	pub.publish(1)
	for _, c := range []*gws.Conn{mine[1], mine[2], other, again} {
		readEvents(t, c, 4, 4)
	}
}

// TestForwardedFor: without WS_TRUST_FORWARDED_FOR the header is the
// client's to forge and is ignored; with it, the rightmost entry (the one
// the load balancer appended) is the client's address and what the client
// wrote to its left does not matter.
func TestForwardedFor(t *testing.T) {
	n := testenv.NATS(t)
	const q = "item_id=xff_item"
	t.Run("not trusted", func(t *testing.T) {
		in := startServer(t, n.URL(), func(c *app.Config) { c.MaxConnsPerIP = 2 })
		viewerFrom(t, "127.0.0.1", in.addr, q, xff("10.0.0.1"))
		viewerFrom(t, "127.0.0.1", in.addr, q, xff("10.0.0.2"))
		refusedFrom(t, "127.0.0.1", in.addr, q, xff("10.0.0.3"))
		refusedFrom(t, "127.0.0.1", in.addr, q, xff("10.0.0.4, 10.0.0.5"))
		viewerFrom(t, "127.0.0.2", in.addr, q, nil)
	})
	t.Run("trusted", func(t *testing.T) {
		in := startServer(t, n.URL(), func(c *app.Config) {
			c.MaxConnsPerIP = 2
			c.TrustForwardedFor = true
		})
		viewerFrom(t, "127.0.0.1", in.addr, q, xff("6.6.6.6, 198.51.100.1"))
		viewerFrom(t, "127.0.0.1", in.addr, q, xff("7.7.7.7, 198.51.100.1"))
		refusedFrom(t, "127.0.0.1", in.addr, q, xff("8.8.8.8, 198.51.100.1"))
		refusedFrom(t, "127.0.0.1", in.addr, q, xff("198.51.100.1"))
		// Another client behind the same load balancer.
		viewerFrom(t, "127.0.0.1", in.addr, q, xff("198.51.100.1, 198.51.100.2"))
		// A request that came past the load balancer is counted by its peer.
		viewerFrom(t, "127.0.0.1", in.addr, q, nil)
		viewerFrom(t, "127.0.0.1", in.addr, q, nil)
		refusedFrom(t, "127.0.0.1", in.addr, q, nil)
		if got := in.metric(t, perIPRejected); got != 3 {
			t.Errorf("%s = %v, want 3", perIPRejected, got)
		}
	})
}

// stuckViewer starts a since_seq=0 replay of a long item that the viewer
// does not read, so the replay waits for room in the viewer's queue and
// holds its slot until the viewer reads.
func stuckViewer(t *testing.T, addr, itemID string) *gws.Conn {
	t.Helper()
	d := gws.Dialer{HandshakeTimeout: 10 * time.Second, NetDialContext: (&net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		return errors.Join(err, serr)
	}}).DialContext}
	c, resp, err := d.Dial("ws://"+addr+"/ws?item_id="+itemID+"&since_seq=0", nil)
	if err != nil {
		t.Fatalf("dial stuck viewer: %v", err)
	}
	resp.Body.Close()
	t.Cleanup(func() { c.Close() })
	return c
}

// replayTuning makes a viewer that does not read hold up its own replay:
// small queue and socket buffers, and writes that wait long enough not to
// cut it off during the test.
func replayTuning(c *app.Config) {
	c.SendQueueSize = 16
	c.SocketSendBuffer = 8192
	c.WriteTimeout = 2 * time.Minute
}

// receive expects a snapshot, then events from..to in order (viewer counts
// aside), as a page resuming with since_seq=from-1 would show them.
func receive(c *gws.Conn, from, to uint64) error {
	m, err := readErr(c, 60*time.Second)
	if err != nil {
		return err
	}
	if m.Type != "snapshot" {
		return fmt.Errorf("first message %+v, want a snapshot", m)
	}
	for want := from; want <= to; {
		m, err := readErr(c, 60*time.Second)
		if err != nil {
			return fmt.Errorf("waiting for seq %d: %w", want, err)
		}
		switch m.Type {
		case "viewers":
		case "bid":
			if m.Seq != want {
				return fmt.Errorf("got seq %d, want %d", m.Seq, want)
			}
			want++
		default:
			return fmt.Errorf("got %q (seq %d) while waiting for seq %d", m.Type, m.Seq, want)
		}
	}
	return nil
}

// TestCatchupReplayCap: with every replay slot held, many viewers resuming
// with since_seq wait (never more replays run than WS_MAX_CATCHUP_REPLAYS)
// while viewers that need no replay are served at once; once the slots
// free up, every viewer gets every event it missed, in order.
func TestCatchupReplayCap(t *testing.T) {
	const slots, waiters, held = 2, 16, 800
	n := testenv.NATS(t)
	in := startServer(t, n.URL(), func(c *app.Config) {
		replayTuning(c)
		c.MaxCatchupReplays = slots
		c.CatchupWait = time.Minute
	})
	js := natsJS(t, n)
	long := newPublisher(t, js, "long_item")
	long.publish(held)
	pub := newPublisher(t, js, "cap_item")
	pub.publish(30)

	stuck := []*gws.Conn{stuckViewer(t, in.addr, "long_item"), stuckViewer(t, in.addr, "long_item")}
	testenv.WaitFor(t, 30*time.Second, "every slot held", func() error { return in.metricIs(t, "broadcast_catchup_replays", slots) })

	since := make([]uint64, waiters)
	conns := make([]*gws.Conn, waiters)
	for i := range conns {
		since[i] = uint64(i%6) * 5
		conns[i] = dial(t, in.addr, fmt.Sprintf("item_id=cap_item&since_seq=%d", since[i]))
	}
	testenv.WaitFor(t, 30*time.Second, "resuming viewers waiting", func() error {
		return in.metricIs(t, "broadcast_catchup_replays_waiting", waiters)
	})
	if got := in.metric(t, "broadcast_catchup_replays"); got != slots {
		t.Fatalf("broadcast_catchup_replays = %v with %d viewers resuming, want the cap %d", got, waiters, slots)
	}
	// Viewers that need no replay are not held up by the queue.
	fresh := dial(t, in.addr, "item_id=cap_item")
	current := dial(t, in.addr, "item_id=cap_item&since_seq=30")
	for _, c := range []*gws.Conn{fresh, current} {
		if m := read(t, c); m.Type != "snapshot" || m.Seq != 30 {
			t.Fatalf("viewer needing no replay got %+v, want the snapshot at seq 30 at once", m)
		}
	}
	pub.publish(2)
	readEvents(t, fresh, 31, 32)
	readEvents(t, current, 31, 32)

	var left atomic.Int64
	errs := make(chan error, waiters+len(stuck))
	var wg sync.WaitGroup
	start := func(c *gws.Conn, from, to uint64) {
		left.Add(1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer left.Add(-1)
			if err := receive(c, from, to); err != nil {
				errs <- fmt.Errorf("viewer resuming after seq %d: %w", from-1, err)
			}
		}()
	}
	for i, c := range conns {
		start(c, since[i]+1, 32)
	}
	for _, c := range stuck {
		start(c, 1, held)
	}
	testenv.WaitFor(t, 2*time.Minute, "every viewer caught up", func() error {
		if got := in.metric(t, "broadcast_catchup_replays"); got > slots {
			t.Fatalf("broadcast_catchup_replays = %v, above the cap %d", got, slots)
		}
		if n := left.Load(); n > 0 {
			return fmt.Errorf("%d viewers still catching up", n)
		}
		return nil
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := in.metric(t, "broadcast_catchup_replays_refused_total"); got != 0 {
		t.Errorf("broadcast_catchup_replays_refused_total = %v, want 0 (every viewer waited long enough)", got)
	}
	pub.publish(1)
	for _, c := range append(conns, fresh, current) {
		readEvents(t, c, 33, 33)
	}
}

// TestCatchupReplayRefused: a viewer that gets no replay slot within
// WS_CATCHUP_WAIT is closed with 4013 before anything is sent, gives its
// connection slots back, and resuming again later with the same since_seq
// gets every event it missed.
func TestCatchupReplayRefused(t *testing.T) {
	const held = 800
	n := testenv.NATS(t)
	in := startServer(t, n.URL(), func(c *app.Config) {
		replayTuning(c)
		c.MaxCatchupReplays = 1
		c.CatchupWait = 200 * time.Millisecond
		c.MaxConnsPerIP = 2 // the stuck viewer and one more
	})
	js := natsJS(t, n)
	long := newPublisher(t, js, "long_item")
	long.publish(held)
	pub := newPublisher(t, js, "refused_item")
	pub.publish(10)

	stuck := stuckViewer(t, in.addr, "long_item")
	testenv.WaitFor(t, 30*time.Second, "the slot held", func() error { return in.metricIs(t, "broadcast_catchup_replays", 1) })

	c := dial(t, in.addr, "item_id=refused_item&since_seq=3")
	_, data, err := c.ReadMessage()
	var closeErr *gws.CloseError
	if !errors.As(err, &closeErr) || closeErr.Code != websocket.CloseTryAgain || !strings.Contains(closeErr.Text, "since_seq") {
		t.Fatalf("viewer without a replay slot: message %s, err %v; want nothing but close code %d saying to resume with since_seq", data, err, websocket.CloseTryAgain)
	}
	if got := in.metric(t, "broadcast_catchup_replays_refused_total"); got != 1 {
		t.Errorf("broadcast_catchup_replays_refused_total = %v, want 1", got)
	}
	testenv.WaitFor(t, 10*time.Second, "the refused viewer's connection slot", func() error { return in.metricIs(t, "broadcast_connections", 1) })

	if err := receive(stuck, 1, held); err != nil {
		t.Fatalf("the stuck viewer, once reading: %v", err)
	}
	testenv.WaitFor(t, 10*time.Second, "the slot free", func() error { return in.metricIs(t, "broadcast_catchup_replays", 0) })
	c = dial(t, in.addr, "item_id=refused_item&since_seq=3")
	if err := receive(c, 4, 10); err != nil {
		t.Fatalf("resuming again: %v", err)
	}
	pub.publish(1)
	readEvents(t, c, 11, 11)
}
