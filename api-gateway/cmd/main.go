// Command api-gateway serves the bidding HTTP API.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bidding-platform/api-gateway/internal/app"
	"github.com/bidding-platform/shared/config"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "api-gateway:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	cfg, err := app.Load(config.FromOS())
	if err != nil {
		return fmt.Errorf("configuration:\n%w", err)
	}
	log := cfg.Log.NewLogger(os.Stderr, "api-gateway")
	a, err := app.New(cfg, log, prometheus.NewRegistry())
	if err != nil {
		return err
	}
	return a.Run(ctx)
}
