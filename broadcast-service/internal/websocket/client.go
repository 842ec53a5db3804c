package websocket

import (
	"context"
	"net"
	"sync"
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
	closeGoingAway   = websocket.CloseGoingAway
)

// closeGrace bounds the close handshake with a viewer that is going away.
const closeGrace = 2 * time.Second

// client is one viewer connection: the HTTP handler's goroutine reads, one
// writer goroutine writes whatever the hub queued.
type client struct {
	conn *websocket.Conn
	hub  *Hub
	send chan *outMsg
	// pong carries the payload of the viewer's latest ping to the writer,
	// which alone writes to the connection; one pending pong is enough
	// (RFC 6455 5.5.3).
	pong    chan string
	done    chan struct{}
	stopped sync.Once
	code    int
	text    string

	// Guarded by the feed's lock.
	catching bool      // replaying history; live events wait in backlog
	backlog  []*outMsg // bounded by the queue size
	minSeq   uint64    // events at or below this seq are not sent
}

func newClient(h *Hub, conn *websocket.Conn) *client {
	return &client{conn: conn, hub: h, send: make(chan *outMsg, h.cfg.SendQueueSize), pong: make(chan string, 1), done: make(chan struct{})}
}

// push queues m without ever blocking the hub; a viewer whose queue is full
// is disconnected as slow. Caller holds the feed's lock.
func (c *client) push(m *outMsg) {
	if m.seq != 0 && m.seq <= c.minSeq {
		return
	}
	select {
	case <-c.done:
		return
	default:
	}
	if c.catching {
		if len(c.backlog) >= cap(c.send) {
			c.slow()
			return
		}
		c.backlog = append(c.backlog, m)
		return
	}
	select {
	case c.send <- m:
	default:
		c.slow()
	}
}

// enqueue queues m, waiting for room; only a joining viewer's own replay uses
// it, before the viewer receives live events.
func (c *client) enqueue(ctx context.Context, m *outMsg) error {
	select {
	case c.send <- m:
		return nil
	case <-c.done:
		return context.Canceled
	case <-ctx.Done():
		return ctx.Err()
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
		close(c.done)
	})
	return first
}

// writeLoop writes queued messages and pings until the client stops.
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
			if c.code != 0 {
				msg := websocket.FormatCloseMessage(c.code, c.text)
				_ = c.conn.WriteControl(websocket.CloseMessage, msg, time.Now().Add(closeGrace))
			}
			return
		default:
		}
		select {
		case m := <-c.send:
			if err := c.write(m); err != nil {
				c.stop(0, "")
				return
			}
		case data := <-c.pong:
			if err := c.conn.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(cfg.WriteTimeout)); err != nil {
				c.stop(0, "")
				return
			}
		case <-ping.C:
			if err := c.conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(cfg.WriteTimeout)); err != nil {
				c.stop(0, "")
				return
			}
		case <-c.done:
		}
	}
}

// maxBatch bounds how many queued frames go out in one writev.
const maxBatch = 32

// write sends m and whatever else is queued already in one system call.
// Frames are written to the network connection directly: gorilla's own
// writes (ping, pong, close) happen on this goroutine too, so nothing
// interleaves.
func (c *client) write(m *outMsg) error {
	var msgs [maxBatch]*outMsg
	var bufs [maxBatch][]byte
	msgs[0], bufs[0] = m, m.frame
	n := 1
fill:
	for n < maxBatch {
		select {
		case m := <-c.send:
			msgs[n], bufs[n] = m, m.frame
			n++
		default:
			break fill
		}
	}
	nc := c.conn.NetConn()
	if err := nc.SetWriteDeadline(time.Now().Add(c.hub.cfg.WriteTimeout)); err != nil {
		return err
	}
	nb := net.Buffers(bufs[:n])
	if _, err := nb.WriteTo(nc); err != nil {
		return err
	}
	c.hub.metrics.delivered.Add(float64(n))
	now := time.Now()
	for _, m := range msgs[:n] {
		if !m.ts.IsZero() {
			c.hub.metrics.latency.Observe(now.Sub(m.ts).Seconds())
		}
	}
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
	// only writer.
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
