// Command api-gateway serves the bidding HTTP API.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/bidding-platform/api-gateway/internal/app"
	"github.com/bidding-platform/shared/config"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, app.Service+":", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	cfg, err := app.LoadConfig(config.FromOS())
	if err != nil {
		return err
	}
	a, err := app.New(ctx, cfg, cfg.Log.NewLogger(os.Stderr, app.Service))
	if err != nil {
		return err
	}
	return a.Run(ctx)
}
