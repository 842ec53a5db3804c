// Package app is the broadcast service's composition root: it turns a Config
// into running parts (the NATS client, the hub, the HTTP endpoints and the
// live page) and stops them in order. cmd/main.go and the tests both start
// it.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"github.com/bidding-platform/broadcast-service/internal/gateway"
	"github.com/bidding-platform/broadcast-service/internal/nats"
	"github.com/bidding-platform/broadcast-service/internal/web"
	"github.com/bidding-platform/broadcast-service/internal/websocket"
	"github.com/bidding-platform/shared/auth"
	"github.com/bidding-platform/shared/health"
)

// Service is the name in logs, /health and NATS's monitoring.
const Service = "broadcast-service"

// App is one wired broadcast instance: listener bound, NATS dialled,
// nothing served until Run.
type App struct {
	cfg      Config
	log      *slog.Logger
	ln       net.Listener
	http     *http.Server
	nats     *nats.Client
	hub      *websocket.Hub
	personal *websocket.Personal
	auth     *auth.Verifier
}

// New connects to NATS (retrying in the background if it is down) and binds
// the listener, so a taken port fails here and Addr reports the real port
// of ":0".
func New(ctx context.Context, cfg Config, log *slog.Logger) (*App, error) {
	// Checked before anything is reached, as in the gateway: a service
	// that cannot tell who connects must not serve personal channels.
	verifier, err := auth.New(cfg.Auth, log.With("component", "auth"))
	if err != nil {
		return nil, err
	}
	a, err := newApp(ctx, cfg, log, verifier)
	if err != nil {
		verifier.Close()
		return nil, err
	}
	return a, nil
}

func newApp(ctx context.Context, cfg Config, log *slog.Logger, verifier *auth.Verifier) (*App, error) {
	a := &App{cfg: cfg, log: log, auth: verifier}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics := websocket.NewMetrics(reg)
	// NATS may connect (and call OnReconnect) before the hub exists.
	var hubRef atomic.Pointer[websocket.Hub]
	nc, err := nats.Connect(ctx, cfg.NATSURL, nats.Options{
		Name:                Service,
		Auth:                cfg.NATSAuth,
		ReconnectWait:       cfg.ReconnectWait,
		StreamCheckInterval: cfg.StreamCheckInterval,
		OnReconnect: func() {
			if h := hubRef.Load(); h != nil {
				h.Resync()
			}
		},
	}, log.With("component", "nats"))
	if err != nil {
		return nil, err
	}
	hub := websocket.NewHub(websocket.Config{
		SendQueueSize:     cfg.SendQueueSize,
		SocketSendBuffer:  cfg.SocketSendBuffer,
		PingInterval:      cfg.PingInterval,
		PongTimeout:       cfg.PongTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		GapTimeout:        cfg.GapTimeout,
		MaxConnections:    cfg.MaxConnections,
		MaxConnsPerIP:     cfg.MaxConnsPerIP,
		TrustForwardedFor: cfg.TrustForwardedFor,
		MaxCatchupReplays: cfg.MaxCatchupReplays,
		CatchupWait:       cfg.CatchupWait,
		AllowedOrigins:    cfg.AllowedOrigins,
	}, nc, metrics, log.With("component", "hub"))
	hubRef.Store(hub)
	a.nats, a.hub = nc, hub
	a.personal = websocket.NewPersonal(hub, websocket.PersonalConfig{
		EndingSoonLead:  cfg.EndingSoonLead,
		MaxConnsPerUser: cfg.MaxConnsPerUser,
		NameTimeout:     cfg.NameTimeout,
		SeedTimeout:     cfg.SeedTimeout,
	}, gatewayReader{gateway.New(cfg.gatewayInternal())}, websocket.NewPersonalMetrics(reg), log.With("component", "personal"))
	if cfg.Auth.Disabled {
		log.Warn("AUTH_DISABLED=true: anyone may open any user's personal channel (/ws/users/{id}). Local development only.")
	}

	mux := http.NewServeMux()
	mux.Handle("GET /ws", websocket.NewHandler(hub, log.With("component", "websocket")))
	mux.Handle("GET /ws/users/{id}", websocket.NewPersonalHandler(a.personal, verifier, log.With("component", "personal")))
	mux.HandleFunc("GET /health", health.Liveness(Service))
	mux.HandleFunc("GET /ready", health.Readiness(Service, 2*time.Second, map[string]health.Check{"nats": nc.Ready}))
	// A collector failing once costs its own metrics in one scrape, not the
	// whole scrape.
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg,
		ErrorHandling: promhttp.ContinueOnError, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}))
	web.Register(mux, web.Config{GatewayURL: cfg.GatewayURL, DevSignIn: cfg.DevSignIn, EmbedOrigins: cfg.EmbedOrigins})

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("listen %s: %w", cfg.Addr, err)
	}
	a.ln = ln
	a.http = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	return a, nil
}

// Addr is the address the server listens on (useful with ":0").
func (a *App) Addr() string { return a.ln.Addr().String() }

// Run serves until ctx ends, then shuts down in order: stop accepting,
// disconnect viewers, drain NATS.
func (a *App) Run(ctx context.Context) error {
	a.log.InfoContext(ctx, "listening", "addr", a.Addr())
	g, gctx := errgroup.WithContext(ctx)
	hubCtx, stopHub := context.WithCancel(context.Background())
	defer stopHub()
	g.Go(func() error { return a.hub.Run(hubCtx) })
	g.Go(func() error { return a.personal.Run(hubCtx) })
	// Every item's events are followed from the start, not from the first
	// personal channel: a channel is then ready as soon as its seed is
	// read, and a NATS user without the consumer permissions shows in the
	// log at start, not at the first user's connection.
	g.Go(func() error { return a.nats.Follow(hubCtx, a.personal.OnEvent, a.personal.Following) })
	g.Go(func() error {
		if err := a.http.Serve(a.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("serve: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		shutCtx, cancel := context.WithTimeout(context.Background(), a.cfg.ShutdownTimeout)
		defer cancel()
		err := a.http.Shutdown(shutCtx)
		stopHub() // viewers get "going away" and reconnect elsewhere
		return errors.Join(err, a.hub.Wait(shutCtx), a.nats.Drain())
	})
	err := g.Wait()
	a.auth.Close()
	return err
}

// gatewayReader adapts the gateway's answers to what the personal channels
// need.
type gatewayReader struct{ *gateway.Client }

func (g gatewayReader) Bidding(ctx context.Context, userID, token, clientIP string) ([]websocket.SeedItem, error) {
	items, err := g.Client.Bidding(ctx, userID, token, clientIP)
	out := make([]websocket.SeedItem, 0, len(items))
	for _, it := range items {
		var ends *time.Time
		if it.EndsAt != nil && !it.EndsAt.IsZero() {
			ends = it.EndsAt
		}
		out = append(out, websocket.SeedItem{ID: it.ID, Name: it.Name, Status: it.Status, CurrentBid: it.CurrentBid,
			HighestBidderID: it.HighestBidderID, EndsAt: ends, Seq: it.Seq, Leading: it.Leading})
	}
	return out, err
}
