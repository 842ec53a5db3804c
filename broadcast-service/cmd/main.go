// Command broadcast-service fans bid events out to WebSocket viewers and
// serves the live auction page.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/bidding-platform/broadcast-service/internal/server"
	"github.com/bidding-platform/shared/config"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "broadcast-service:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	cfg := server.DefaultConfig()
	env := config.FromOS()
	cfg.Read(env)
	if err := env.Err(); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	log := cfg.Log.NewLogger(os.Stderr, server.Service)

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	srv, err := server.New(ctx, cfg, reg, log)
	if err != nil {
		return err
	}
	return srv.Run(ctx)
}
