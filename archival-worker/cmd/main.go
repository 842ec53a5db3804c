// Command archival-worker archives every bid event from JetStream to
// PostgreSQL. Configuration is documented in the repository README.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/bidding-platform/archival-worker/internal/app"
	"github.com/bidding-platform/shared/config"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "archival-worker:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	cfg, err := app.LoadConfig(config.FromOS())
	if err != nil {
		return err
	}
	log := cfg.Log.NewLogger(os.Stdout, app.Service)
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	a, err := app.New(ctx, cfg, log, reg)
	if err != nil {
		return err
	}
	log.Info("listening", "addr", a.Addr(), "nats", cfg.NATSURL)
	return a.Run(ctx)
}
