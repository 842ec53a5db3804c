package websocket

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the hub's Prometheus metrics, registered on an injected
// registry so tests can read them from their own.
type Metrics struct {
	connections   prometheus.Gauge
	rejected      prometheus.Counter
	delivered     prometheus.Counter
	slow          prometheus.Counter
	latency       prometheus.Histogram
	subscriptions prometheus.Gauge
	recovered     prometheus.Counter
	missed        prometheus.Counter
}

// NewMetrics creates the metrics and registers them on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		connections: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "broadcast_connections", Help: "Open viewer WebSocket connections.",
		}),
		rejected: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "broadcast_connections_rejected_total", Help: "Viewer connections refused by MAX_CONNECTIONS.",
		}),
		delivered: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "broadcast_messages_delivered_total", Help: "Messages written to viewers.",
		}),
		slow: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "broadcast_slow_viewers_dropped_total", Help: "Viewers disconnected because their send queue was full.",
		}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "broadcast_delivery_latency_seconds",
			Help:    "Time from an event's acceptance (its timestamp) to its write to a viewer.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}),
		subscriptions: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "broadcast_item_subscriptions", Help: "Items with a live NATS subscription on this instance.",
		}),
		recovered: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "broadcast_events_recovered_total", Help: "Events fetched from JetStream to fill a gap in the live stream.",
		}),
		missed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "broadcast_events_missed_total", Help: "Events announced to viewers as missed because JetStream did not have them.",
		}),
	}
	reg.MustRegister(m.connections, m.rejected, m.delivered, m.slow, m.latency, m.subscriptions, m.recovered, m.missed)
	return m
}
