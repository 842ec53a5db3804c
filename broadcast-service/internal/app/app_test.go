package app_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	gws "github.com/gorilla/websocket"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/bidding-platform/broadcast-service/internal/app"
	"github.com/bidding-platform/broadcast-service/internal/websocket"
	"github.com/bidding-platform/shared/models"
	"github.com/bidding-platform/shared/stream"
	"github.com/bidding-platform/shared/testenv"
)

func TestHealthReadyAndPage(t *testing.T) {
	n := testenv.NATS(t)
	in := startServer(t, n.URL(), func(c *app.Config) { c.GatewayURL = "http://gw.example:9000" })
	for _, tc := range []struct {
		path, want string
	}{
		{"/health", `"service":"broadcast-service"`},
		{"/ready", `"nats":"ok"`},
		{"/metrics", "broadcast_connections"},
		{"/", "Active auctions"},
		{"/?item=lot_2", "Place a bid"}, // opening an item by id without JavaScript redirects
		{"/items/lot_1", "Place a bid"},
		{"/me", "My bids"},
		{"/config.js", `"gatewayURL":"http://gw.example:9000"`},
		{"/config.js", `"devSignIn":false,"embedOrigins":[]`},
		{"/static/item.js", "since_seq"},
		{"/static/common.js", "access_token"},
	} {
		resp, err := http.Get("http://" + in.addr + tc.path)
		if err != nil {
			t.Fatalf("GET %s: %v", tc.path, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !contains(string(body), tc.want) {
			t.Errorf("GET %s = %d %.200s, want 200 containing %s", tc.path, resp.StatusCode, body, tc.want)
		}
	}
}

func contains(s, sub string) bool {
	return len(sub) == 0 || (len(s) >= len(sub) && indexOf(s, sub) >= 0)
}

func indexOf(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return i
		}
	}
	return -1
}

func TestSnapshotThenLiveInOrder(t *testing.T) {
	n := testenv.NATS(t)
	in := startServer(t, n.URL(), nil)
	pub := newPublisher(t, natsJS(t, n), "snap_item")

	empty := dial(t, in.addr, "item_id=empty_item")
	if m := read(t, empty); m.Type != "snapshot" || m.Seq != 0 || m.ItemID != "empty_item" {
		t.Fatalf("snapshot of an item without events = %+v, want type snapshot, seq 0", m)
	}

	pub.publish(3)
	c := dial(t, in.addr, "item_id=snap_item")
	m := read(t, c)
	if got, want := m.Seq, uint64(3); m.Type != "snapshot" || got != want {
		t.Fatalf("first message = %+v, want snapshot with seq %d", m, want)
	}
	if got, want := m.CurrentBid, pub.lastAmount(); got != want {
		t.Errorf("snapshot current_bid = %s, want %s", got, want)
	}
	if m.Viewers != 1 {
		t.Errorf("snapshot viewers = %d, want 1", m.Viewers)
	}
	pub.publish(5)
	readEvents(t, c, 4, 8)
}

func (p *publisher) lastAmount() models.Money { return models.Money(10000 + 100*p.seq) }

func TestViewerCounts(t *testing.T) {
	n := testenv.NATS(t)
	in := startServer(t, n.URL(), nil)
	a := dial(t, in.addr, "item_id=count_item")
	read(t, a) // snapshot
	b := dial(t, in.addr, "item_id=count_item")
	if m := read(t, b); m.Viewers != 2 {
		t.Fatalf("second viewer's snapshot says %d viewers, want 2", m.Viewers)
	}
	for {
		m := read(t, a)
		if m.Type == "viewers" && m.Count == 2 {
			break
		}
	}
	b.Close()
	for {
		m := read(t, a)
		if m.Type == "viewers" && m.Count == 1 {
			break
		}
	}
}

// TestThousandViewers: every one of 1,000 viewers gets all 200 events in seq
// order, exactly once.
func TestThousandViewers(t *testing.T) {
	const viewers, events = 1000, 200
	n := testenv.NATS(t)
	in := startServer(t, n.URL(), func(c *app.Config) { c.SendQueueSize = 512 })
	pub := newPublisher(t, natsJS(t, n), "hot_item")

	conns := make([]*gws.Conn, viewers)
	for i := range conns {
		conns[i] = dial(t, in.addr, "item_id=hot_item")
	}
	errs := make(chan error, viewers)
	var wg sync.WaitGroup
	var (
		redialMu sync.Mutex
		redialed []*gws.Conn
	)
	t.Cleanup(func() {
		for _, c := range redialed {
			c.Close()
		}
	})
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- receiveAll(c, events, func(since uint64) (*gws.Conn, error) {
				c, err := dialErr(in.addr, fmt.Sprintf("item_id=hot_item&since_seq=%d", since), nil)
				if err == nil {
					redialMu.Lock()
					redialed = append(redialed, c)
					redialMu.Unlock()
				}
				return c, err
			})
		}()
	}
	testenv.WaitFor(t, 30*time.Second, "all viewers joined", func() error { return in.metricIs(t, "broadcast_connections", viewers) })
	pub.publish(events)
	wg.Wait()
	close(errs)
	failed := 0
	for err := range errs {
		if err != nil {
			if failed < 5 {
				t.Error(err)
			}
			failed++
		}
	}
	if failed > 0 {
		t.Fatalf("%d of %d viewers did not get all %d events in order", failed, viewers, events)
	}
	// On a loaded machine a viewer may be cut off as slow; it must then
	// catch up where it left off, which receiveAll checked.
	t.Logf("%d reconnects", len(redialed))
	if got := in.metric(t, "broadcast_item_subscriptions"); got != 1 {
		t.Errorf("item subscriptions = %v, want 1 for one item", got)
	}
}

// receiveAll expects a snapshot, then events 1..n in order. A viewer that
// loses its connection (cut off as slow on a loaded machine) reconnects
// through redial with the last seq it has, as the live page does, and must
// get the rest without a gap or a repeat; it gives up after a few tries.
func receiveAll(c *gws.Conn, n uint64, redial func(since uint64) (*gws.Conn, error)) error {
	next := uint64(1)
	tries := 0
	for next <= n {
		m, err := readErr(c, 60*time.Second)
		if err != nil {
			var closed *gws.CloseError
			if errors.Is(err, errUnexpected) || !errors.As(err, &closed) && !errors.Is(err, io.ErrUnexpectedEOF) || tries == 5 {
				return fmt.Errorf("waiting for seq %d: %w", next, err)
			}
			tries++
			if c, err = redial(next - 1); err != nil {
				return fmt.Errorf("reconnect after seq %d: %w", next-1, err)
			}
			continue
		}
		switch m.Type {
		case "snapshot":
			if tries == 0 && (m.Seq != 0 || next != 1) || m.Seq < next-1 {
				return fmt.Errorf("snapshot seq %d after %d events: %w", m.Seq, next-1, errUnexpected)
			}
		case "viewers":
		case "bid":
			if m.Seq != next {
				return fmt.Errorf("got seq %d, want %d: %w", m.Seq, next, errUnexpected)
			}
			next++
		default:
			return fmt.Errorf("type %q: %w", m.Type, errUnexpected)
		}
	}
	return nil
}

// TestResumeSinceSeq: a viewer that missed 50 events gets them from
// JetStream, then live ones, with no gap or duplicate.
func TestResumeSinceSeq(t *testing.T) {
	n := testenv.NATS(t)
	in := startServer(t, n.URL(), nil)
	pub := newPublisher(t, natsJS(t, n), "resume_item")
	// Another viewer keeps the item's feed warm, as on a busy instance.
	other := dial(t, in.addr, "item_id=resume_item")
	read(t, other)

	c := dial(t, in.addr, "item_id=resume_item")
	read(t, c)
	pub.publish(10)
	readEvents(t, c, 1, 10)
	c.Close()

	pub.publish(50)
	c = dial(t, in.addr, "item_id=resume_item&since_seq=10")
	// The warm feed may not have received the newest events live yet; those
	// then follow the replay live, so only the range is certain.
	if m := read(t, c); m.Type != "snapshot" || m.Seq < 10 || m.Seq > 60 {
		t.Fatalf("first message after resume = %+v, want snapshot with seq in 10..60", m)
	}
	readEvents(t, c, 11, 60)
	pub.publish(5)
	readEvents(t, c, 61, 65)

	// Resuming on an instance with no feed for the item yet.
	in2 := startServer(t, n.URL(), nil)
	c2 := dial(t, in2.addr, "item_id=resume_item&since_seq=40")
	if m := read(t, c2); m.Type != "snapshot" || m.Seq != 65 {
		t.Fatalf("first message on a cold instance = %+v, want snapshot seq 65", m)
	}
	readEvents(t, c2, 41, 65)
	pub.publish(1)
	readEvents(t, c2, 66, 66)
}

// TestInvalidEventsAreSkipped: messages the shared decoder refuses (not
// JSON; a type this version does not know) are passed over, live and in
// history, and the newest valid event is the snapshot even when an invalid
// one was stored after it. Viewers get the valid events in order and stay.
func TestInvalidEventsAreSkipped(t *testing.T) {
	n := testenv.NATS(t)
	in := startServer(t, n.URL(), nil)
	pub := newPublisher(t, natsJS(t, n), "bad_item")
	live := dial(t, in.addr, "item_id=bad_item")
	read(t, live)

	pub.publish(1)
	pub.sendRaw(`{"type":`)
	pub.sendRaw(`{"type":"auction_extended","event_id":"evt_new","item_id":"bad_item","seq":2}`)
	pub.publish(1)
	pub.sendRaw(`{"type":"bid","item_id":"bad_item"}`)
	readEvents(t, live, 1, 2)

	cold := startServer(t, n.URL(), nil)
	c := dial(t, cold.addr, "item_id=bad_item&since_seq=0")
	if m := read(t, c); m.Type != "snapshot" || m.Seq != 2 {
		t.Fatalf("first message on a cold instance = %+v, want snapshot seq 2", m)
	}
	readEvents(t, c, 1, 2)
	pub.publish(1)
	readEvents(t, live, 3, 3)
	readEvents(t, c, 3, 3)
}

// TestResumeBeyondHistory: events older than what JetStream retains are
// announced as truncated, then the rest follows.
func TestResumeBeyondHistory(t *testing.T) {
	n := testenv.NATS(t)
	in := startServer(t, n.URL(), nil)
	js := natsJS(t, n)
	pub := newPublisher(t, js, "old_item")
	pub.publish(20)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, stream.Name)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Purge(ctx, jetstream.WithPurgeSubject(stream.Subject("old_item")), jetstream.WithPurgeKeep(5)); err != nil {
		t.Fatalf("purge: %v", err)
	}
	c := dial(t, in.addr, "item_id=old_item&since_seq=3")
	if m := read(t, c); m.Type != "snapshot" || m.Seq != 20 {
		t.Fatalf("first message = %+v, want snapshot seq 20", m)
	}
	if m := read(t, c); m.Type != websocket.TypeHistoryTruncated || m.FirstSeq != 16 {
		t.Fatalf("second message = %+v, want history_truncated with first_seq 16", m)
	}
	readEvents(t, c, 16, 20)
}

// TestSlowViewerIsCut: one viewer that never reads among 100 that do. It is
// disconnected with CloseSlowViewer, the others get everything, and the
// server's queue for it never grows past its bound.
func TestSlowViewerIsCut(t *testing.T) {
	const fast, queue, batch = 100, 32, 20
	n := testenv.NATS(t)
	in := startServer(t, n.URL(), func(c *app.Config) {
		c.SendQueueSize = queue
		c.SocketSendBuffer = 8192
	})
	pub := newPublisher(t, natsJS(t, n), "slow_item")

	// A tiny receive buffer makes the kernel hold little on the slow side,
	// so the service's queue, not the socket, absorbs the backlog.
	d := gws.Dialer{NetDialContext: (&net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		return errors.Join(err, serr)
	}}).DialContext}
	slow, resp, err := d.Dial("ws://"+in.addr+"/ws?item_id=slow_item", nil)
	if err != nil {
		t.Fatalf("dial slow viewer: %v", err)
	}
	resp.Body.Close()
	defer slow.Close()

	type progress struct {
		mu   sync.Mutex
		seq  uint64
		errs error
	}
	got := make([]*progress, fast)
	var wg sync.WaitGroup
	for i := range fast {
		p := &progress{}
		got[i] = p
		c := dial(t, in.addr, "item_id=slow_item")
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				m, err := readErr(c, 60*time.Second)
				if err != nil {
					return // closed at test end
				}
				if m.Type != "bid" {
					continue
				}
				p.mu.Lock()
				if m.Seq != p.seq+1 && p.errs == nil {
					p.errs = fmt.Errorf("fast viewer got seq %d after %d", m.Seq, p.seq)
				}
				p.seq = m.Seq
				p.mu.Unlock()
			}
		}()
	}
	testenv.WaitFor(t, 30*time.Second, "viewers joined", func() error { return in.metricIs(t, "broadcast_connections", fast+1) })

	caughtUp := func() error {
		for i, p := range got {
			p.mu.Lock()
			s := p.seq
			p.mu.Unlock()
			if s < pub.seq {
				return fmt.Errorf("viewer %d at seq %d of %d", i, s, pub.seq)
			}
		}
		return nil
	}
	// Publish in batches the fast viewers absorb with room to spare, so
	// only the viewer that never reads can fill its queue.
	publishPaced := func(n int) {
		for n > 0 {
			k := min(n, batch)
			pub.publish(k)
			n -= k
			testenv.WaitFor(t, 30*time.Second, "fast viewers caught up", caughtUp)
		}
	}

	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for batches := 0; in.metric(t, "broadcast_slow_viewers_dropped_total") == 0; batches++ {
		if batches > 500 {
			t.Fatalf("slow viewer still connected after %d events", pub.seq)
		}
		publishPaced(batch)
	}
	// Keep publishing: the backlog of a cut viewer must not live on.
	publishPaced(200)
	for _, p := range got {
		if p.errs != nil {
			t.Fatal(p.errs)
		}
	}
	if n := in.metric(t, "broadcast_slow_viewers_dropped_total"); n != 1 {
		t.Errorf("slow viewers dropped = %v, want exactly 1 (fast ones must not be cut)", n)
	}
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	// Everything published stays far below this; a backlog kept per event for
	// the cut viewer would be the only way to approach it.
	if grow := int64(after.HeapAlloc) - int64(before.HeapAlloc); grow > 64<<20 {
		t.Errorf("heap grew by %d bytes while a viewer was stuck", grow)
	}

	// Now the slow viewer reads: it finds what the socket held, then the
	// close frame with the slow-viewer code.
	var closeErr *gws.CloseError
	for {
		_, _, err := slow.ReadMessage()
		if err == nil {
			continue
		}
		if !errors.As(err, &closeErr) {
			t.Fatalf("slow viewer's connection ended with %v, want close code %d", err, websocket.CloseSlowViewer)
		}
		break
	}
	if closeErr.Code != websocket.CloseSlowViewer {
		t.Errorf("close code = %d, want %d", closeErr.Code, websocket.CloseSlowViewer)
	}
}

// TestNATSRestart: viewers stay connected while NATS restarts, and get the
// events published while the service was still reconnecting.
func TestNATSRestart(t *testing.T) {
	n := testenv.NATS(t)
	// The service waits longer to reconnect than the test's publisher, so
	// the events below are published while it is away and only JetStream
	// has them.
	in := startServer(t, n.URL(), func(c *app.Config) { c.ReconnectWait = 1500 * time.Millisecond })
	js := natsJS(t, n)
	pub := newPublisher(t, js, "restart_item")
	viewers := []*gws.Conn{dial(t, in.addr, "item_id=restart_item"), dial(t, in.addr, "item_id=restart_item")}
	for _, c := range viewers {
		read(t, c)
	}
	pub.publish(5)
	for _, c := range viewers {
		readEvents(t, c, 1, 5)
	}

	n.Restart()
	// Published before the service has resubscribed: only JetStream has them.
	pub.publish(10)
	testenv.WaitFor(t, 30*time.Second, "service ready again", func() error { return in.readyIs(http.StatusOK) })
	for _, c := range viewers {
		readEvents(t, c, 6, 15)
	}
	if got := in.metric(t, "broadcast_events_recovered_total"); got < 10 {
		t.Errorf("events recovered from JetStream = %v, want at least the 10 published during the outage", got)
	}
	pub.publish(5)
	for _, c := range viewers {
		readEvents(t, c, 16, 20)
	}
}

// TestTwoInstances: each instance delivers every event to its own viewers.
func TestTwoInstances(t *testing.T) {
	n := testenv.NATS(t)
	a := startServer(t, n.URL(), nil)
	b := startServer(t, n.URL(), nil)
	pub := newPublisher(t, natsJS(t, n), "shared_item")
	var conns []*gws.Conn
	for _, in := range []*instance{a, b, a, b} {
		c := dial(t, in.addr, "item_id=shared_item")
		read(t, c)
		conns = append(conns, c)
	}
	// Viewer counts add up across instances.
	for i, c := range conns {
		for {
			m := read(t, c)
			if m.Type != "viewers" {
				t.Fatalf("viewer %d got %+v before any event was published", i, m)
			}
			if m.Count == len(conns) {
				break
			}
		}
	}
	pub.publish(30)
	for _, c := range conns {
		readEvents(t, c, 1, 30)
	}
	for _, in := range []*instance{a, b} {
		if got := in.metric(t, "broadcast_item_subscriptions"); got != 1 {
			t.Errorf("instance %s holds %v subscriptions, want 1", in.addr, got)
		}
	}
}

func TestLimitsAndOrigins(t *testing.T) {
	n := testenv.NATS(t)
	in := startServer(t, n.URL(), func(c *app.Config) {
		c.MaxConnections = 2
		c.AllowedOrigins = []string{"http://pages.example"}
	})
	for _, tc := range []struct {
		name, origin string
		ok           bool
	}{
		{"allowed origin", "http://pages.example", true},
		{"own host", "http://" + in.addr, true},
		{"other origin", "http://evil.example", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := dialErr(in.addr, "item_id=limit_item", http.Header{"Origin": {tc.origin}})
			if (err == nil) != tc.ok {
				t.Fatalf("dial with Origin %s: err = %v, want ok=%v", tc.origin, err, tc.ok)
			}
			if c != nil {
				c.Close()
			}
		})
	}
	testenv.WaitFor(t, 10*time.Second, "connections closed", func() error { return in.metricIs(t, "broadcast_connections", 0) })
	a := dial(t, in.addr, "item_id=limit_item")
	b := dial(t, in.addr, "item_id=limit_item")
	read(t, a)
	read(t, b)
	if _, err := dialErr(in.addr, "item_id=limit_item", nil); !errors.Is(err, gws.ErrBadHandshake) {
		t.Fatalf("third viewer with MAX_CONNECTIONS=2: err = %v, want a refused handshake", err)
	}
	if _, err := dialErr(in.addr, "item_id=bad.item", nil); !errors.Is(err, gws.ErrBadHandshake) {
		t.Fatalf("invalid item id: err = %v, want a refused handshake", err)
	}
}

// TestOutOfOrderAndMissingEvents: events that arrive out of order are put
// back in order from JetStream, and an event that never appears is announced
// as missed instead of stalling the item forever.
func TestOutOfOrderAndMissingEvents(t *testing.T) {
	n := testenv.NATS(t)
	// Short, so the seq that never comes is given up on quickly.
	in := startServer(t, n.URL(), func(c *app.Config) { c.GapTimeout = 500 * time.Millisecond })
	pub := newPublisher(t, natsJS(t, n), "gap_item")
	c := dial(t, in.addr, "item_id=gap_item")
	read(t, c)

	first, second, third := pub.event(), pub.event(), pub.event()
	pub.send(first)
	pub.send(third) // seq 3 before 2, as two gateways racing could publish
	pub.send(second)
	readEvents(t, c, 1, 3)

	pub.event() // seq 4 is never published
	pub.send(pub.event())
	for {
		m := read(t, c)
		if m.Type == "viewers" {
			continue
		}
		if m.Type != websocket.TypeMissed {
			t.Fatalf("got %+v, want a missed message for seq 4", m)
		}
		break
	}
	readEvents(t, c, 5, 5)
	pub.publish(1)
	readEvents(t, c, 6, 6)
}

// TestEventRelayedLate: an event whose gateway died before publishing it
// reaches JetStream through another gateway's outbox relay, after the
// events behind it, as late as the relay's age and period allow (2 s and
// 1 s). Viewers must get it in its place, not be told it was missed.
func TestEventRelayedLate(t *testing.T) {
	n := testenv.NATS(t)
	in := startServer(t, n.URL(), nil)
	pub := newPublisher(t, natsJS(t, n), "relay_item")
	c := dial(t, in.addr, "item_id=relay_item")
	read(t, c)

	first, late, third := pub.event(), pub.event(), pub.event()
	pub.send(first)
	pub.send(third)
	relayed := make(chan error, 1)
	go func() {
		time.Sleep(3500 * time.Millisecond) // the relay's worst case, and the publish
		relayed <- pub.sendErr(late)
	}()
	readEvents(t, c, 1, 3)
	if err := <-relayed; err != nil {
		t.Fatal(err)
	}
}

// TestViewersJoinWhileAHoleIsOpen: while an item's live events wait for a
// missing seq, viewers can still join it and get the state so far, and
// everyone gets the rest in order once the hole fills.
func TestViewersJoinWhileAHoleIsOpen(t *testing.T) {
	n := testenv.NATS(t)
	// Long enough that only the missing event can end the wait.
	in := startServer(t, n.URL(), func(c *app.Config) { c.GapTimeout = time.Minute })
	pub := newPublisher(t, natsJS(t, n), "hole_item")
	early := dial(t, in.addr, "item_id=hole_item")
	read(t, early)

	first, second, third := pub.event(), pub.event(), pub.event()
	pub.send(first)
	readEvents(t, early, 1, 1)
	pub.send(third)
	testenv.WaitFor(t, 10*time.Second, "the hole at seq 2", func() error { return in.metricIs(t, "broadcast_holes_open", 1) })
	late := dial(t, in.addr, "item_id=hole_item")
	if m := read(t, late); m.Type != "snapshot" || m.Seq != 1 {
		t.Fatalf("joining during the hole: first message %+v, want a snapshot at seq 1", m)
	}
	pub.send(second)
	readEvents(t, early, 2, 3)
	readEvents(t, late, 2, 3)
	if got := in.metric(t, "broadcast_holes_open"); got != 0 {
		t.Errorf("broadcast_holes_open = %v after the hole filled, want 0", got)
	}
}

// TestKeepAlive: the service answers pings, pings viewers, and reaps a
// viewer that stops answering.
func TestKeepAlive(t *testing.T) {
	n := testenv.NATS(t)
	in := startServer(t, n.URL(), func(c *app.Config) {
		c.PingInterval = 50 * time.Millisecond
		c.PongTimeout = 300 * time.Millisecond
	})
	live := dial(t, in.addr, "item_id=ping_item")
	pinged := make(chan struct{}, 1)
	live.SetPingHandler(func(data string) error {
		select {
		case pinged <- struct{}{}:
		default:
		}
		return live.WriteControl(gws.PongMessage, []byte(data), time.Now().Add(time.Second))
	})
	ponged := make(chan string, 1)
	live.SetPongHandler(func(data string) error {
		select {
		case ponged <- data:
		default:
		}
		return nil
	})
	if err := live.WriteControl(gws.PingMessage, []byte("hello"), time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	readDone := make(chan error, 1)
	go func() {
		for {
			if _, _, err := live.ReadMessage(); err != nil {
				readDone <- err
				return
			}
		}
	}()
	select {
	case got := <-ponged:
		if got != "hello" {
			t.Errorf("pong payload = %q, want hello", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no pong for the viewer's ping")
	}
	select {
	case <-pinged:
	case <-time.After(10 * time.Second):
		t.Fatal("the service never pinged")
	}

	// A viewer that never answers pings is reaped.
	silent := dial(t, in.addr, "item_id=ping_item")
	silent.SetPingHandler(func(string) error { return nil })
	if err := silent.SetReadDeadline(time.Now().Add(30 * time.Second)); err != nil {
		t.Fatal(err)
	}
	for {
		_, _, err := silent.ReadMessage()
		if err == nil {
			continue
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatal("a viewer that never answers pings was not disconnected")
		}
		break
	}
	testenv.WaitFor(t, 10*time.Second, "silent viewer gone", func() error { return in.metricIs(t, "broadcast_connections", 1) })
	select {
	case err := <-readDone:
		t.Fatalf("the answering viewer was dropped too: %v", err)
	default:
	}
}

// TestNATSDownNewViewer: while NATS is down a new viewer of an item nobody
// watches is told to retry (close code CloseUnavailable) and /ready says
// 503; once NATS is back, viewers are served again.
func TestNATSDownNewViewer(t *testing.T) {
	n := testenv.NATS(t)
	in := startServer(t, n.URL(), nil)
	n.Stop()
	testenv.WaitFor(t, 10*time.Second, "/ready to fail", func() error { return in.readyIs(http.StatusServiceUnavailable) })
	c := dial(t, in.addr, "item_id=down_item")
	var closeErr *gws.CloseError
	for {
		_, _, err := c.ReadMessage()
		if err == nil {
			continue
		}
		if !errors.As(err, &closeErr) || closeErr.Code != websocket.CloseUnavailable {
			t.Fatalf("viewer joining while NATS is down: %v, want close code %d", err, websocket.CloseUnavailable)
		}
		break
	}
	n.Start()
	testenv.WaitFor(t, 30*time.Second, "/ready to pass", func() error { return in.readyIs(http.StatusOK) })
	c = dial(t, in.addr, "item_id=down_item")
	if m := read(t, c); m.Type != "snapshot" {
		t.Fatalf("after NATS is back the first message is %+v, want a snapshot", m)
	}
}

// An auction_cancelled event reaches viewers like a close, without the
// reserve it carries for the archive, and later viewers' snapshots say
// cancelled.
func TestCancelledAuctionReachesViewers(t *testing.T) {
	n := testenv.NATS(t)
	in := startServer(t, n.URL(), nil)
	pub := newPublisher(t, natsJS(t, n), "cancel_item")
	pub.publish(1)
	c := dial(t, in.addr, "item_id=cancel_item")
	if m := read(t, c); m.Type != "snapshot" || m.Seq != 1 {
		t.Fatalf("first message = %+v, want the snapshot at seq 1", m)
	}
	starts := time.Now().Add(-time.Hour).UTC()
	pub.seq++
	pub.send(models.Event{Type: models.EventAuctionCancelled, EventID: models.NewEventID(), ItemID: "cancel_item", UserID: "admin_1",
		Amount: pub.lastAmount() - 100, Seq: pub.seq, Timestamp: time.Now().UTC(), BidCount: 1,
		Name: "Lot", StartingPrice: 100, MinIncrement: 100, ReservePrice: 987654, StartsAt: &starts, SellerID: "seller_1"})
	rawType := func(c *gws.Conn) (string, string) {
		t.Helper()
		for {
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			_, data, err := c.ReadMessage()
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			var m struct{ Type, Status string }
			if err := json.Unmarshal(data, &m); err != nil {
				t.Fatal(err)
			}
			if m.Type != "viewers" {
				return m.Type, string(data)
			}
		}
	}
	typ, data := rawType(c)
	if typ != models.EventAuctionCancelled || strings.Contains(data, "reserve_price") || strings.Contains(data, "9876.54") ||
		!strings.Contains(data, `"seller_id":"seller_1"`) {
		t.Errorf("viewer got %s, want the auction_cancelled event without its reserve", data)
	}
	later := dial(t, in.addr, "item_id=cancel_item")
	if typ, data := rawType(later); typ != "snapshot" || !strings.Contains(data, `"status":"cancelled"`) {
		t.Errorf("later viewer's first message = %s, want a snapshot with status cancelled", data)
	}
}
