package server

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
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"github.com/bidding-platform/broadcast-service/internal/nats"
	"github.com/bidding-platform/broadcast-service/internal/web"
	"github.com/bidding-platform/broadcast-service/internal/websocket"
	"github.com/bidding-platform/shared/health"
)

// Service is the name in /health and logs.
const Service = "broadcast-service"

// Server is one running broadcast instance.
type Server struct {
	cfg  Config
	log  *slog.Logger
	ln   net.Listener
	http *http.Server
	nats *nats.Client
	hub  *websocket.Hub
}

// New connects to NATS (retrying in the background if it is down) and binds
// the listener, so a bad address fails here and Addr is known before Run.
func New(ctx context.Context, cfg Config, reg *prometheus.Registry, log *slog.Logger) (*Server, error) {
	s := &Server{cfg: cfg, log: log}
	metrics := websocket.NewMetrics(reg)
	// NATS may connect (and call OnReconnect) before the hub exists.
	var hubRef atomic.Pointer[websocket.Hub]
	nc, err := nats.Connect(ctx, cfg.NATSURL, nats.Options{
		Name:          Service,
		ReconnectWait: cfg.ReconnectWait,
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
		SendQueueSize:    cfg.SendQueueSize,
		SocketSendBuffer: cfg.SocketSendBuffer,
		PingInterval:     cfg.PingInterval,
		PongTimeout:      cfg.PongTimeout,
		WriteTimeout:     cfg.WriteTimeout,
		GapTimeout:       cfg.GapTimeout,
		MaxConnections:   cfg.MaxConnections,
		AllowedOrigins:   cfg.AllowedOrigins,
	}, nc, metrics, log.With("component", "hub"))
	hubRef.Store(hub)
	s.nats, s.hub = nc, hub

	mux := http.NewServeMux()
	mux.Handle("GET /ws", websocket.NewHandler(hub, log.With("component", "websocket")))
	mux.HandleFunc("GET /health", health.Liveness(Service))
	mux.HandleFunc("GET /ready", health.Readiness(Service, 2*time.Second, map[string]health.Check{"nats": nc.Ready}))
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	web.Register(mux, web.Config{GatewayURL: cfg.GatewayURL})

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("listen %s: %w", cfg.Addr, err)
	}
	s.ln = ln
	s.http = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	return s, nil
}

// Addr is the address the server listens on (useful with ":0").
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Run serves until ctx ends, then shuts down in order: stop accepting,
// disconnect viewers, drain NATS.
func (s *Server) Run(ctx context.Context) error {
	g, gctx := errgroup.WithContext(ctx)
	hubCtx, stopHub := context.WithCancel(context.Background())
	defer stopHub()
	g.Go(func() error { return s.hub.Run(hubCtx) })
	g.Go(func() error {
		s.log.Info("listening", "addr", s.Addr())
		if err := s.http.Serve(s.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("serve: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		shutCtx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
		defer cancel()
		err := s.http.Shutdown(shutCtx)
		stopHub() // viewers get "going away" and reconnect elsewhere
		return errors.Join(err, s.hub.Wait(shutCtx), s.nats.Drain())
	})
	return g.Wait()
}
