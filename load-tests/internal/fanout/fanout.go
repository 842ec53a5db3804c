// Package fanout measures the broadcast service from the outside: it opens
// many viewer connections to one item, publishes events to NATS at a fixed
// rate, and reports delivery latency (publish to receipt), loss, and the
// service's memory per connection read from its /metrics.
package fanout

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/bidding-platform/shared/models"
	"github.com/bidding-platform/shared/stream"
)

// Config describes one run.
type Config struct {
	WSURL      string // ws://host:8081
	MetricsURL string // http://host:8081/metrics
	NATSURL    string
	ItemID     string
	Viewers    int
	// Users is how many personal channels (/ws/users/{id}) to open beside
	// the item's viewers. Each event then outbids one of them in turn, so
	// the run also measures the outbid notice's delivery.
	Users    int
	Rate     float64 // events per second
	Duration time.Duration
	// Settle is how long idle connections sit before memory is read.
	Settle time.Duration
}

// Report is the outcome of a run.
type Report struct {
	Viewers, Events         int
	Expected, Received      int64
	OutOfOrder              int64
	P50, P99, Max           time.Duration
	RSSPerConn, GoPerConn   float64 // bytes
	StackPerConn            float64 // bytes, the goroutine stacks' part of GoPerConn
	SlowDropped             float64
	ConnectTime, RunTime    time.Duration
	ServiceRSS, ServiceHeap float64 // bytes, with all viewers connected
	// ServiceCPU and LoadCPU are the cores the service and this program
	// used from the first publish until every viewer had every event.
	ServiceCPU, LoadCPU float64
	// OtherCPU is what the rest of the machine used meanwhile: a run
	// that shared the cores with a build is not comparable.
	OtherCPU float64
	// Notices is the personal channels' part: outbid notices expected
	// (one per event), received, out of order, and their delivery time
	// from the outbidding event's publish.
	Notices NoticeReport
}

// NoticeReport is what the users' personal channels received in a run.
type NoticeReport struct {
	Users                          int
	Expected, Received, OutOfOrder int64
	P50, P99, Max                  time.Duration
}

func (r Report) String() string {
	return fmt.Sprintf("viewers=%d rate=%d events=%d received=%d/%d not_received=%d out_of_order=%d p50=%s p99=%s max=%s "+
		"mem_per_conn_rss=%.1fKiB mem_per_conn_go=%.1fKiB (stacks %.1fKiB) slow_dropped=%.0f connect=%s service_cpu=%.2f load_cpu=%.2f other_cpu=%.2f",
		r.Viewers, int(float64(r.Events)/r.RunTime.Seconds()+0.5), r.Events, r.Received, r.Expected, r.Expected-r.Received, r.OutOfOrder,
		r.P50.Round(100*time.Microsecond), r.P99.Round(100*time.Microsecond), r.Max.Round(100*time.Microsecond),
		r.RSSPerConn/1024, r.GoPerConn/1024, r.StackPerConn/1024, r.SlowDropped, r.ConnectTime.Round(time.Millisecond), r.ServiceCPU, r.LoadCPU, r.OtherCPU)
}

// Run performs one measurement.
func Run(ctx context.Context, cfg Config) (Report, error) {
	rep := Report{Viewers: cfg.Viewers}
	nc, err := nats.Connect(cfg.NATSURL)
	if err != nil {
		return rep, fmt.Errorf("connect nats: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return rep, err
	}
	if _, err := stream.Ensure(ctx, js, 1); err != nil {
		return rep, err
	}

	before, err := scrape(ctx, cfg.MetricsURL)
	if err != nil {
		return rep, err
	}
	events := int(cfg.Rate * cfg.Duration.Seconds())
	rep.Events = events
	viewers := make([]*viewer, cfg.Viewers)
	users := make([]*viewer, cfg.Users)
	start := time.Now()
	err = connectAll(ctx, viewers, func(ctx context.Context, _ int) (*viewer, error) {
		return dial(ctx, cfg.WSURL, cfg.ItemID, events)
	})
	if err == nil {
		err = connectAll(ctx, users, func(ctx context.Context, i int) (*viewer, error) {
			return dialUser(ctx, cfg.WSURL, userID(cfg.ItemID, i), events/max(cfg.Users, 1)+1)
		})
	}
	if err != nil {
		for _, v := range append(viewers, users...) {
			if v != nil {
				v.conn.Close()
			}
		}
		return rep, err
	}
	rep.ConnectTime = time.Since(start)
	select {
	case <-time.After(cfg.Settle):
	case <-ctx.Done():
		return rep, ctx.Err()
	}
	idle, err := scrape(ctx, cfg.MetricsURL)
	if err != nil {
		return rep, err
	}
	rep.ServiceRSS, rep.ServiceHeap = idle["process_resident_memory_bytes"], idle["go_memstats_heap_inuse_bytes"]
	n := float64(cfg.Viewers + cfg.Users)
	rep.RSSPerConn = (idle["process_resident_memory_bytes"] - before["process_resident_memory_bytes"]) / n
	goMem := func(m map[string]float64) float64 {
		return m["go_memstats_heap_inuse_bytes"] + m["go_memstats_stack_inuse_bytes"]
	}
	rep.GoPerConn = (goMem(idle) - goMem(before)) / n
	rep.StackPerConn = (idle["go_memstats_stack_inuse_bytes"] - before["go_memstats_stack_inuse_bytes"]) / n

	r := newRun(events, cfg.Viewers, cfg.Users)
	stop := make(chan struct{})
	wait, err := readAll(append(viewers, users...), r, stop)
	if err != nil {
		return rep, fmt.Errorf("read viewers: %w", err)
	}
	start = time.Now()
	cpu0, all0 := cpuTime(), machineTime()
	if err := publish(ctx, js, cfg, events, r); err != nil {
		close(stop)
		wait()
		return rep, err
	}
	rep.RunTime = time.Since(start)
	// Everything published should arrive promptly; what has not after a
	// grace period counts as lost.
	grace := time.NewTimer(10 * time.Second)
	defer grace.Stop()
	for _, done := range []chan struct{}{r.allDone, r.noticesDone} {
		select {
		case <-done:
		case <-grace.C:
		}
	}
	elapsed := time.Since(start).Seconds()
	rep.LoadCPU = (cpuTime() - cpu0).Seconds() / elapsed
	machine := (machineTime() - all0).Seconds() / elapsed
	if busy, err := scrape(ctx, cfg.MetricsURL); err == nil {
		rep.ServiceCPU = (busy["process_cpu_seconds_total"] - idle["process_cpu_seconds_total"]) / elapsed
	}
	rep.OtherCPU = max(0, machine-rep.ServiceCPU-rep.LoadCPU)
	close(stop)
	wait()
	var all []time.Duration
	for _, v := range viewers {
		all = append(all, v.lat...)
		rep.OutOfOrder += v.bad
	}
	rep.Expected = int64(events) * int64(cfg.Viewers)
	rep.Received = int64(len(all))
	slices.Sort(all)
	if len(all) > 0 {
		rep.P50 = all[len(all)/2]
		rep.P99 = all[len(all)*99/100]
		rep.Max = all[len(all)-1]
	}
	rep.Notices = noticeReport(users, events)
	after, err := scrape(ctx, cfg.MetricsURL)
	if err == nil {
		rep.SlowDropped = after["broadcast_slow_viewers_dropped_total"] - before["broadcast_slow_viewers_dropped_total"]
	}
	return rep, nil
}

func noticeReport(users []*viewer, events int) NoticeReport {
	n := NoticeReport{Users: len(users)}
	if len(users) == 0 {
		return n
	}
	var all []time.Duration
	for _, u := range users {
		all = append(all, u.lat...)
		n.OutOfOrder += u.bad
	}
	n.Expected, n.Received = int64(events), int64(len(all))
	slices.Sort(all)
	if len(all) > 0 {
		n.P50, n.P99, n.Max = all[len(all)/2], all[len(all)*99/100], all[len(all)-1]
	}
	return n
}

// userID names the run's i-th user, fresh for each item so that runs do
// not share users.
func userID(itemID string, i int) string { return fmt.Sprintf("%s_u%d", itemID, i) }

func connectAll(ctx context.Context, viewers []*viewer, open func(ctx context.Context, i int) (*viewer, error)) error {
	var next atomic.Int64
	errs := make(chan error, 1)
	var wg sync.WaitGroup
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(viewers) || ctx.Err() != nil {
					return
				}
				v, err := open(ctx, i)
				if err != nil {
					select {
					case errs <- fmt.Errorf("viewer %d: %w", i, err):
					default:
					}
					return
				}
				viewers[i] = v
			}
		}()
	}
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
		return nil
	}
}

// publish sends events at the given rate on a ticker, like a gateway
// accepting bids; each carries its publish time as timestamp. With users,
// each event takes the lead from the next of them in turn.
func publish(ctx context.Context, js jetstream.JetStream, cfg Config, n int, r *run) error {
	itemID := cfg.ItemID
	tick := time.NewTicker(time.Duration(float64(time.Second) / cfg.Rate))
	defer tick.Stop()
	for seq := uint64(1); seq <= uint64(n); seq++ {
		select {
		case <-tick.C:
		case <-ctx.Done():
			return ctx.Err()
		}
		now := time.Now().UTC()
		ev := models.Event{
			Type: models.EventBid, EventID: models.NewEventID(), ItemID: itemID, BidID: models.NewBidID(),
			UserID: "load_user", Amount: models.Money(100 * seq), PreviousBid: models.Money(100 * (seq - 1)),
			Timestamp: now, Seq: seq, BidCount: int64(seq),
		}
		if cfg.Users > 0 {
			ev.PreviousBidderID = userID(itemID, int(seq-1)%cfg.Users)
		}
		r.published[seq].Store(now.UnixNano())
		data, err := json.Marshal(ev)
		if err != nil {
			return err
		}
		if _, err := js.PublishAsync(stream.Subject(itemID), data, jetstream.WithMsgID(ev.EventID)); err != nil {
			return fmt.Errorf("publish seq %d: %w", seq, err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
		return nil
	case <-time.After(10 * time.Second):
		return errors.New("publishes not acknowledged within 10s")
	}
}

// scrape reads the unlabelled samples of a Prometheus text endpoint.
func scrape(ctx context.Context, url string) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", url, err)
	}
	defer resp.Body.Close()
	out := make(map[string]float64)
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' || strings.Contains(line, "{") {
			continue
		}
		name, val, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		if f, err := strconv.ParseFloat(strings.TrimSpace(val), 64); err == nil {
			out[name] = f
		}
	}
	return out, sc.Err()
}
