// Command chaos is the long form of the fault-and-reconcile suite (make
// chaos): it builds the services, runs the whole system on free loopback
// ports, kills each component in turn under steady bids and viewers, and
// reconciles every answer with JetStream, the archive and the viewers. The
// report goes to results/chaos-<time>/report.md and to stdout; the exit
// status is 1 if any promise was broken.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/bidding-platform/load-tests/internal/chaos"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	cfg := chaos.Long()
	short := flag.Bool("short", false, "the short form's settings (as the test in make test)")
	results := flag.String("results", "results", "folder for chaos-<time>/ with report.md and the services' logs")
	items := flag.Int("items", 0, "items bid on (default from the form)")
	bidders := flag.Int("bidders", 0, "concurrent bidders, at most 99 (default from the form)")
	interval := flag.Duration("interval", 0, "pause between one bidder's bids (default from the form)")
	steady := flag.Duration("steady", 0, "steady load before the first fault and after each recovery (default from the form)")
	down := flag.Duration("down", -1, "how long a killed component stays down (default from the form)")
	flag.Parse()
	if *short {
		cfg = chaos.Short()
	}
	if *items > 0 {
		cfg.Items = *items
	}
	if *bidders > 0 {
		cfg.Bidders = *bidders
	}
	if *interval > 0 {
		cfg.BidInterval = *interval
	}
	if *steady > 0 {
		cfg.Steady = *steady
	}
	if *down >= 0 {
		cfg.Down = *down
	}

	dir, err := filepath.Abs(filepath.Join(*results, "chaos-"+time.Now().UTC().Format("20060102-150405")))
	if err != nil {
		return err
	}
	cfg.LogDir = filepath.Join(dir, "logs")
	if err := os.MkdirAll(cfg.LogDir, 0o755); err != nil {
		return err
	}
	rep, err := chaos.Main(ctx, cfg, os.Stderr)
	if err != nil {
		return fmt.Errorf("%w (services' logs in %s)", err, cfg.LogDir)
	}
	md := rep.Markdown()
	path := filepath.Join(dir, "report.md")
	if err := os.WriteFile(path, []byte(md), 0o644); err != nil {
		return err
	}
	fmt.Print(md)
	fmt.Fprintf(os.Stderr, "report: %s; services' logs: %s\n", path, cfg.LogDir)
	if len(rep.Problems) > 0 {
		return fmt.Errorf("%d problems", len(rep.Problems))
	}
	return nil
}
