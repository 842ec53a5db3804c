// Package handlers is the gateway's HTTP transport: routing, request
// validation, authentication, rate limits, CORS and the JSON answers.
package handlers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/bidding-platform/api-gateway/internal/service"
	"github.com/bidding-platform/shared/auth"
	"github.com/bidding-platform/shared/config"
	"github.com/bidding-platform/shared/health"
	"github.com/bidding-platform/shared/models"
)

// ServiceName is how the gateway names itself in /health and /ready.
const ServiceName = "api-gateway"

// Bidder is the bidding logic the handlers call.
type Bidder interface {
	PlaceBid(ctx context.Context, b service.Bid) (service.BidResult, error)
	Item(ctx context.Context, id string) (models.Item, error)
	CreateItem(ctx context.Context, n service.NewItem) (models.Item, error)
	CancelItem(ctx context.Context, id string, by service.Canceller) (models.Item, error)
}

// History reads archived bids, newest first. It returns models.ErrBadCursor
// for a cursor it did not issue.
type History interface {
	BidHistory(ctx context.Context, itemID string, limit int, cursor string) (models.BidPage, error)
}

// Config is the transport's part of the gateway configuration.
type Config struct {
	// Auth identifies callers. Unless it is disabled, every request that
	// changes state needs a bearer token: a bid's user_id must be its
	// subject, creating needs the seller (or admin) role, cancelling the
	// item's seller or an admin. Required.
	Auth *auth.Verifier
	// RatePerUser limits bids per second per user; zero disables.
	RatePerUser float64
	// RatePerIP limits API requests per second per client IP; zero disables.
	RatePerIP float64
	// AllowedOrigins may call the API from a browser; "*" allows any.
	AllowedOrigins []string
	// TrustProxy takes the client IP from the last X-Forwarded-For entry,
	// which the load balancer appends; only safe behind one.
	TrustProxy bool
	// MaxBody caps request bodies (default 4 KiB).
	MaxBody int64
}

// Deps are what the handlers talk to.
type Deps struct {
	Bids    Bidder
	History History
	Browse  Browser
	// Users answers for a user's own bids and items.
	Users UserActivity
	// Ready are the checks /ready requires; Degraded are reported but do
	// not fail it, because bidding works without them.
	Ready    map[string]health.Check
	Degraded map[string]health.Check
	Metrics  *Metrics
	Gatherer prometheus.Gatherer
	Log      *slog.Logger
}

type server struct {
	cfg     Config
	d       Deps
	auth    *auth.Verifier
	perUser *limiter
	perIP   *limiter
	origins map[string]bool
	anyOrig bool
	bufs    sync.Pool
}

func newServer(cfg Config, d Deps) *server {
	if cfg.Auth == nil {
		panic("handlers: Config.Auth is nil")
	}
	cfg.MaxBody = config.Positive(cfg.MaxBody, 4<<10)
	s := &server{
		cfg:     cfg,
		d:       d,
		auth:    cfg.Auth,
		perUser: newLimiter(cfg.RatePerUser, 100_000),
		perIP:   newLimiter(cfg.RatePerIP, 100_000),
		origins: make(map[string]bool),
		bufs:    sync.Pool{New: func() any { b := make([]byte, 0, 256); return &b }},
	}
	for _, o := range cfg.AllowedOrigins {
		if o == "*" {
			s.anyOrig = true
		}
		s.origins[o] = true
	}
	return s
}

func (s *server) router() http.Handler {
	r := chi.NewRouter()
	r.Use(s.observe, s.recover, s.cors)
	r.Get("/health", health.Liveness(ServiceName))
	// 503 only when Redis is unreachable: without NATS or PostgreSQL bids
	// are still taken (the outbox holds events), so a load balancer must keep
	// sending them; those dependencies show as "degraded".
	r.Get("/ready", health.Degradable(ServiceName, time.Second, s.d.Ready, s.d.Degraded))
	// A collector that fails once (the process collector reads /proc while
	// files come and go) costs its own metrics in one scrape, not the
	// whole scrape.
	r.Handle("/metrics", promhttp.HandlerFor(s.d.Gatherer, promhttp.HandlerOpts{
		ErrorHandling: promhttp.ContinueOnError, ErrorLog: slog.NewLogLogger(s.d.Log.Handler(), slog.LevelWarn)}))
	r.Route("/api/v1", func(r chi.Router) {
		r.Use(s.limitIP)
		r.Post("/items", s.createItem)
		r.Get("/items", s.browseItems)
		r.Get("/items/{id}", s.getItem)
		r.Post(bidPattern, s.placeBid)
		r.Post("/items/{id}/cancel", s.cancelItem)
		r.Get("/items/{id}/bids", s.bidHistory)
		r.Get("/users/{id}/bids", s.userBids)
		r.Get("/users/{id}/items", s.userItems)
		if s.auth.Config().DevTokens {
			r.Post("/dev/token", s.devToken)
		}
	})
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such endpoint")
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusMethodNotAllowed, "method not allowed")
	})
	return r
}

// statusWriter remembers the status code for metrics.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (s *server) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		route := "unmatched"
		if rc := chi.RouteContext(r.Context()); rc != nil && len(rc.RoutePatterns) > 0 {
			// RoutePattern joins and cleans on every call; our patterns'
			// last parts are unique, so remember the full one by that.
			last := rc.RoutePatterns[len(rc.RoutePatterns)-1]
			if v, ok := s.d.Metrics.routeName.Load(last); ok {
				route = v.(string)
			} else if p := rc.RoutePattern(); p != "" {
				route = p
				s.d.Metrics.routeName.Store(last, p)
			}
		}
		if sw.status == 0 {
			sw.status = http.StatusOK
		}
		s.d.Metrics.request(route, r.Method, sw.status, time.Since(start))
	})
}

func (s *server) recover(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.d.Log.Error("handler panic", "panic", fmt.Sprint(v), "path", r.URL.Path)
				writeError(w, http.StatusInternalServerError, "internal error")
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// cors lets the listed origins (the broadcast service's live page) call the
// API from a browser, including the preflight for JSON POSTs.
func (s *server) cors(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		if origin == "" {
			next.ServeHTTP(w, r)
			return
		}
		h := w.Header()
		h.Add("Vary", "Origin")
		allowed := s.anyOrig || s.origins[origin]
		if allowed {
			h.Set("Access-Control-Allow-Origin", origin)
			h.Set("Access-Control-Expose-Headers", "Retry-After, WWW-Authenticate")
		}
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			if !allowed {
				writeError(w, http.StatusForbidden, "origin not allowed")
				return
			}
			h.Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
			h.Set("Access-Control-Allow-Headers", "Content-Type, Authorization, Idempotency-Key")
			h.Set("Access-Control-Max-Age", "600")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (s *server) clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	return s.clientIPOf(r.Header.Get("X-Forwarded-For"), host)
}

// clientIPOf is the address rate limits count against: the peer's, or with
// TrustProxy the one the load balancer appended to X-Forwarded-For.
func (s *server) clientIPOf(xff, peer string) string {
	if s.cfg.TrustProxy {
		if xff != "" {
			if i := strings.LastIndexByte(xff, ','); i >= 0 {
				xff = xff[i+1:]
			}
			if ip := strings.TrimSpace(xff); ip != "" {
				return ip
			}
		}
	}
	return peer
}

func (s *server) limitIP(next http.Handler) http.Handler {
	if s.perIP == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ok, wait := s.perIP.allow(s.clientIP(r), time.Now()); !ok {
			s.d.Metrics.bid("rate_limited")
			tooMany(w, wait, "rate limit exceeded for this client address")
			return
		}
		next.ServeHTTP(w, r)
	})
}

func tooMany(w http.ResponseWriter, wait time.Duration, msg string) {
	w.Header().Set("Retry-After", retryAfter(wait))
	writeError(w, http.StatusTooManyRequests, msg)
}

// retryAfter is a Retry-After value: whole seconds, at least one.
func retryAfter(wait time.Duration) string {
	secs := int((wait + time.Second - 1) / time.Second)
	return strconv.Itoa(max(1, secs))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"success":false,"message":"internal error"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n')) // the client went away; nothing to do
}

type errorBody struct {
	Success bool   `json:"success"`
	Message string `json:"message"`
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, errorBody{Message: msg})
}

// identify returns who sent r. required says the request changes state and
// so needs a token; otherwise a request without one is anonymous, but a
// token that is sent must be valid. With auth disabled everyone is
// anonymous and everything is allowed. On failure it has answered 401.
func (s *server) identify(w http.ResponseWriter, r *http.Request, required bool) (auth.Identity, bool) {
	h := r.Header.Get("Authorization")
	if s.auth.Disabled() || (!required && h == "") {
		return auth.Identity{}, true
	}
	id, err := s.auth.Verify(h)
	if err != nil {
		w.Header().Set("WWW-Authenticate", auth.Challenge(err))
		writeError(w, http.StatusUnauthorized, err.Error())
		return auth.Identity{}, false
	}
	return id, true
}

// decodeJSON reads one JSON object of at most max bytes into dst, rejecting
// unknown fields and trailing data, and says which rule a bad body broke.
func decodeJSON(r *http.Request, max int64, dst any, fields string) error {
	buf, err := readBody(r, max)
	if err != nil {
		return err
	}
	defer releaseBody(buf)
	return decodeBytes(buf.Bytes(), dst, fields)
}

func decodeBytes(b []byte, dst any, fields string) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return bodyError(err, fields)
	}
	var extra json.RawMessage
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return errors.New("request body must contain exactly one JSON object")
	}
	return nil
}

func bodyError(err error, fields string) error {
	var (
		se *json.SyntaxError
		te *json.UnmarshalTypeError
	)
	switch {
	case errors.Is(err, io.EOF):
		return fmt.Errorf("request body is empty: want a JSON object with %s", fields)
	case errors.As(err, &se), err.Error() == "unexpected EOF":
		return errors.New("request body is not valid JSON")
	case errors.As(err, &te):
		if te.Field == "" {
			return fmt.Errorf("request body must be a JSON object with %s", fields)
		}
		return fmt.Errorf("field %q must be a %s", te.Field, jsonKind(te.Type.Kind().String()))
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return fmt.Errorf("unknown field %s: allowed fields are %s", strings.TrimPrefix(err.Error(), "json: unknown field "), fields)
	}
	return fmt.Errorf("request body is not valid JSON: %v", err)
}

func jsonKind(k string) string {
	switch k {
	case "ptr", "string":
		return "string"
	case "slice":
		return "number"
	}
	return k
}
