package websocket

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/bidding-platform/shared/models"
)

// joinTimeout bounds a viewer's join (snapshot and replay), besides its wait
// for a replay slot.
const joinTimeout = 30 * time.Second

// Handler serves WS /ws?item_id=X[&since_seq=N].
type Handler struct {
	hub      *Hub
	upgrader websocket.Upgrader
	log      *slog.Logger
}

// NewHandler returns the WebSocket endpoint of hub.
func NewHandler(hub *Hub, log *slog.Logger) *Handler {
	return &Handler{
		hub:      hub,
		log:      log,
		upgrader: newUpgrader(hub.cfg.AllowedOrigins),
	}
}

func newUpgrader(allowedOrigins []string) websocket.Upgrader {
	return websocket.Upgrader{
		HandshakeTimeout: 10 * time.Second,
		// Viewers send nothing but control frames, so a small read
		// buffer is enough and keeps idle connections cheap.
		ReadBufferSize:  512,
		WriteBufferSize: 1024,
		// Event frames bypass gorilla's writer, so its buffer is
		// needed rarely; a pool keeps idle viewers from holding one.
		WriteBufferPool: &sync.Pool{},
		CheckOrigin:     checkOrigin(allowedOrigins),
	}
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	itemID := q.Get("item_id")
	if err := models.ValidateID(itemID); err != nil {
		http.Error(w, "item_id: "+err.Error(), http.StatusBadRequest)
		return
	}
	var since *uint64
	if s := q.Get("since_seq"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			http.Error(w, "since_seq must be a non-negative integer", http.StatusBadRequest)
			return
		}
		since = &n
	}
	addr := clientAddr(r, h.hub.cfg.TrustForwardedFor)
	if err := h.hub.admit(addr); err != nil {
		w.Header().Set("Retry-After", "5")
		if errors.Is(err, ErrAddrFull) {
			http.Error(w, fmt.Sprintf("%v: at most %d viewers per client address", err, h.hub.cfg.MaxConnsPerIP), http.StatusTooManyRequests)
			return
		}
		if errors.Is(err, ErrClosed) {
			err = errors.New("server shutting down")
		}
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	conn, err := h.upgrader.Upgrade(w, r, nil)
	if err != nil {
		h.hub.done(addr)
		return // the upgrader answered the client
	}
	if n := h.hub.cfg.SocketSendBuffer; n > 0 {
		if tc, ok := conn.NetConn().(*net.TCPConn); ok {
			if err := tc.SetWriteBuffer(n); err != nil {
				h.log.Debug("set socket send buffer", "err", err)
			}
		}
	}
	h.hub.metrics.connections.Inc()

	c := newClient(h.hub, conn)
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		c.writeLoop()
	}()
	// The request's context ends with this handler; joining gets its own
	// bound so a stuck JetStream read cannot hold the viewer forever.
	ctx, cancel := context.WithTimeout(context.Background(), joinTimeout+h.hub.cfg.CatchupWait)
	f, err := h.hub.join(ctx, c, itemID, since)
	cancel()
	switch {
	case err == nil:
	case errors.Is(err, ErrReplayBusy):
		// Nothing was sent: the page comes back later with the same
		// since_seq and loses nothing.
		h.log.Debug("viewer join", "item_id", itemID, "err", err)
		c.stop(CloseTryAgain, "too many viewers catching up, reconnect with since_seq later")
	case errors.Is(err, ErrClosed):
		c.stop(closeGoingAway, "server shutting down")
	default:
		h.log.Warn("viewer join", "item_id", itemID, "err", err)
		c.stop(CloseUnavailable, "events unavailable, retry later")
	}
	// The reader gets a fresh goroutine and this handler returns, so the
	// HTTP server's per-connection buffers and its grown stack are freed:
	// an idle viewer keeps only two small goroutines.
	go func() {
		defer h.hub.done(addr)
		defer h.hub.metrics.connections.Dec()
		defer conn.Close()
		c.readLoop()
		c.stop(0, "")
		if f != nil {
			h.hub.leave(f, c)
		}
		<-writerDone
	}()
}

// checkOrigin allows the page's own host, the configured origins, and
// clients that send no Origin (not browsers, so not exposed to CSRF).
func checkOrigin(allowed []string) func(r *http.Request) bool {
	set := make(map[string]bool, len(allowed))
	all := false
	for _, o := range allowed {
		o = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(o)), "/")
		if o == "*" {
			all = true
		}
		set[o] = true
	}
	return func(r *http.Request) bool {
		origin := r.Header.Get("Origin")
		if origin == "" || all {
			return true
		}
		if set[strings.ToLower(origin)] {
			return true
		}
		u, err := url.Parse(origin)
		return err == nil && strings.EqualFold(u.Host, r.Host)
	}
}
