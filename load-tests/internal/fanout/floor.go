package fanout

import (
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"net"
	"net/http"
	"runtime"
	"slices"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/bidding-platform/shared/stream"
)

// Floor is the least a broadcast server can do on this machine: it relays
// NATS events to every viewer of the item with one write per viewer, the
// writes split over one goroutine per core; events that wait meanwhile go
// out together in the next write, as the service batches them. Nothing
// else: no
// catch-up, queues or keep-alive, and a viewer that stops reading stalls
// the others. Run against it, the
// load program measures what the kernel and the load program cost by
// themselves, so a service's latency can be read as a ratio to it.
// It serves /ws with the same handshake and /metrics with the process
// figures Run reads.
type Floor struct {
	nc      *nats.Conn
	sub     *nats.Subscription
	events  chan *nats.Msg
	done    chan struct{} // closed by Close: relay stops
	relayed chan struct{} // closed by relay when it stopped
	srv     *http.Server

	mu    sync.RWMutex
	items map[string][]net.Conn
}

// NewFloor subscribes to every item's events on natsURL; Serve then accepts
// viewers.
func NewFloor(natsURL string) (*Floor, error) {
	nc, err := nats.Connect(natsURL)
	if err != nil {
		return nil, err
	}
	f := &Floor{nc: nc, items: make(map[string][]net.Conn), events: make(chan *nats.Msg, 4096),
		done: make(chan struct{}), relayed: make(chan struct{})}
	if f.sub, err = nc.ChanSubscribe(stream.Subjects, f.events); err != nil {
		nc.Close()
		return nil, err
	}
	go f.relay()
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), collectors.NewGoCollector())
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /ws", f.join)
	f.srv = &http.Server{Handler: mux}
	return f, nil
}

// Serve accepts viewers on ln until Close.
func (f *Floor) Serve(ln net.Listener) error {
	if err := f.srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Close stops serving and closes every viewer.
func (f *Floor) Close() error {
	err := errors.Join(f.sub.Unsubscribe(), f.srv.Close())
	f.nc.Close()
	close(f.done)
	<-f.relayed
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, conns := range f.items {
		for _, c := range conns {
			c.Close()
		}
	}
	f.items = nil
	return err
}

func (f *Floor) join(w http.ResponseWriter, r *http.Request) {
	item, key := r.URL.Query().Get("item_id"), r.Header.Get("Sec-WebSocket-Key")
	if item == "" || key == "" {
		http.Error(w, "item_id and a WebSocket handshake required", http.StatusBadRequest)
		return
	}
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	sum := sha1.Sum([]byte(key + wsGUID))
	resp := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " +
		base64.StdEncoding.EncodeToString(sum[:]) + "\r\n\r\n"
	if _, err := conn.Write(append([]byte(resp), textFrame([]byte(`{"type":"snapshot","seq":0}`))...)); err != nil {
		conn.Close()
		return
	}
	f.mu.Lock()
	if f.items == nil {
		f.mu.Unlock()
		conn.Close()
		return
	}
	f.items[item] = append(f.items[item], conn)
	f.mu.Unlock()
	// The viewer sends nothing until it leaves; its close frame or EOF ends
	// the read and frees the connection.
	go func() {
		var buf [64]byte
		_, _ = conn.Read(buf[:])
		f.leave(item, conn)
	}()
}

func (f *Floor) leave(item string, conn net.Conn) {
	conn.Close()
	f.mu.Lock()
	defer f.mu.Unlock()
	// A copy, because relay may be iterating the old slice.
	conns := slices.DeleteFunc(slices.Clone(f.items[item]), func(c net.Conn) bool { return c == conn })
	if len(conns) == 0 {
		delete(f.items, item)
	} else {
		f.items[item] = conns
	}
}

// relay writes events to their item's viewers in the order NATS delivered
// them. A batch holds the events waiting for one item, up to 32, so a
// viewer gets them in one write.
func (f *Floor) relay() {
	defer close(f.relayed)
	var next *nats.Msg
	for {
		m := next
		if m == nil {
			select {
			case m = <-f.events:
			case <-f.done:
				return
			}
		}
		next = nil
		item := stream.ItemID(m.Subject)
		batch := textFrame(m.Data)
	more:
		for range 31 {
			select {
			case n := <-f.events:
				if stream.ItemID(n.Subject) != item {
					next = n
					break more
				}
				batch = append(batch, textFrame(n.Data)...)
			default:
				break more
			}
		}
		f.write(item, batch)
	}
}

func (f *Floor) write(item string, frames []byte) {
	f.mu.RLock()
	conns := f.items[item]
	f.mu.RUnlock()
	parts := min(runtime.GOMAXPROCS(0), len(conns))
	var wg sync.WaitGroup
	for p := range parts {
		wg.Go(func() {
			for _, c := range conns[p*len(conns)/parts : (p+1)*len(conns)/parts] {
				_, _ = c.Write(frames)
			}
		})
	}
	wg.Wait()
}

// textFrame is an unmasked, unfragmented WebSocket text frame (RFC 6455 5.2),
// as a server sends it.
func textFrame(payload []byte) []byte {
	n := len(payload)
	var f []byte
	switch {
	case n < 126:
		f = []byte{0x81, byte(n)}
	case n <= 0xffff:
		f = []byte{0x81, 126, 0, 0}
		binary.BigEndian.PutUint16(f[2:], uint16(n))
	default:
		f = []byte{0x81, 127, 0, 0, 0, 0, 0, 0, 0, 0}
		binary.BigEndian.PutUint64(f[2:], uint64(n))
	}
	return append(f, payload...)
}
