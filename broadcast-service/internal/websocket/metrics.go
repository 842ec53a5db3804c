package websocket

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the hub's Prometheus metrics, registered on an injected
// registry so tests can read them from their own.
type Metrics struct {
	connections   prometheus.Gauge
	rejected      *prometheus.CounterVec
	delivered     prometheus.Counter
	slow          prometheus.Counter
	latency       *latencyHistogram
	subscriptions prometheus.Gauge
	recovered     prometheus.Counter
	missed        prometheus.Counter
	holes         prometheus.Gauge
	// since_seq replays: running (at most MaxCatchupReplays), waiting for a
	// slot, and viewers sent away after CatchupWait without one.
	replaysRunning prometheus.Gauge
	replaysWaiting prometheus.Gauge
	replaysRefused prometheus.Counter
}

// NewMetrics creates the metrics and registers them on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		connections: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "broadcast_connections", Help: "Open viewer WebSocket connections.",
		}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "broadcast_connections_rejected_total",
			Help: "Viewer connections refused before the upgrade, by reason: max_connections (MAX_CONNECTIONS) or per_ip (WS_MAX_CONNS_PER_IP).",
		}, []string{"reason"}),
		delivered: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "broadcast_messages_delivered_total", Help: "Messages written to viewers.",
		}),
		slow: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "broadcast_slow_viewers_dropped_total", Help: "Viewers disconnected because their send queue was full.",
		}),
		latency: &latencyHistogram{desc: prometheus.NewDesc(
			"broadcast_delivery_latency_seconds",
			"Time from an event's acceptance (its timestamp) to its write to a viewer.",
			nil, nil,
		)},
		subscriptions: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "broadcast_item_subscriptions", Help: "Items with a live NATS subscription on this instance.",
		}),
		recovered: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "broadcast_events_recovered_total", Help: "Events fetched from JetStream to fill a gap in the live stream.",
		}),
		holes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "broadcast_holes_open", Help: "Items whose live events wait for a missing seq to appear in JetStream.",
		}),
		missed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "broadcast_events_missed_total", Help: "Events announced to viewers as missed because JetStream did not have them.",
		}),
		replaysRunning: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "broadcast_catchup_replays", Help: "since_seq replays reading JetStream now (at most WS_MAX_CATCHUP_REPLAYS).",
		}),
		replaysWaiting: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "broadcast_catchup_replays_waiting", Help: "Resuming viewers waiting for a catch-up replay slot.",
		}),
		replaysRefused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "broadcast_catchup_replays_refused_total", Help: "Resuming viewers closed with 4013 because no replay slot came free within WS_CATCHUP_WAIT.",
		}),
	}
	// Both reasons are shown from the start, so a rate over them works
	// before the first refusal.
	for _, r := range []string{reasonInstanceFull, reasonAddrFull} {
		m.rejected.WithLabelValues(r)
	}
	reg.MustRegister(m.connections, m.rejected, m.delivered, m.slow, m.latency, m.subscriptions, m.recovered, m.missed, m.holes,
		m.replaysRunning, m.replaysWaiting, m.replaysRefused)
	return m
}

// latencyBuckets are the delivery latency histogram's upper bounds, in
// seconds.
var latencyBuckets = [...]float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}

// latencyBounds are latencyBuckets as durations, so observing compares
// integers.
var latencyBounds = func() (b [len(latencyBuckets)]time.Duration) {
	for i, s := range latencyBuckets {
		b[i] = time.Duration(s * float64(time.Second))
	}
	return b
}()

// latencyBatch collects one goroutine's observations without atomics or
// locks; the histogram takes them in one step. An event reaches every
// viewer, so observing each write on a shared histogram would make all
// fan-out goroutines contend on it 10,000 times per event.
type latencyBatch struct {
	counts [len(latencyBuckets) + 1]uint64 // the last one is +Inf
	sum    time.Duration
	n      uint64
}

func (b *latencyBatch) observe(d time.Duration) {
	i := 0
	for i < len(latencyBounds) && d > latencyBounds[i] {
		i++
	}
	b.counts[i]++
	b.sum += d
	b.n++
}

// latencyHistogram is a Prometheus histogram fed by batches.
type latencyHistogram struct {
	desc   *prometheus.Desc
	mu     sync.Mutex
	counts [len(latencyBuckets) + 1]uint64
	sum    float64 // seconds
}

// add moves b's observations into h and resets b.
func (h *latencyHistogram) add(b *latencyBatch) {
	if b.n == 0 {
		return
	}
	h.mu.Lock()
	for i, n := range b.counts {
		h.counts[i] += n
	}
	h.sum += b.sum.Seconds()
	h.mu.Unlock()
	*b = latencyBatch{}
}

func (h *latencyHistogram) Describe(ch chan<- *prometheus.Desc) { ch <- h.desc }

func (h *latencyHistogram) Collect(ch chan<- prometheus.Metric) {
	buckets := make(map[float64]uint64, len(latencyBuckets))
	h.mu.Lock()
	var cum uint64
	for i, ub := range latencyBuckets {
		cum += h.counts[i]
		buckets[ub] = cum
	}
	count, sum := cum+h.counts[len(latencyBuckets)], h.sum
	h.mu.Unlock()
	ch <- prometheus.MustNewConstHistogram(h.desc, count, sum, buckets)
}
