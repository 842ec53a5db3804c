package websocket

import (
	"context"
	"errors"
	"net/http"
	"net/netip"
	"strings"
	"time"
)

// Errors of admission and catch-up; the handler turns each into an answer
// the viewer can act on.
var (
	// ErrInstanceFull: MaxConnections viewers are connected to this instance.
	ErrInstanceFull = errors.New("too many viewers on this instance")
	// ErrAddrFull: the client's address has MaxConnsPerIP viewers open.
	ErrAddrFull = errors.New("too many connections from this address")
	// ErrReplayBusy: no catch-up slot came free within CatchupWait.
	ErrReplayBusy = errors.New("too many viewers catching up")
)

// Rejection reasons, the label values of broadcast_connections_rejected_total.
const (
	reasonInstanceFull = "max_connections"
	reasonAddrFull     = "per_ip"
)

// clientAddr is the address a viewer's connections are counted against:
// clientIP's, with IPv6 clients counted per /64, the block one subscriber
// is given, since a client can pick any address inside it.
func clientAddr(r *http.Request, trustXFF bool) string {
	if a, ok := clientIP(r, trustXFF); ok {
		return addrKey(a)
	}
	return r.RemoteAddr
}

// clientIP is the client's address: the TCP peer's, or with trustXFF the
// rightmost X-Forwarded-For entry. That is the one the load balancer
// appended; everything left of it came from the client, which can write
// any address it likes there.
func clientIP(r *http.Request, trustXFF bool) (netip.Addr, bool) {
	if trustXFF {
		if vs := r.Header.Values("X-Forwarded-For"); len(vs) > 0 {
			last := vs[len(vs)-1]
			if i := strings.LastIndexByte(last, ','); i >= 0 {
				last = last[i+1:]
			}
			if a, err := netip.ParseAddr(strings.TrimSpace(last)); err == nil {
				return a, true
			}
			// Not an address: no load balancer wrote this. Count the peer.
		}
	}
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		return ap.Addr(), true
	}
	return netip.Addr{}, false
}

func addrKey(a netip.Addr) string {
	a = a.Unmap().WithZone("")
	if a.Is6() {
		return netip.PrefixFrom(a, 64).Masked().String()
	}
	return a.String()
}

// admit counts a new viewer from addr against MaxConnections and
// MaxConnsPerIP; each nil answer must be paired with done(addr).
func (h *Hub) admit(addr string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return ErrClosed
	}
	if h.conns >= h.cfg.MaxConnections {
		h.metrics.rejected.WithLabelValues(reasonInstanceFull).Inc()
		return ErrInstanceFull
	}
	if max := h.cfg.MaxConnsPerIP; max > 0 {
		if h.perAddr[addr] >= max {
			h.metrics.rejected.WithLabelValues(reasonAddrFull).Inc()
			return ErrAddrFull
		}
		h.perAddr[addr]++
	}
	h.conns++
	h.clients.Add(1)
	return nil
}

func (h *Hub) done(addr string) {
	h.mu.Lock()
	h.conns--
	if h.cfg.MaxConnsPerIP > 0 {
		// Entries go with their last connection, so the map holds no more
		// addresses than there are viewers.
		if h.perAddr[addr]--; h.perAddr[addr] <= 0 {
			delete(h.perAddr, addr)
		}
	}
	h.mu.Unlock()
	h.clients.Done()
}

// replaySlot waits up to CatchupWait for one of the MaxCatchupReplays slots
// of since_seq replays, so that a crowd of pages reconnecting at once (an
// instance went away) reads JetStream a few at a time instead of all at
// once. The caller runs the replay, then calls release.
func (h *Hub) replaySlot(ctx context.Context) (release func(), err error) {
	select {
	case h.replays <- struct{}{}:
	default:
		h.metrics.replaysWaiting.Inc()
		defer h.metrics.replaysWaiting.Dec()
		t := time.NewTimer(h.cfg.CatchupWait)
		defer t.Stop()
		select {
		case h.replays <- struct{}{}:
		case <-t.C:
			h.metrics.replaysRefused.Inc()
			return nil, ErrReplayBusy
		case <-h.closing:
			return nil, ErrClosed
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	h.metrics.replaysRunning.Inc()
	return func() {
		h.metrics.replaysRunning.Dec()
		<-h.replays
	}, nil
}
