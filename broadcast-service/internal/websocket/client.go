package websocket

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
)

// Close codes sent to viewers. 4000-4999 are for applications (RFC 6455
// section 7.4.2); pages reconnect with since_seq after any of them.
const (
	// CloseSlowViewer: the viewer's queue filled up because it did not read
	// fast enough.
	CloseSlowViewer = 4008
	// CloseUnavailable: the item's events could not be read (NATS down).
	CloseUnavailable = 4011
	// CloseTryAgain: too many viewers were catching up with since_seq to
	// start this one's replay; nothing was sent, so reconnecting later with
	// the same since_seq loses nothing.
	CloseTryAgain  = 4013
	closeGoingAway = websocket.CloseGoingAway
)

// closeGrace bounds the close handshake with a viewer that is going away.
const closeGrace = 2 * time.Second

// client is one viewer connection: the HTTP handler's goroutine reads, and
// frames reach the socket one of two ways. While the viewer keeps up, the
// fan-out writes each frame itself with a non-blocking write, which costs one
// system call and wakes no goroutine. When the socket is full, or frames are
// already waiting, they go to a bounded queue that the viewer's writer
// goroutine drains with blocking, deadline-bound writes. Only one of the two
// owns the socket at a time (mu, writing), so frames never interleave or
// overtake each other.
type client struct {
	conn *websocket.Conn
	// raw is the socket for the fan-out's direct writes; nil when the
	// connection is not a plain socket, and then every frame is queued.
	raw syscall.RawConn
	hub *Hub
	// wake tells the writer that q has frames; one pending signal covers
	// any number of them, so it holds one.
	wake chan struct{}
	// pong carries the payload of the viewer's latest ping to the writer,
	// which alone writes control frames; one pending pong is enough
	// (RFC 6455 5.5.3).
	pong    chan string
	done    chan struct{}
	closed  atomic.Bool // done is closed; cheaper to test per event than the channel
	stopped sync.Once
	code    int
	text    string

	mu sync.Mutex
	q  []*outMsg // frames for the writer, at most SendQueueSize
	// writing: the writer goroutine owns the socket (it is writing frames
	// taken off q, or a control frame), so the fan-out must queue.
	writing bool
	// room is made by a replay waiting for space in q; the writer signals
	// it whenever it takes frames off q.
	room chan struct{}

	// Guarded by the feed's lock.
	catching bool      // replaying history; live events wait in backlog
	backlog  []*outMsg // bounded by the queue size
	minSeq   uint64    // events at or below this seq are not sent
	idx      int       // position in the feed's list
}

func newClient(h *Hub, conn *websocket.Conn) *client {
	c := &client{conn: conn, hub: h, wake: make(chan struct{}, 1), pong: make(chan string, 1), done: make(chan struct{})}
	if sc, ok := conn.NetConn().(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			c.raw = raw
		}
	}
	return c
}

// push sends ms in order, or queues them, without ever blocking the hub; a
// viewer whose queue would overflow is disconnected as slow. joined is the
// frames of ms back to back (nil: not made yet), so the fan-out builds it
// once for all viewers. ms is shared with other viewers and is not
// modified. Caller holds the feed's lock, and s belongs to the caller's
// goroutine.
func (c *client) push(ms []*outMsg, joined []byte, s *sender) {
	if c.closed.Load() {
		return
	}
	if c.minSeq != 0 {
		var kept []*outMsg
		for _, m := range ms {
			if m.seq == 0 || m.seq > c.minSeq {
				kept = append(kept, m)
			}
		}
		if len(kept) < len(ms) {
			ms, joined = kept, nil
		}
		if len(ms) == 0 {
			return
		}
	}
	limit := c.hub.cfg.SendQueueSize
	if c.catching {
		if len(c.backlog)+len(ms) > limit {
			c.slow()
			return
		}
		c.backlog = append(c.backlog, ms...)
		return
	}
	c.mu.Lock()
	if !c.writing && len(c.q) == 0 && c.raw != nil {
		if joined == nil {
			joined = joinFrames(ms)
		}
		n, err := s.write(c.raw, joined)
		if err != nil && !errors.Is(err, syscall.EAGAIN) {
			c.mu.Unlock()
			c.stop(0, "") // the connection is gone; the reader ends too
			return
		}
		for len(ms) > 0 && n >= len(ms[0].frame) {
			n -= len(ms[0].frame)
			s.sent(ms[0])
			ms = ms[1:]
		}
		if len(ms) == 0 {
			c.mu.Unlock()
			return
		}
		if n > 0 {
			// The socket took part of a frame: the rest must go
			// before anything else, the close frame included.
			m := ms[0]
			ms = append([]*outMsg{{frame: m.frame[n:], seq: m.seq, ts: m.ts, rest: true}}, ms[1:]...)
		}
	}
	if len(c.q)+len(ms) > limit {
		if ms[0].rest {
			c.q = append(c.q, ms[0]) // completed before the close frame
		}
		c.mu.Unlock()
		c.slow()
		return
	}
	c.q = append(c.q, ms...)
	c.mu.Unlock()
	c.signal()
}

// joinFrames puts the frames of ms back to back, for one write.
func joinFrames(ms []*outMsg) []byte {
	if len(ms) == 1 {
		return ms[0].frame
	}
	n := 0
	for _, m := range ms {
		n += len(m.frame)
	}
	b := make([]byte, 0, n)
	for _, m := range ms {
		b = append(b, m.frame...)
	}
	return b
}

func (c *client) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// enqueue queues m, waiting for room; only a joining viewer's own replay uses
// it, before the viewer receives live events.
func (c *client) enqueue(ctx context.Context, m *outMsg) error {
	for {
		c.mu.Lock()
		if len(c.q) < c.hub.cfg.SendQueueSize {
			c.q = append(c.q, m)
			c.mu.Unlock()
			c.signal()
			return nil
		}
		if c.room == nil {
			c.room = make(chan struct{}, 1)
		}
		room := c.room
		c.mu.Unlock()
		select {
		case <-room:
		case <-c.done:
			return context.Canceled
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (c *client) slow() {
	if c.stop(CloseSlowViewer, "slow viewer: send queue full") {
		c.hub.metrics.slow.Inc()
	}
}

// stop ends the connection once, sending code (0: none) to the viewer.
func (c *client) stop(code int, text string) bool {
	first := false
	c.stopped.Do(func() {
		first = true
		c.code, c.text = code, text
		c.closed.Store(true)
		close(c.done)
	})
	return first
}

// writeLoop writes queued frames, pongs and pings until the client stops.
func (c *client) writeLoop() {
	cfg := &c.hub.cfg
	ping := time.NewTicker(cfg.PingInterval)
	defer func() {
		ping.Stop()
		// Let the reader end: after the close frame the viewer has
		// closeGrace to answer, and a vanished one is not waited for.
		_ = c.conn.SetReadDeadline(time.Now().Add(closeGrace))
	}()
	for {
		select {
		case <-c.done:
			c.closeFrame()
			return
		default:
		}
		var err error
		select {
		case <-c.wake:
			err = c.flush(false)
		case data := <-c.pong:
			err = c.control(websocket.PongMessage, []byte(data))
		case <-ping.C:
			err = c.control(websocket.PingMessage, nil)
		case <-c.done:
		}
		if err != nil {
			c.stop(0, "")
			return
		}
	}
}

// closeFrame takes the socket for good and sends the close code, if any.
func (c *client) closeFrame() {
	c.mu.Lock()
	c.writing = true // the fan-out no longer writes; pushes see done
	q := c.q
	c.q = nil
	c.mu.Unlock()
	if c.code == 0 {
		return
	}
	deadline := time.Now().Add(closeGrace)
	if len(q) > 0 && q[0].rest {
		// A frame cut short must be completed, or the close frame would
		// land inside it.
		if err := c.writeFrames(q[:1], deadline); err != nil {
			return
		}
	}
	msg := websocket.FormatCloseMessage(c.code, c.text)
	_ = c.conn.WriteControl(websocket.CloseMessage, msg, deadline)
}

// control writes a ping or pong frame after whatever is queued, so it cannot
// land inside an event frame the fan-out only partly wrote.
func (c *client) control(messageType int, data []byte) error {
	if err := c.flush(true); err != nil {
		return err
	}
	if err := c.conn.WriteControl(messageType, data, time.Now().Add(c.hub.cfg.WriteTimeout)); err != nil {
		return err
	}
	return c.flush(false)
}

// flush writes queued frames until none are left, then hands the socket back
// to the fan-out, or, with hold, keeps it for a control frame.
func (c *client) flush(hold bool) error {
	c.mu.Lock()
	c.writing = true
	for len(c.q) > 0 {
		batch := c.q
		c.q = nil
		if c.room != nil {
			select {
			case c.room <- struct{}{}:
			default:
			}
		}
		c.mu.Unlock()
		err := c.writeFrames(batch, time.Now().Add(c.hub.cfg.WriteTimeout))
		c.mu.Lock()
		if err != nil {
			c.mu.Unlock()
			return err
		}
	}
	c.writing = hold
	c.mu.Unlock()
	return nil
}

// maxBatch bounds how many frames go out in one writev.
const maxBatch = 64

// writeFrames writes msgs with as few system calls as the socket allows,
// blocking until deadline. Frames are written to the network connection
// directly: gorilla's own writes (ping, pong, close) happen on this
// goroutine too, so nothing interleaves.
func (c *client) writeFrames(msgs []*outMsg, deadline time.Time) error {
	nc := c.conn.NetConn()
	if err := nc.SetWriteDeadline(deadline); err != nil {
		return err
	}
	var lat latencyBatch
	for len(msgs) > 0 {
		k := min(len(msgs), maxBatch)
		var bufs [maxBatch][]byte
		for i, m := range msgs[:k] {
			bufs[i] = m.frame
		}
		nb := net.Buffers(bufs[:k])
		if _, err := nb.WriteTo(nc); err != nil {
			return err
		}
		now := time.Now()
		for _, m := range msgs[:k] {
			if !m.ts.IsZero() {
				lat.observe(now.Sub(m.ts))
			}
		}
		c.hub.metrics.delivered.Add(float64(k))
		msgs = msgs[k:]
	}
	c.hub.metrics.latency.add(&lat)
	return nil
}

// readLoop discards what the viewer sends and keeps the read deadline moving
// with its pongs; it returns when the connection ends.
func (c *client) readLoop() {
	pong := c.hub.cfg.PongTimeout
	c.conn.SetReadLimit(512)
	_ = c.conn.SetReadDeadline(time.Now().Add(pong))
	// gorilla answers pings and close frames from the reading goroutine by
	// default; both are handed to the writer instead, the connection's
	// only writer besides the fan-out.
	c.conn.SetPingHandler(func(data string) error {
		select {
		case c.pong <- data:
		default:
		}
		return nil
	})
	c.conn.SetCloseHandler(func(code int, _ string) error {
		c.stop(websocket.CloseNormalClosure, "")
		return nil
	})
	c.conn.SetPongHandler(func(string) error {
		select {
		case <-c.done:
			return nil // closing: keep the close grace deadline
		default:
		}
		return c.conn.SetReadDeadline(time.Now().Add(pong))
	})
	for {
		if _, _, err := c.conn.NextReader(); err != nil {
			return
		}
	}
}
