package handlers

import (
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bidding-platform/shared/models"
)

// Metrics are the gateway's Prometheus collectors. They are registered on
// an injected registry, so tests and several gateways in one process do
// not collide. Besides HTTP, they implement service.Metrics and
// nats.Metrics.
type Metrics struct {
	requests     *prometheus.CounterVec
	duration     *prometheus.HistogramVec
	bids         *prometheus.CounterVec
	prefiltered  *prometheus.CounterVec
	storeSeconds prometheus.Histogram
	storeBatch   prometheus.Histogram
	storeErrors  prometheus.Counter
	published    prometheus.Counter
	pubFailures  prometheus.Counter
	refused      *prometheus.CounterVec
	streamFull   prometheus.Gauge
	backlog      prometheus.Gauge

	// Children resolved once: WithLabelValues hashes and locks on every
	// call, which shows on the hot path.
	bidsBy    map[string]prometheus.Counter
	prefBy    [models.OutcomeIdempotencyConflict + 1]prometheus.Counter
	reqMu     sync.RWMutex
	reqBy     map[reqKey]reqChildren
	routeName sync.Map // last chi pattern -> full route pattern
}

type reqKey struct {
	route, method string
	status        int
}

type reqChildren struct {
	count    prometheus.Counter
	duration prometheus.Observer
}

// NewMetrics creates and registers the collectors.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_http_requests_total", Help: "HTTP requests by route, method and status.",
		}, []string{"route", "method", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "gateway_http_request_duration_seconds", Help: "HTTP request latency by route.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"route"}),
		bids: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_bids_total", Help: "Bid answers by outcome.",
		}, []string{"outcome"}),
		prefiltered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_prefilter_hits_total", Help: "Bids answered from the local price cache, without Redis.",
		}, []string{"outcome"}),
		storeSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "gateway_redis_seconds", Help: "Latency of one bid store call (one or more coalesced bids).",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}),
		storeBatch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "gateway_redis_batch_bids", Help: "Bids carried by one coalesced store call.",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128},
		}),
		storeErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gateway_redis_errors_total", Help: "Bid store calls that failed (Redis unavailable).",
		}),
		published: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gateway_events_published_total", Help: "Events acknowledged by JetStream and removed from the outbox.",
		}),
		pubFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gateway_publish_failures_total", Help: "JetStream publishes that failed; the relay retries them.",
		}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_publish_refused_total",
			Help: "JetStream publishes refused because the stream (or its storage) is full, by the limit named; the events wait in the outbox.",
		}, []string{"reason"}),
		streamFull: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gateway_stream_full",
			Help: "1 while the event stream refuses new events for lack of room (accepted bids wait in the outbox), else 0.",
		}),
		backlog: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gateway_outbox_backlog", Help: "Outbox entries not yet acknowledged by JetStream.",
		}),
	}
	reg.MustRegister(m.requests, m.duration, m.bids, m.prefiltered, m.storeSeconds, m.storeBatch,
		m.storeErrors, m.published, m.pubFailures, m.refused, m.streamFull, m.backlog)
	m.bidsBy = make(map[string]prometheus.Counter)
	for _, o := range []string{"accepted", "too_low", "not_found", "not_active", "idempotency_conflict", "unknown",
		"invalid", "unauthorized", "forbidden", "rate_limited", "unavailable", "internal"} {
		m.bidsBy[o] = m.bids.WithLabelValues(o)
	}
	for o := range m.prefBy {
		m.prefBy[o] = m.prefiltered.WithLabelValues(models.Outcome(o).String())
	}
	m.reqBy = make(map[reqKey]reqChildren)
	return m
}

func (m *Metrics) request(route, method string, status int, d time.Duration) {
	k := reqKey{route, methodLabel(method), status}
	m.reqMu.RLock()
	c, ok := m.reqBy[k]
	m.reqMu.RUnlock()
	if !ok {
		c = reqChildren{
			count:    m.requests.WithLabelValues(route, k.method, strconv.Itoa(status)),
			duration: m.duration.WithLabelValues(route),
		}
		m.reqMu.Lock()
		// Bounded: routes are chi patterns, methods and statuses few.
		if len(m.reqBy) < 4096 {
			m.reqBy[k] = c
		}
		m.reqMu.Unlock()
	}
	c.count.Inc()
	c.duration.Observe(d.Seconds())
}

// methodLabel keeps the method label to a fixed set: a client may send any
// token as a method, and each new one would be a new series for ever.
func methodLabel(method string) string {
	switch method {
	case http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch, http.MethodHead, http.MethodOptions:
		return method
	}
	return "other"
}

func (m *Metrics) bid(outcome string) {
	if c, ok := m.bidsBy[outcome]; ok {
		c.Inc()
		return
	}
	m.bids.WithLabelValues(outcome).Inc()
}

// Prefiltered implements service.Metrics.
func (m *Metrics) Prefiltered(o models.Outcome) {
	if int(o) >= 0 && int(o) < len(m.prefBy) {
		m.prefBy[o].Inc()
		return
	}
	m.prefiltered.WithLabelValues(o.String()).Inc()
}

// StoreCall implements service.Metrics.
func (m *Metrics) StoreCall(d time.Duration, bids int, err error) {
	m.storeSeconds.Observe(d.Seconds())
	m.storeBatch.Observe(float64(bids))
	if err != nil {
		m.storeErrors.Inc()
	}
}

// Published implements nats.Metrics.
func (m *Metrics) Published(n int) { m.published.Add(float64(n)) }

// PublishFailed implements nats.Metrics.
func (m *Metrics) PublishFailed(n int) { m.pubFailures.Add(float64(n)) }

// OutboxBacklog implements nats.Metrics.
func (m *Metrics) OutboxBacklog(n int64) { m.backlog.Set(float64(n)) }

// PublishRefused implements nats.Metrics. Reasons are a handful of fixed
// names, so the label stays bounded.
func (m *Metrics) PublishRefused(reason string) { m.refused.WithLabelValues(reason).Inc() }

// StreamFull implements nats.Metrics.
func (m *Metrics) StreamFull(full bool) {
	if full {
		m.streamFull.Set(1)
		return
	}
	m.streamFull.Set(0)
}
