// Command fanout measures a running broadcast service: delivery latency from
// publish to receipt for many viewers of one item, loss, and memory per
// connection. See load-tests/README.md.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/bidding-platform/load-tests/internal/fanout"
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
	flag.IntVar(&cfg.Users, "users", 0, "also open this many personal channels (/ws/users/{id}); each event outbids one of them in turn")
	flag.StringVar(&rates, "rates", "10", "comma-separated events per second")
	flag.DurationVar(&cfg.Duration, "duration", 20*time.Second, "publishing time per run")
	flag.DurationVar(&cfg.Settle, "settle", 3*time.Second, "idle time before reading memory")
	cpuProfile := flag.String("cpuprofile", "", "write the load program's own CPU profile here")
	withFloor := flag.Bool("floor", false, "also run every row against the floor server, and give the service's p99 as a multiple of the floor's")
	serveFloor := flag.String("serve-floor", "", "be the floor server on this address (used by -floor)")
	flag.Parse()
	if *serveFloor != "" {
		return runFloor(ctx, *serveFloor, cfg.NATSURL)
	}
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
	servers := []server{{name: "service", cfg: cfg}}
	if *withFloor {
		addr, stop, err := startFloor(cfg.NATSURL)
		if err != nil {
			return fmt.Errorf("start floor: %w", err)
		}
		defer stop()
		floor := cfg
		floor.WSURL, floor.MetricsURL = "ws://"+addr, "http://"+addr+"/metrics"
		floor.Users = 0 // the floor has no personal channels
		// The floor goes first, so each service row can give its ratio.
		servers = append([]server{{name: "floor", cfg: floor}}, servers...)
	}
	fmt.Println("| server | viewers | events/s (asked/achieved) | events | delivered | not received in 10 s | out of order | p50 | p99 | max | server RSS/conn | Go heap+stack/conn | server CPU | load CPU | p99 ÷ floor p99 |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, vs := range strings.Split(viewers, ",") {
		for _, rs := range strings.Split(rates, ",") {
			var floorP99 time.Duration
			for _, srv := range servers {
				c := srv.cfg
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
					return fmt.Errorf("%s, %d viewers at %s/s: %w", srv.name, c.Viewers, rs, err)
				}
				fmt.Fprintln(os.Stderr, srv.name, rep)
				ratio := ""
				if srv.name == "floor" {
					floorP99 = rep.P99
				} else if floorP99 > 0 {
					ratio = fmt.Sprintf("%.2f", float64(rep.P99)/float64(floorP99))
				}
				fmt.Printf("| %s | %d | %s / %.0f | %d | %d | %d | %d | %s | %s | %s | %.1f KiB | %.1f KiB | %.2f | %.2f | %s |\n",
					srv.name, rep.Viewers, rs, float64(rep.Events)/rep.RunTime.Seconds(), rep.Events, rep.Received, rep.Expected-rep.Received, rep.OutOfOrder,
					rep.P50.Round(100*time.Microsecond), rep.P99.Round(100*time.Microsecond), rep.Max.Round(100*time.Microsecond),
					rep.RSSPerConn/1024, rep.GoPerConn/1024, rep.ServiceCPU, rep.LoadCPU, ratio)
				if n := rep.Notices; n.Users > 0 {
					fmt.Printf("| %s, personal channel | %d users | %s / %.0f | %d | %d | %d | %d | %s | %s | %s | | | | | |\n",
						srv.name, n.Users, rs, float64(rep.Events)/rep.RunTime.Seconds(), n.Expected, n.Received, n.Expected-n.Received, n.OutOfOrder,
						n.P50.Round(100*time.Microsecond), n.P99.Round(100*time.Microsecond), n.Max.Round(100*time.Microsecond))
				}
				// Let the server notice the closed connections before the next run.
				time.Sleep(2 * time.Second)
			}
		}
	}
	return nil
}

type server struct {
	name string
	cfg  fanout.Config
}

// startFloor runs the floor server as a child process, so that, like the
// service, it has a process of its own to be measured by.
func startFloor(natsURL string) (addr string, stop func(), err error) {
	self, err := os.Executable()
	if err != nil {
		return "", nil, err
	}
	cmd := exec.Command(self, "-serve-floor", "127.0.0.1:0", "-nats", natsURL)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return "", nil, err
	}
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	stop = func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		stop()
		return "", nil, fmt.Errorf("floor did not start: %w", err)
	}
	return strings.TrimSpace(line), stop, nil
}

// runFloor serves as the floor until ctx ends; its first line on standard
// output is the address it listens on.
func runFloor(ctx context.Context, addr, natsURL string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	f, err := fanout.NewFloor(natsURL)
	if err != nil {
		ln.Close()
		return err
	}
	fmt.Println(ln.Addr())
	served := make(chan error, 1)
	go func() { served <- f.Serve(ln) }()
	select {
	case <-ctx.Done():
	case err := <-served:
		f.Close()
		return err
	}
	return errors.Join(f.Close(), <-served)
}
