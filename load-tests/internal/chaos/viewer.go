package chaos

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// viewer watches one item on one broadcast node, as the live page does:
// every event in seq order, and after a dropped connection (or a gap the
// node announced as missed) a new one with since_seq = the last seq it
// holds, which must bring what it missed.
type viewer struct {
	item string
	node *service

	mu     sync.Mutex
	conn   *websocket.Conn
	closed bool
	// last is the highest seq up to which the viewer holds every event;
	// events maps each seq it got to the event id.
	last   uint64
	events map[uint64]string
	// ready is when the current connection's snapshot arrived.
	ready    time.Time
	connects int
	missed   int
	problems []string
	// nproblems counts problems, kept or not.
	nproblems int
	done      chan struct{}
}

// viewerMessage holds the fields of every message type the suite reads.
type viewerMessage struct {
	Type     string `json:"type"`
	Seq      uint64 `json:"seq"`
	EventID  string `json:"event_id"`
	FromSeq  uint64 `json:"from_seq"`
	ToSeq    uint64 `json:"to_seq"`
	FirstSeq uint64 `json:"first_seq"`
}

func startViewer(item string, node *service) *viewer {
	v := &viewer{item: item, node: node, events: map[uint64]string{}, done: make(chan struct{})}
	go v.run()
	return v
}

var dialer = &websocket.Dialer{HandshakeTimeout: 5 * time.Second}

func (v *viewer) run() {
	defer close(v.done)
	const minWait, maxWait = 20 * time.Millisecond, 500 * time.Millisecond
	wait := minWait
	for {
		v.mu.Lock()
		closed, since := v.closed, v.last
		v.mu.Unlock()
		if closed {
			return
		}
		u := fmt.Sprintf("ws://%s/ws?item_id=%s&since_seq=%d", v.node.addr, url.QueryEscape(v.item), since)
		conn, _, err := dialer.Dial(u, nil)
		if err != nil {
			// The node is down or not ready yet: try again, as a page
			// does, backing off.
			time.Sleep(wait)
			wait = min(2*wait, maxWait)
			continue
		}
		v.mu.Lock()
		if v.closed {
			v.mu.Unlock()
			conn.Close()
			return
		}
		v.conn = conn
		v.connects++
		v.mu.Unlock()
		v.read(conn)
		conn.Close()
		v.mu.Lock()
		v.conn = nil
		v.ready = time.Time{}
		progress := v.last > since
		v.mu.Unlock()
		// A connection that brought nothing new (the node failing the
		// same way again) is retried with the same backoff.
		if progress {
			wait = minWait
		} else {
			time.Sleep(wait)
			wait = min(2*wait, maxWait)
		}
	}
}

// read handles one connection's messages until it drops or the viewer
// must reconnect to recover.
func (v *viewer) read(conn *websocket.Conn) {
	for {
		// The node pings every 25 s; silence for longer than this is a
		// dead connection.
		if err := conn.SetReadDeadline(time.Now().Add(2 * time.Minute)); err != nil {
			return
		}
		_, data, err := conn.ReadMessage()
		if err != nil {
			return
		}
		var m viewerMessage
		if err := json.Unmarshal(data, &m); err != nil {
			v.problem("undecodable message %q: %v", data, err)
			return
		}
		if !v.handle(m) {
			return
		}
	}
}

// handle applies one message and says whether to keep the connection.
func (v *viewer) handle(m viewerMessage) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	switch m.Type {
	case "snapshot":
		v.ready = time.Now()
	case "bid", "auction_closed":
		switch {
		case m.Seq == v.last+1:
			v.events[m.Seq] = m.EventID
			v.last++
		case m.Seq <= v.last:
			if v.events[m.Seq] != m.EventID {
				v.problemLocked("seq %d came as event %s after event %s", m.Seq, m.EventID, v.events[m.Seq])
			} else {
				v.problemLocked("seq %d (event %s) came twice", m.Seq, m.EventID)
			}
		default:
			// The node promises seq order; a skipped seq is not
			// announced. Reconnecting fetches it, so that the rest of
			// the run is still checked.
			v.problemLocked("seq %d came after %d, unannounced", m.Seq, v.last)
			return false
		}
	case "missed":
		// A hole the node gave up waiting for (GAP_TIMEOUT): the events
		// may be stored by now, and since_seq fetches them.
		v.missed++
		return false
	case "history_truncated":
		// The stream keeps an open item's every event, so this is never
		// true here. Reconnecting asks again.
		v.problemLocked("told after seq %d that history before seq %d is no longer retained", v.last, m.FirstSeq)
		return false
	}
	return true
}

func (v *viewer) problem(format string, args ...any) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.problemLocked(format, args...)
}

// maxViewerProblems keeps a viewer stuck on one failure from flooding the
// report with it.
const maxViewerProblems = 5

func (v *viewer) problemLocked(format string, args ...any) {
	v.nproblems++
	if v.nproblems <= maxViewerProblems {
		v.problems = append(v.problems, fmt.Sprintf("%s viewer of %s on %s: ", time.Now().Format("15:04:05.000"), v.item, v.node.name)+fmt.Sprintf(format, args...))
	}
}

// readySince says whether the viewer has a connection whose snapshot came
// after t.
func (v *viewer) readySince(t time.Time) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.ready.IsZero() || v.ready.Before(t) {
		return fmt.Errorf("viewer of %s on %s not connected since %s", v.item, v.node.name, t.Format(time.StampMilli))
	}
	return nil
}

func (v *viewer) lastSeq() uint64 {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.last
}

// stop closes the viewer and waits for it.
func (v *viewer) stop() {
	v.mu.Lock()
	v.closed = true
	if v.conn != nil {
		v.conn.Close()
	}
	v.mu.Unlock()
	<-v.done
}

// seen returns the event id the viewer got for seq.
func (v *viewer) seen(seq uint64) string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.events[seq]
}

func (v *viewer) String() string {
	return v.item + "@" + v.node.name + ":" + strconv.FormatUint(v.lastSeq(), 10)
}
