// Package app is the archival worker's composition root: it turns a Config
// into running parts (the PostgreSQL store, the NATS connection, the
// consumer, and the small HTTP server for health, readiness and metrics) and
// stops them in order. cmd/main.go and the tests both start it.
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

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"github.com/bidding-platform/archival-worker/internal/consumer"
	"github.com/bidding-platform/archival-worker/internal/database"
	"github.com/bidding-platform/shared/health"
	"github.com/bidding-platform/shared/natsconn"
)

// Service is the name in logs, /health and NATS's monitoring.
const Service = "archival-worker"

// App is one running worker.
type App struct {
	cfg      Config
	log      *slog.Logger
	ln       net.Listener
	srv      *http.Server
	store    *database.Store
	nc       *nats.Conn
	consumer *consumer.Consumer
	purger   *consumer.Purger
	migrated atomic.Bool
}

// New prepares the worker and binds its HTTP port, so a port in use fails
// here and Addr reports the real port of ":0". Neither PostgreSQL nor NATS
// needs to be up yet.
func New(ctx context.Context, cfg Config, log *slog.Logger) (*App, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	store, err := database.Open(ctx, database.Config{URL: cfg.PostgresURL.Reveal(), MaxConns: int32(cfg.Writers) + 2})
	if err != nil {
		return nil, err
	}
	a := &App{cfg: cfg, log: log, store: store}
	a.nc, err = natsconn.Connect(ctx, natsconn.Config{
		URL:  cfg.NATSURL,
		Name: Service,
		Auth: cfg.NATSAuth,
		Log:  log.With("component", "nats"),
		// Nothing to do on reconnecting: the pull consumer resumes by
		// itself, and the fetch loop recreates the consumer if NATS
		// lost it. The default wait gets the backlog moving soon.
	})
	if err != nil {
		store.Close()
		return nil, err
	}
	js, err := jetstream.New(a.nc)
	if err != nil {
		a.nc.Close()
		store.Close()
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	metrics := consumer.NewMetrics(reg)
	a.purger = consumer.NewPurger(consumer.PurgeConfig{After: cfg.PurgeAfter}, js, store, log.With("component", "purge"), metrics)
	a.consumer = consumer.New(consumer.Config{BatchSize: cfg.BatchSize, BatchWait: cfg.BatchWait, AckWait: cfg.AckWait, Writers: cfg.Writers},
		js, store, log.With("component", "consumer"), metrics)

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
	// A collector failing once costs its own metrics in one scrape, not the
	// whole scrape.
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg,
		ErrorHandling: promhttp.ContinueOnError, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}))
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
	a.log.InfoContext(ctx, "listening", "addr", a.Addr())
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
	migrated := make(chan struct{})
	g.Go(func() error {
		if !a.migrate(gctx) {
			return nil
		}
		close(migrated)
		a.log.InfoContext(gctx, "archiving", "batch_size", a.cfg.BatchSize, "batch_wait", a.cfg.BatchWait, "writers", a.cfg.Writers,
			"purge_after", a.cfg.PurgeAfter)
		err := a.consumer.Run(gctx)
		// Acknowledgements are asynchronous publishes: push them out
		// before the connection closes.
		if ferr := a.nc.FlushTimeout(5 * time.Second); ferr != nil && a.nc.Status() == nats.CONNECTED {
			a.log.Warn("flush acknowledgements", "err", ferr)
		}
		return err
	})
	g.Go(func() error {
		// The purge reads the schema the migration adds.
		select {
		case <-migrated:
			return a.purger.Run(gctx)
		case <-gctx.Done():
			return nil
		}
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
