// Package fanout measures the broadcast service from the outside: it opens
// many viewer connections to one item, publishes events to NATS at a fixed
// rate, and reports delivery latency (publish to receipt), loss, and the
// service's memory per connection read from its /metrics.
package fanout

import (
	"bufio"
	"bytes"
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

	gws "github.com/gorilla/websocket"
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
	Rate       float64 // events per second
	Duration   time.Duration
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
}

func (r Report) String() string {
	return fmt.Sprintf("viewers=%d rate=%d events=%d received=%d/%d not_received=%d out_of_order=%d p50=%s p99=%s max=%s "+
		"mem_per_conn_rss=%.1fKiB mem_per_conn_go=%.1fKiB (stacks %.1fKiB) slow_dropped=%.0f connect=%s",
		r.Viewers, int(float64(r.Events)/r.RunTime.Seconds()+0.5), r.Events, r.Received, r.Expected, r.Expected-r.Received, r.OutOfOrder,
		r.P50.Round(100*time.Microsecond), r.P99.Round(100*time.Microsecond), r.Max.Round(100*time.Microsecond),
		r.RSSPerConn/1024, r.GoPerConn/1024, r.StackPerConn/1024, r.SlowDropped, r.ConnectTime.Round(time.Millisecond))
}

type viewer struct {
	conn    *gws.Conn
	lat     []time.Duration
	last    uint64
	bad     int64
	gotLast chan struct{}
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
	if _, err := stream.Ensure(ctx, js); err != nil {
		return rep, err
	}

	before, err := scrape(ctx, cfg.MetricsURL)
	if err != nil {
		return rep, err
	}
	events := int(cfg.Rate * cfg.Duration.Seconds())
	rep.Events = events
	viewers := make([]*viewer, cfg.Viewers)
	start := time.Now()
	if err := connectAll(ctx, cfg, viewers, events); err != nil {
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
	n := float64(cfg.Viewers)
	rep.RSSPerConn = (idle["process_resident_memory_bytes"] - before["process_resident_memory_bytes"]) / n
	goMem := func(m map[string]float64) float64 {
		return m["go_memstats_heap_inuse_bytes"] + m["go_memstats_stack_inuse_bytes"]
	}
	rep.GoPerConn = (goMem(idle) - goMem(before)) / n
	rep.StackPerConn = (idle["go_memstats_stack_inuse_bytes"] - before["go_memstats_stack_inuse_bytes"]) / n

	var wg sync.WaitGroup
	for _, v := range viewers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v.read(uint64(events))
		}()
	}
	start = time.Now()
	if err := publish(ctx, js, cfg.ItemID, events, cfg.Rate); err != nil {
		return rep, err
	}
	rep.RunTime = time.Since(start)
	// Everything published should arrive promptly; what has not after a
	// grace period counts as lost.
	grace := time.NewTimer(10 * time.Second)
	defer grace.Stop()
wait:
	for _, v := range viewers {
		select {
		case <-v.gotLast:
		case <-grace.C:
			break wait
		}
	}
	for _, v := range viewers {
		v.conn.Close()
	}
	wg.Wait()
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
	after, err := scrape(ctx, cfg.MetricsURL)
	if err == nil {
		rep.SlowDropped = after["broadcast_slow_viewers_dropped_total"] - before["broadcast_slow_viewers_dropped_total"]
	}
	return rep, nil
}

func connectAll(ctx context.Context, cfg Config, viewers []*viewer, events int) error {
	var next atomic.Int64
	errs := make(chan error, 1)
	var wg sync.WaitGroup
	d := gws.Dialer{HandshakeTimeout: 30 * time.Second, ReadBufferSize: 1024, WriteBufferSize: 256}
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(viewers) || ctx.Err() != nil {
					return
				}
				c, resp, err := d.DialContext(ctx, cfg.WSURL+"/ws?item_id="+cfg.ItemID, nil)
				if resp != nil && resp.Body != nil {
					resp.Body.Close()
				}
				if err == nil {
					_, _, err = c.ReadMessage() // the snapshot
				}
				if err != nil {
					select {
					case errs <- fmt.Errorf("viewer %d: %w", i, err):
					default:
					}
					return
				}
				viewers[i] = &viewer{conn: c, lat: make([]time.Duration, 0, events), gotLast: make(chan struct{})}
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

var (
	seqKey = []byte(`"seq":`)
	tsKey  = []byte(`"timestamp":"`)
	bidKey = []byte(`"type":"bid"`)
)

// read records the latency of each bid event. It picks the two fields out
// of the JSON by hand: decoding 100,000 messages a second with reflection
// would measure the load program rather than the service.
func (v *viewer) read(last uint64) {
	closed := false
	for {
		_, data, err := v.conn.ReadMessage()
		now := time.Now()
		if err != nil {
			return
		}
		if !bytes.Contains(data, bidKey) {
			continue
		}
		seq, ts, ok := fields(data)
		if !ok {
			v.bad++
			continue
		}
		if seq != v.last+1 {
			v.bad++
		}
		v.last = seq
		v.lat = append(v.lat, now.Sub(ts))
		if seq == last && !closed {
			closed = true
			close(v.gotLast)
		}
	}
}

func fields(data []byte) (seq uint64, ts time.Time, ok bool) {
	i := bytes.Index(data, seqKey)
	j := bytes.Index(data, tsKey)
	if i < 0 || j < 0 {
		return 0, time.Time{}, false
	}
	rest := data[i+len(seqKey):]
	end := bytes.IndexAny(rest, ",}")
	seq, err := strconv.ParseUint(string(rest[:end]), 10, 64)
	if err != nil {
		return 0, time.Time{}, false
	}
	rest = data[j+len(tsKey):]
	end = bytes.IndexByte(rest, '"')
	ts, err = time.Parse(time.RFC3339Nano, string(rest[:end]))
	return seq, ts, err == nil
}

// publish sends events at the given rate on a ticker, like a gateway
// accepting bids; each carries its publish time as timestamp.
func publish(ctx context.Context, js jetstream.JetStream, itemID string, n int, rate float64) error {
	tick := time.NewTicker(time.Duration(float64(time.Second) / rate))
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
