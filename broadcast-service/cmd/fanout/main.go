// Command fanout measures a running broadcast service: delivery latency from
// publish to receipt for many viewers of one item, loss, and memory per
// connection. See broadcast-service/README.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/bidding-platform/broadcast-service/internal/fanout"
	"github.com/bidding-platform/shared/models"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "fanout:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	var cfg fanout.Config
	var viewers, rates string
	flag.StringVar(&cfg.WSURL, "ws", "ws://127.0.0.1:8081", "broadcast service WebSocket base URL")
	flag.StringVar(&cfg.MetricsURL, "metrics", "http://127.0.0.1:8081/metrics", "broadcast service metrics URL")
	flag.StringVar(&cfg.NATSURL, "nats", "nats://127.0.0.1:4222", "NATS URL to publish events to")
	flag.StringVar(&viewers, "viewers", "1000", "comma-separated viewer counts")
	flag.StringVar(&rates, "rates", "10", "comma-separated events per second")
	flag.DurationVar(&cfg.Duration, "duration", 20*time.Second, "publishing time per run")
	flag.DurationVar(&cfg.Settle, "settle", 3*time.Second, "idle time before reading memory")
	cpuProfile := flag.String("cpuprofile", "", "write the load program's own CPU profile here")
	flag.Parse()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	fmt.Println("| viewers | events/s (asked/achieved) | events | delivered | not received in 10 s | out of order | p50 | p99 | max | service RSS/conn | Go heap+stack/conn | service CPU | load CPU |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, vs := range strings.Split(viewers, ",") {
		for _, rs := range strings.Split(rates, ",") {
			c := cfg
			if _, err := fmt.Sscan(vs, &c.Viewers); err != nil {
				return fmt.Errorf("viewers %q: %w", vs, err)
			}
			if _, err := fmt.Sscan(rs, &c.Rate); err != nil {
				return fmt.Errorf("rate %q: %w", rs, err)
			}
			// A fresh item per run, so runs do not share history.
			c.ItemID = "fanout_" + strings.TrimPrefix(models.NewEventID(), "evt_")
			rep, err := fanout.Run(ctx, c)
			if err != nil {
				return fmt.Errorf("%d viewers at %s/s: %w", c.Viewers, rs, err)
			}
			fmt.Fprintln(os.Stderr, rep)
			fmt.Printf("| %d | %s / %.0f | %d | %d | %d | %d | %s | %s | %s | %.1f KiB | %.1f KiB | %.2f | %.2f |\n",
				rep.Viewers, rs, float64(rep.Events)/rep.RunTime.Seconds(), rep.Events, rep.Received, rep.Expected-rep.Received, rep.OutOfOrder,
				rep.P50.Round(100*time.Microsecond), rep.P99.Round(100*time.Microsecond), rep.Max.Round(100*time.Microsecond),
				rep.RSSPerConn/1024, rep.GoPerConn/1024, rep.ServiceCPU, rep.LoadCPU)
			// Let the service notice the closed connections before the next run.
			time.Sleep(2 * time.Second)
		}
	}
	return nil
}
