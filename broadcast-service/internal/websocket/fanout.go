package websocket

import (
	"runtime"
	"sync"
	"syscall"
	"time"
)

// sender is one goroutine's means of writing to viewers directly. Its write
// callback is bound once, so a direct write allocates nothing, and what it
// delivered is counted locally and published once per fan-out.
type sender struct {
	frame     []byte
	n         int
	err       error
	fn        func(fd uintptr) bool
	delivered int
	lat       latencyBatch
}

func newSender() *sender {
	s := &sender{}
	s.fn = s.writeFD
	return s
}

// write writes frame to the socket without waiting: it returns how much the
// socket took, and syscall.EAGAIN when it took nothing.
func (s *sender) write(raw syscall.RawConn, frame []byte) (int, error) {
	s.frame, s.n, s.err = frame, 0, nil
	if err := raw.Write(s.fn); err != nil {
		return 0, err
	}
	s.frame = nil
	return s.n, s.err
}

// writeFD always returns true: returning false would make RawConn.Write park
// the fan-out until the socket is writable, and a full socket is the
// writer goroutine's business.
func (s *sender) writeFD(fd uintptr) bool {
	for {
		n, err := syscall.Write(int(fd), s.frame)
		if err == syscall.EINTR {
			continue
		}
		s.n, s.err = max(n, 0), err
		return true
	}
}

func (s *sender) sent(m *outMsg) {
	s.delivered++
	if !m.ts.IsZero() {
		s.lat.observe(time.Since(m.ts))
	}
}

// publish moves the sender's counts into the hub's metrics.
func (s *sender) publish(m *Metrics) {
	if s.delivered > 0 {
		m.delivered.Add(float64(s.delivered))
		s.delivered = 0
	}
	m.latency.add(&s.lat)
}

// minPerSender is the fewest viewers worth a goroutine of their own: fewer
// writes than this take less time than starting and waiting for it.
const minPerSender = 256

// sender returns the feed's first sender, for pushes to single viewers.
// Caller holds f.mu.
func (f *feed) sender() *sender {
	if len(f.senders) == 0 {
		f.senders = append(f.senders, newSender())
	}
	return f.senders[0]
}

// queue adds m to what the next flush sends to every viewer of f. Caller
// holds f.mu.
func (h *Hub) queue(f *feed, m *outMsg) {
	f.out = append(f.out, m)
}

// flush sends the queued messages to every viewer of f. Caller holds f.mu.
func (h *Hub) flush(f *feed) {
	if len(f.out) == 0 {
		return
	}
	h.fanout(f, f.out)
	clear(f.out)
	f.out = f.out[:0]
}

// fanout sends ms to every viewer of f. Most of its cost is one system call
// per viewer, so a large audience is split over GOMAXPROCS goroutines to
// make every core write. Each viewer is in exactly one part, so its frames
// still go out one batch after the other. Caller holds f.mu.
func (h *Hub) fanout(f *feed, ms []*outMsg) {
	joined := joinFrames(ms)
	n := len(f.clients)
	parts := max(1, min(runtime.GOMAXPROCS(0), n/minPerSender))
	f.sender()
	for len(f.senders) < parts {
		f.senders = append(f.senders, newSender())
	}
	size := (n + parts - 1) / parts
	var wg sync.WaitGroup
	for p := 1; p < parts; p++ {
		part, s := f.clients[p*size:min(n, (p+1)*size)], f.senders[p]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, c := range part {
				c.push(ms, joined, s)
			}
		}()
	}
	s := f.senders[0]
	for _, c := range f.clients[:min(n, size)] {
		c.push(ms, joined, s)
	}
	wg.Wait()
	for _, s := range f.senders[:parts] {
		s.publish(h.metrics)
	}
}

// add makes c receive the feed's live events. Caller holds f.mu.
func (f *feed) add(c *client) {
	c.idx = len(f.clients)
	f.clients = append(f.clients, c)
}

// remove stops the feed's events to c. Caller holds f.mu.
func (f *feed) remove(c *client) {
	i := c.idx
	if i >= len(f.clients) || f.clients[i] != c {
		return
	}
	last := len(f.clients) - 1
	f.clients[i] = f.clients[last]
	f.clients[i].idx = i
	f.clients[last] = nil
	f.clients = f.clients[:last]
	if cap(f.clients) > 64 && len(f.clients) < cap(f.clients)/4 {
		// Give back the memory of an audience that has left.
		f.clients = append([]*client(nil), f.clients...)
	}
}
