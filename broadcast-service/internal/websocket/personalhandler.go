package websocket

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"

	"github.com/gorilla/websocket"

	"github.com/bidding-platform/shared/auth"
	"github.com/bidding-platform/shared/models"
)

// tokenProtocol is the subprotocol that carries a token: browsers cannot
// set headers on a WebSocket, so a page offers "access_token, <jwt>" and the
// server answers "access_token".
const tokenProtocol = "access_token"

// PersonalHandler serves WS /ws/users/{id}, the channel of one user's
// notices.
type PersonalHandler struct {
	p        *Personal
	auth     *auth.Verifier
	upgrader websocket.Upgrader
	log      *slog.Logger
}

// NewPersonalHandler returns the personal channel endpoint; tokens are
// checked with verifier, as the gateway checks them.
func NewPersonalHandler(p *Personal, verifier *auth.Verifier, log *slog.Logger) *PersonalHandler {
	return &PersonalHandler{p: p, auth: verifier, upgrader: newUpgrader(p.hub.cfg.AllowedOrigins), log: log}
}

// token is the request's token, from the access_token query parameter or
// the subprotocol pair, and whether the subprotocol carried it.
func token(r *http.Request) (tok string, viaProtocol bool) {
	if t := r.URL.Query().Get("access_token"); t != "" {
		return t, false
	}
	ps := websocket.Subprotocols(r)
	for i := 0; i+1 < len(ps); i++ {
		if ps[i] == tokenProtocol {
			return ps[i+1], true
		}
	}
	return "", false
}

func (h *PersonalHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	userID := r.PathValue("id")
	if err := models.ValidateID(userID); err != nil {
		http.Error(w, "user id: "+err.Error(), http.StatusBadRequest)
		return
	}
	tok, viaProtocol := token(r)
	if !h.auth.Disabled() {
		header := ""
		if tok != "" {
			header = "Bearer " + tok
		}
		id, err := h.auth.Verify(header)
		if err != nil {
			w.Header().Set("WWW-Authenticate", auth.Challenge(err))
			msg := err.Error()
			if errors.Is(err, auth.ErrNoToken) {
				msg = "authentication required: send the token as the access_token query parameter or the subprotocols \"access_token, <token>\""
			}
			http.Error(w, msg, http.StatusUnauthorized)
			return
		}
		if id.Subject != userID && !id.Admin() {
			http.Error(w, "a personal channel is only for its user (or an admin)", http.StatusForbidden)
			return
		}
	}
	hub := h.p.hub
	addr := clientAddr(r, hub.cfg.TrustForwardedFor)
	if err := hub.admit(addr); err != nil {
		w.Header().Set("Retry-After", "5")
		if errors.Is(err, ErrAddrFull) {
			http.Error(w, fmt.Sprintf("%v: at most %d connections per client address", err, hub.cfg.MaxConnsPerIP), http.StatusTooManyRequests)
			return
		}
		if errors.Is(err, ErrClosed) {
			err = errors.New("server shutting down")
		}
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	pc, err := h.p.register(userID)
	if err != nil {
		hub.done(addr)
		if errors.Is(err, ErrUserFull) {
			http.Error(w, fmt.Sprintf("%v: at most %d", err, h.p.cfg.MaxConnsPerUser), http.StatusTooManyRequests)
			return
		}
		http.Error(w, "server shutting down", http.StatusServiceUnavailable)
		return
	}
	var respHeader http.Header
	if viaProtocol {
		respHeader = http.Header{"Sec-Websocket-Protocol": {tokenProtocol}}
	}
	conn, err := h.upgrader.Upgrade(w, r, respHeader)
	if err != nil {
		h.p.unregister(pc)
		hub.done(addr)
		return // the upgrader answered the client
	}
	if n := hub.cfg.SocketSendBuffer; n > 0 {
		if tc, ok := conn.NetConn().(*net.TCPConn); ok {
			_ = tc.SetWriteBuffer(n)
		}
	}
	h.p.metrics.connections.Inc()
	c := newClient(hub, conn)
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		c.writeLoop()
	}()
	go func() {
		defer hub.done(addr)
		defer h.p.metrics.connections.Dec()
		defer conn.Close()
		defer h.p.unregister(pc)
		readerDone := make(chan struct{})
		go func() {
			defer close(readerDone)
			c.readLoop()
			c.stop(0, "")
		}()
		h.start(pc, c, userID, tok, forwardedFor(r, hub.cfg.TrustForwardedFor))
		<-readerDone
		<-writerDone
	}()
}

// forwardedFor is the user's address as the gateway should count their
// seed's request against it (X-Forwarded-For), or "".
func forwardedFor(r *http.Request, trustXFF bool) string {
	if a, ok := clientIP(r, trustXFF); ok {
		return a.Unmap().WithZone("").String()
	}
	return ""
}

// start waits for the events to be followed, seeds the user's items and
// makes the channel ready; a client gone meanwhile ends it.
func (h *PersonalHandler) start(pc *personalConn, c *client, userID, tok, clientIP string) {
	ctx, cancel := context.WithTimeout(context.Background(), joinTimeout)
	defer cancel()
	go func() {
		select {
		case <-c.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	select {
	case <-h.p.following:
	case <-ctx.Done():
		if !c.closed.Load() {
			h.log.Warn("personal channel: events are not followed yet", "user_id", userID)
			c.stop(CloseUnavailable, "events unavailable, retry later")
		}
		return
	}
	items := h.p.seed(ctx, userID, tok, clientIP)
	h.p.activate(pc, c, items)
}
