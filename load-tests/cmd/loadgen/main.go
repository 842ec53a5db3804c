// Command loadgen drives contended bids at one hot item of a local gateway
// and prints requests/s, accepted/s, status counts and latency percentiles.
//
//	loadgen -url http://127.0.0.1:8080 -item hot -concurrency 64 -duration 10s -bid-mode climb
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/bidding-platform/load-tests/internal/loadgen"
	"github.com/bidding-platform/shared/models"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, out io.Writer) error {
	cfg := loadgen.DefaultConfig()
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.StringVar(&cfg.URL, "url", cfg.URL, "gateway base URL (loopback only)")
	fs.StringVar(&cfg.Item, "item", cfg.Item, "hot item id (created when missing)")
	fs.IntVar(&cfg.Users, "users", cfg.Users, "distinct user ids to bid as")
	fs.IntVar(&cfg.Concurrency, "concurrency", cfg.Concurrency, "workers, each with one request in flight")
	fs.DurationVar(&cfg.Duration, "duration", cfg.Duration, "longest run (at most 10m)")
	fs.Int64Var(&cfg.Requests, "requests", cfg.Requests, "stop after this many requests (0: run for -duration)")
	fs.StringVar(&cfg.Label, "strategy-label", cfg.Label, "name of the configuration under test, copied into the report")
	fs.StringVar(&cfg.Mode, "bid-mode", cfg.Mode, `"climb" (bid the lowest winning amount from the last answer) or "flood" (fixed or random amounts, mostly losers)`)
	fs.StringVar(&cfg.Client, "client", cfg.Client, `HTTP client: "raw" (minimal keep-alive HTTP/1.1, leaves more CPU to the target) or "net/http"`)
	fs.DurationVar(&cfg.Timeout, "timeout", cfg.Timeout, "per-request timeout")
	fs.Func("increment", "climb step when an answer has no min_next_bid (default 1.00)", moneyFlag(&cfg.Increment))
	fs.Func("flood-amount", "flood: bid exactly this amount (default: random)", moneyFlag(&cfg.FloodAmount))
	fs.Func("flood-spread", "flood: random amounts in [start price, start price + spread] (default 100.00)", moneyFlag(&cfg.FloodSpread))
	fs.Float64Var(&cfg.MaxShare, "max-share", cfg.MaxShare, "fraction of bids sent as maximum bids (max_amount), 1 to 10 increments above a plain bid's amount")
	fs.BoolVar(&cfg.CheckWins, "check-wins", cfg.CheckWins, "report amounts accepted more than once (two winners at one price); off for targets that accept everything")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}

	rep, err := loadgen.Run(ctx, cfg)
	if err != nil {
		return err
	}
	if *asJSON {
		err = rep.WriteJSON(out)
	} else {
		err = rep.WriteText(out)
	}
	if err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	if rep.Requests == 0 {
		return errors.New("no request was answered")
	}
	return nil
}

func moneyFlag(dst *models.Money) func(string) error {
	return func(s string) error {
		m, err := models.ParseMoney(s)
		if err != nil {
			return err
		}
		*dst = m
		return nil
	}
}
