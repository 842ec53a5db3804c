// Package app is the gateway's composition root: it turns a Config into
// running parts (HTTP server, outbox relay, price feed, auction closer) and
// stops them in order. cmd/main.go and the tests both start it.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	goredis "github.com/redis/go-redis/v9"
	"github.com/valyala/fasthttp"
	"golang.org/x/sync/errgroup"

	"github.com/bidding-platform/api-gateway/internal/handlers"
	gwnats "github.com/bidding-platform/api-gateway/internal/nats"
	"github.com/bidding-platform/api-gateway/internal/redis"
	"github.com/bidding-platform/api-gateway/internal/service"
	"github.com/bidding-platform/shared/auth"
	"github.com/bidding-platform/shared/health"
	"github.com/bidding-platform/shared/models"
)

// App is a wired gateway: listener bound, clients created, nothing running
// until Run.
type App struct {
	cfg     Config
	log     *slog.Logger
	ln      net.Listener
	srv     *fasthttp.Server
	store   *redis.Store
	nats    *gwnats.Client
	svc     *service.Service
	history *lazyHistory
	auth    *auth.Verifier
}

// Service is the name in logs and NATS's monitoring.
const Service = "api-gateway"

// New wires a gateway. It binds the listener now, so a taken port fails
// here and Addr reports the real port of ":0". It needs neither Redis nor
// NATS nor PostgreSQL to be up: each is reached when used, and the gateway
// answers 503 for what depends on a missing one.
func New(ctx context.Context, cfg Config, log *slog.Logger) (*App, error) {
	// Checked before anything is reached: a gateway that cannot tell who
	// calls it must not serve at all.
	verifier, err := auth.New(cfg.Auth, log.With("component", "auth"))
	if err != nil {
		return nil, err
	}
	app, err := newApp(ctx, cfg, log, verifier)
	if err != nil {
		verifier.Close()
		return nil, err
	}
	return app, nil
}

func newApp(ctx context.Context, cfg Config, log *slog.Logger, verifier *auth.Verifier) (*App, error) {
	// go-redis logs through one process-wide logger; the last gateway
	// created in a process (tests run several) gets its lines.
	goredis.SetLogger(redisLogger{log.With("component", "go-redis")})
	store, err := redis.New(redis.Config{
		Addrs:           cfg.RedisAddrs,
		Username:        cfg.RedisUsername,
		Password:        cfg.RedisPassword,
		TLS:             cfg.RedisTLS,
		TLSCAFile:       cfg.RedisTLSCAFile,
		DB:              cfg.RedisDB,
		Cluster:         cfg.RedisCluster,
		Strategy:        cfg.RedisStrategy,
		KeyPrefix:       cfg.RedisKeyPrefix,
		ClosedRetention: cfg.ClosedRetention,
	})
	if err != nil {
		return nil, err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics := handlers.NewMetrics(reg)

	nc, err := gwnats.Connect(ctx, gwnats.Config{URL: cfg.NATSURL, Auth: cfg.NATSAuth, Name: Service, StreamReplicas: cfg.StreamReplicas, Metrics: metrics}, store, log.With("component", "nats"))
	if err != nil {
		store.Close()
		return nil, err
	}
	hist := newLazyHistory(cfg.PostgresURL.Reveal())
	svc := service.New(store, nc, service.Config{
		Prefilter:              cfg.Prefilter,
		Coalesce:               cfg.Coalesce,
		SoftClose:              cfg.SoftClose,
		SoftCloseMaxExtensions: int64(cfg.SoftCloseMaxExtensions),
		MaxIdempotencyKeys:     int64(cfg.IdempotencyKeysPerUser),
		AutoCreate:             cfg.AutoCreate,
		DefaultDuration:        cfg.AuctionLength,
		MaxDuration:            cfg.MaxAuctionLength,
		Metrics:                metrics,
		Archive:                hist,
		Users:                  hist,
		Live:                   store,
		Log:                    nc,
		Open:                   store,
		Finals:                 hist,
	}, log.With("component", "service"))
	if err := nc.Subscribe(svc.Observe); err != nil {
		nc.Close()
		store.Close()
		return nil, err
	}

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		nc.Close()
		store.Close()
		return nil, fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	switch {
	case cfg.Auth.Disabled:
		log.Error("AUTH_DISABLED=true: NO AUTHENTICATION. Anyone may bid as any user, create, cancel and read every auction's reserve. Local development only; never expose this gateway.")
	case cfg.Auth.DevTokens:
		log.Warn("AUTH_DEV_TOKENS=true: POST /api/v1/dev/token signs a token for any user and role that asks. Local development only.")
	}
	handler, onError := handlers.NewFast(handlers.Config{
		Auth:           verifier,
		RatePerUser:    cfg.RatePerUser,
		RatePerIP:      cfg.RatePerIP,
		AllowedOrigins: cfg.CORSOrigins,
		TrustProxy:     cfg.TrustProxy,
	}, handlers.Deps{
		Bids:     svc,
		History:  hist,
		Browse:   svc,
		Users:    svc,
		Ready:    map[string]health.Check{"redis": store.Ping},
		Degraded: map[string]health.Check{"nats": nc.Ping, "postgres": hist.Ping},
		Metrics:  metrics,
		Gatherer: reg,
		Log:      log.With("component", "http"),
	})
	return &App{
		cfg:   cfg,
		log:   log,
		ln:    ln,
		store: store,
		nats:  nc,
		svc:   svc,
		srv: &fasthttp.Server{
			Handler:      handler,
			ErrorHandler: onError,
			// ReadTimeout covers a request's headers and body once its
			// first byte arrived; IdleTimeout the wait for that byte.
			ReadTimeout:  10 * time.Second,
			WriteTimeout: 10 * time.Second,
			IdleTimeout:  2 * time.Minute,
			// Room for a bearer token and the usual headers. Bodies are
			// capped at 4 KiB by the handlers, which say so in the API's
			// error shape; the server still reads up to 256 KiB so that
			// a client sending one gets that answer rather than a reset
			// (as net/http does), and refuses larger ones unread.
			ReadBufferSize:        16 << 10,
			MaxRequestBodySize:    256 << 10,
			NoDefaultServerHeader: true,
			CloseOnShutdown:       true,
			Logger:                slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		},
		history: hist,
		auth:    verifier,
	}, nil
}

// Addr is the address the HTTP server listens on.
func (a *App) Addr() string { return a.ln.Addr().String() }

// Run serves until ctx is done, then shuts down in order: stop accepting
// and finish in-flight requests, let the last coalesced batches return,
// publish what they accepted, drain NATS, close Redis and PostgreSQL.
func (a *App) Run(ctx context.Context) error {
	a.log.InfoContext(ctx, "listening", "addr", a.Addr(), "redis_strategy", a.cfg.RedisStrategy,
		"redis_cluster", a.cfg.RedisCluster, "prefilter", a.cfg.Prefilter, "coalesce", a.cfg.Coalesce)
	// Publishing outlives the HTTP server so that bids accepted during
	// shutdown are still published.
	pubCtx, stopPub := context.WithCancel(context.Background())
	defer stopPub()
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		// After a shutdown, Serve's error is the closed listener's.
		if err := a.srv.Serve(a.ln); err != nil && gctx.Err() == nil {
			return fmt.Errorf("http server: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), a.cfg.ShutdownTimeout)
		defer cancel()
		err := a.srv.ShutdownWithContext(sctx)
		// A shutdown that comes before Serve has taken the listener
		// cannot close it; this stops that Serve.
		_ = a.ln.Close()
		a.svc.Wait()
		stopPub()
		if err != nil {
			return fmt.Errorf("http shutdown: %w", err)
		}
		return nil
	})
	g.Go(func() error { return a.nats.Run(pubCtx) })
	g.Go(func() error { return a.svc.RunCloser(gctx, a.cfg.CloseEvery) })
	err := g.Wait()
	a.history.Close()
	a.auth.Close()
	if cerr := a.store.Close(); cerr != nil {
		err = errors.Join(err, cerr)
	}
	a.log.Info("stopped")
	return err
}

// lazyHistory is the archive in PostgreSQL (bid history and long-closed
// items). It opens PostgreSQL on first use and again after a failure, at
// most once a second, so the gateway starts and bids without it.
type lazyHistory struct {
	url string

	mu      sync.Mutex
	db      historyDB
	lastTry time.Time
	lastErr error
}

type historyDB interface {
	BidHistory(ctx context.Context, itemID string, limit int, cursor string) (models.BidPage, error)
	ArchivedItem(ctx context.Context, id string) (models.Item, bool, error)
	FinalItems(ctx context.Context, status models.Status, after service.FinalKey, limit int) ([]service.FinalItem, error)
	service.UserArchive
	Ping(ctx context.Context) error
	Close()
}

func newLazyHistory(url string) *lazyHistory { return &lazyHistory{url: url} }

func (h *lazyHistory) get(ctx context.Context) (historyDB, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.db != nil {
		return h.db, nil
	}
	if time.Since(h.lastTry) < time.Second && h.lastErr != nil {
		return nil, h.lastErr
	}
	h.lastTry = time.Now()
	octx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	db, err := openHistory(octx, h.url)
	if err != nil {
		h.lastErr = fmt.Errorf("open postgres: %w", err)
		return nil, h.lastErr
	}
	h.db, h.lastErr = db, nil
	return db, nil
}

func (h *lazyHistory) BidHistory(ctx context.Context, itemID string, limit int, cursor string) (models.BidPage, error) {
	db, err := h.get(ctx)
	if err != nil {
		return models.BidPage{}, err
	}
	return db.BidHistory(ctx, itemID, limit, cursor)
}

func (h *lazyHistory) ArchivedItem(ctx context.Context, id string) (models.Item, bool, error) {
	db, err := h.get(ctx)
	if err != nil {
		return models.Item{}, false, err
	}
	return db.ArchivedItem(ctx, id)
}

func (h *lazyHistory) FinalItems(ctx context.Context, status models.Status, after service.FinalKey, limit int) ([]service.FinalItem, error) {
	db, err := h.get(ctx)
	if err != nil {
		return nil, err
	}
	return db.FinalItems(ctx, status, after, limit)
}

// Ping is for /ready, where PostgreSQL is only ever "degraded".
func (h *lazyHistory) Ping(ctx context.Context) error {
	db, err := h.get(ctx)
	if err != nil {
		return err
	}
	return db.Ping(ctx)
}

func (h *lazyHistory) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.db != nil {
		h.db.Close()
		h.db = nil
	}
}
