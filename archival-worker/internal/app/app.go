// Package app wires the archival worker together: configuration, the
// PostgreSQL store, the NATS connection, the consumer and the small HTTP
// server for health, readiness and metrics. cmd/main.go and the tests both
// run it.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"github.com/bidding-platform/archival-worker/internal/consumer"
	"github.com/bidding-platform/archival-worker/internal/database"
	"github.com/bidding-platform/shared/config"
	"github.com/bidding-platform/shared/health"
)

// Service is the name in logs and /health.
const Service = "archival-worker"

// Config is everything the README's Archival Worker list documents.
type Config struct {
	PostgresURL config.Secret // holds a password; never logged
	NATSURL     string
	HTTPAddr    string
	BatchSize   int
	BatchWait   time.Duration
	// AckWait is how long an unacknowledged message stays with a worker
	// that may have died before JetStream redelivers it.
	AckWait time.Duration
	// Writers is how many batches are written to PostgreSQL at once.
	Writers int
	Log     config.Log
}

// DefaultConfig works against `make dev`.
func DefaultConfig() Config {
	return Config{
		PostgresURL: config.Secret(config.DefaultPostgresURL),
		NATSURL:     config.DefaultNATSURL,
		HTTPAddr:    ":8082",
		BatchSize:   4000,
		BatchWait:   100 * time.Millisecond,
		AckWait:     30 * time.Second,
		Writers:     2,
		Log:         config.DefaultLog(),
	}
}

// LoadConfig applies the environment on top of the defaults and reports
// every bad value at once.
func LoadConfig(e *config.Env) (Config, error) {
	c := DefaultConfig()
	e.Secret("POSTGRES_URL", &c.PostgresURL)
	if strings.TrimSpace(c.PostgresURL.Reveal()) == "" {
		c.PostgresURL = config.Secret(config.DefaultPostgresURL)
	}
	e.String("NATS_URL", &c.NATSURL)
	e.String("HTTP_ADDR", &c.HTTPAddr)
	e.Int("BATCH_SIZE", &c.BatchSize)
	e.Duration("BATCH_WAIT", &c.BatchWait)
	e.Duration("ACK_WAIT", &c.AckWait)
	e.Int("WRITERS", &c.Writers)
	c.Log.Read(e)
	e.Check(c.BatchSize >= 1 && c.BatchSize <= 10000, "BATCH_SIZE=%d: want 1 to 10000", c.BatchSize)
	e.Check(c.BatchWait > 0 && c.BatchWait <= time.Minute, "BATCH_WAIT=%v: want more than 0 and at most 1m", c.BatchWait)
	e.Check(c.AckWait >= time.Second, "ACK_WAIT=%v: want at least 1s", c.AckWait)
	e.Check(c.Writers >= 1 && c.Writers <= 16, "WRITERS=%d: want 1 to 16", c.Writers)
	if err := e.Err(); err != nil {
		return Config{}, fmt.Errorf("configuration: %w", err)
	}
	return c, nil
}

// App is one running worker.
type App struct {
	cfg      Config
	log      *slog.Logger
	ln       net.Listener
	srv      *http.Server
	store    *database.Store
	nc       *nats.Conn
	consumer *consumer.Consumer
	migrated atomic.Bool
}

// New prepares the worker and binds its HTTP port, so a port in use fails
// here. Neither PostgreSQL nor NATS needs to be up yet.
func New(ctx context.Context, cfg Config, log *slog.Logger, reg *prometheus.Registry) (*App, error) {
	store, err := database.Open(ctx, database.Config{URL: cfg.PostgresURL.Reveal(), MaxConns: int32(cfg.Writers) + 2})
	if err != nil {
		return nil, err
	}
	a := &App{cfg: cfg, log: log, store: store}
	a.nc, err = nats.Connect(cfg.NATSURL,
		nats.Name(Service),
		// Keep trying for ever, including the first connection: NATS
		// being down is an outage to wait out, not a reason to exit.
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250*time.Millisecond),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil { // nil is our own Close
				log.Warn("nats disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(*nats.Conn) { log.Info("nats reconnected") }),
	)
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("connect nats: %w", err)
	}
	js, err := jetstream.New(a.nc)
	if err != nil {
		a.nc.Close()
		store.Close()
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	a.consumer = consumer.New(consumer.Config{BatchSize: cfg.BatchSize, BatchWait: cfg.BatchWait, AckWait: cfg.AckWait, Writers: cfg.Writers},
		js, store, log.With("component", "consumer"), consumer.NewMetrics(reg))

	a.ln, err = net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		a.nc.Close()
		store.Close()
		return nil, fmt.Errorf("listen %s: %w", cfg.HTTPAddr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /health", health.Liveness(Service))
	mux.Handle("GET /ready", health.Readiness(Service, 2*time.Second, map[string]health.Check{
		"postgres": store.Ping,
		"nats":     a.natsReady,
		"schema":   a.schemaReady,
		"archive":  a.consumer.Healthy,
	}))
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	a.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	return a, nil
}

// Addr is the bound HTTP address, useful with ":0".
func (a *App) Addr() string { return a.ln.Addr().String() }

func (a *App) natsReady(context.Context) error {
	if s := a.nc.Status(); s != nats.CONNECTED {
		return fmt.Errorf("nats is %s", s)
	}
	return nil
}

func (a *App) schemaReady(context.Context) error {
	if !a.migrated.Load() {
		return errors.New("migrations not applied yet")
	}
	return nil
}

// Run serves and archives until ctx ends, then shuts down in order: stop
// the HTTP server, commit and acknowledge the batch in hand, flush the
// acknowledgements to NATS, close the pool.
func (a *App) Run(ctx context.Context) error {
	defer a.store.Close()
	defer a.nc.Close()
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		if err := a.srv.Serve(a.ln); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("serve http: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		return a.srv.Shutdown(sctx)
	})
	g.Go(func() error {
		if !a.migrate(gctx) {
			return nil
		}
		a.log.InfoContext(gctx, "archiving", "batch_size", a.cfg.BatchSize, "batch_wait", a.cfg.BatchWait, "writers", a.cfg.Writers)
		err := a.consumer.Run(gctx)
		// Acknowledgements are asynchronous publishes: push them out
		// before the connection closes.
		if ferr := a.nc.FlushTimeout(5 * time.Second); ferr != nil && a.nc.Status() == nats.CONNECTED {
			a.log.Warn("flush acknowledgements", "err", ferr)
		}
		return err
	})
	err := g.Wait()
	a.log.Info("stopped")
	return err
}

// migrate applies the schema, retrying while PostgreSQL is unreachable. It
// returns false if ctx ended first.
func (a *App) migrate(ctx context.Context) bool {
	delay := 100 * time.Millisecond
	for {
		mctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := a.store.Migrate(mctx)
		cancel()
		if err == nil {
			a.migrated.Store(true)
			return true
		}
		a.log.WarnContext(ctx, "migrate, will retry", "err", err, "in", delay)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case <-t.C:
		}
		delay = min(2*delay, 5*time.Second)
	}
}
