package chaos

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Run builds the three services, starts the system, runs the baseline and
// every fault under steady bids and viewers, reconciles, and returns the
// report. It fails tb only when the system cannot be built or started, or
// a test server (Redis, NATS, PostgreSQL) cannot be brought back; what the
// faults break is in the report's Problems.
func Run(ctx context.Context, tb testing.TB, cfg Config) *Report {
	tb.Helper()
	if err := cfg.validate(); err != nil {
		tb.Fatalf("chaos config: %v", err)
	}
	rep := &Report{Started: time.Now(), Config: cfg}
	wd, err := os.Getwd()
	if err != nil {
		tb.Fatalf("%v", err)
	}
	root, err := findRoot(wd)
	if err != nil {
		tb.Fatalf("%v", err)
	}
	tb.Logf("building the services in %s", root)
	bins, err := buildServices(tb, root, tb.TempDir())
	if err != nil {
		tb.Fatalf("%v", err)
	}
	logDir := cfg.LogDir
	if logDir == "" {
		logDir = tb.TempDir()
	}
	tb.Logf("starting Redis, a three-node NATS cluster, PostgreSQL and the services (logs in %s)", logDir)
	st := startStack(ctx, tb, cfg, bins, logDir)
	js, err := jetstream.New(st.nats.Conn())
	if err != nil {
		tb.Fatalf("jetstream: %v", err)
	}
	r := &run{cfg: cfg, st: st, rep: rep, js: js, outages: map[int][][2]time.Time{}, tb: tb}
	r.logf("system ready")

	var items []string
	for i := range cfg.Items {
		id := fmt.Sprintf("chaos_lot_%d", i+1)
		if err := r.createItem(ctx, st.gateways[i%len(st.gateways)], id); err != nil {
			tb.Fatalf("create item %s: %v", id, err)
		}
		items = append(items, id)
	}
	r.logf("items created")
	for _, item := range items {
		for _, b := range st.broadcasts {
			r.viewers = append(r.viewers, startViewer(item, b))
		}
	}
	defer func() {
		for _, v := range r.viewers {
			v.stop()
		}
	}()
	err = waitFor(ctx, cfg.Deadline, func() error {
		for _, v := range r.viewers {
			if err := v.readySince(rep.Started); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		tb.Fatalf("viewers: %v", err)
	}

	r.logf("viewers watching; bidding")
	r.load = newLoad(cfg, st.gateways, items)
	r.load.start()
	defer r.load.finish()
	r.runFaults(ctx)
	r.load.finish()
	r.logf("load stopped after %d bids; reconciling", len(r.load.snapshot()))
	r.reconcile(ctx, tb)
	rep.Finished = time.Now()
	if len(rep.Problems) > 0 {
		rep.Logs = st.logTails()
	}
	return rep
}

// logf logs progress with the time of day, to read beside the services'
// logs.
func (r *run) logf(format string, args ...any) {
	r.tb.Helper()
	r.tb.Logf("%s %s", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
}

// createClient waits longer than probes: a creation is recorded in the
// replicated event log first, which a busy cluster can take seconds to do.
var createClient = &http.Client{Timeout: 30 * time.Second}

// createItem creates an active item starting at 1.00 that rises by 1.00.
func (r *run) createItem(ctx context.Context, g *service, id string) error {
	body := fmt.Sprintf(`{"id":%q,"name":"Chaos lot %s","starting_price":%s,"min_increment":%s}`, id, id, startingPrice, minIncrement)
	return waitFor(ctx, r.cfg.Deadline, func() (err error) {
		start := time.Now()
		defer func() {
			if err != nil {
				r.logf("create item %s on %s: %v after %v", id, g.name, err, time.Since(start).Round(time.Millisecond))
			}
		}()
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, g.url()+"/api/v1/items", strings.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := createClient.Do(req)
		if err != nil {
			return err
		}
		msg, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		switch resp.StatusCode {
		case http.StatusCreated:
			return nil
		case http.StatusConflict:
			// An earlier try that timed out may have recorded the item
			// in the event log, from which the gateway serves it.
			if _, err := getItem(ctx, g, id); err == nil {
				return nil
			}
		}
		return fmt.Errorf("status %d: %s", resp.StatusCode, msg)
	})
}
