package consumer

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the consumer's Prometheus series, registered on a registry
// the caller owns so tests can use a fresh one.
type Metrics struct {
	batches      *prometheus.CounterVec
	rows         prometheus.Counter
	duplicates   prometheus.Counter
	deadLetters  prometheus.Counter
	pending      prometheus.Gauge
	lastCommit   prometheus.Gauge
	batchSeconds prometheus.Histogram
	batchSize    prometheus.Histogram
	lag          prometheus.Histogram
	purges       *prometheus.CounterVec
}

// NewMetrics creates the series and registers them on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		batches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "archival_batches_total",
			Help: "Batch write attempts, by result (committed or failed).",
		}, []string{"result"}),
		rows: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "archival_rows_written_total",
			Help: "Bid rows inserted into PostgreSQL.",
		}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "archival_duplicates_skipped_total",
			Help: "Bid events skipped because their event id was already archived.",
		}),
		deadLetters: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "archival_dead_letters_total",
			Help: "Messages that could not be archived and went to the dead_letters table.",
		}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "archival_consumer_pending_messages",
			Help: "Messages in the stream not yet delivered to the consumer (lag), as of the last batch pulled.",
		}),
		lastCommit: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "archival_last_commit_timestamp_seconds",
			Help: "Unix time of the last committed batch.",
		}),
		batchSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "archival_batch_write_seconds",
			Help:    "Time to write and commit one batch.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "archival_batch_messages",
			Help:    "Messages per committed batch.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 12),
		}),
		lag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "archival_lag_seconds",
			Help:    "From an event's timestamp to the commit that archived it.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		}),
		purges: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "archival_stream_purges_total",
			Help: "Closed items looked at by the stream purge, by result: purged down to their close, deferred (the close is above the consumer's ack floor), failed (retried next pass).",
		}, []string{"result"}),
	}
	m.batches.WithLabelValues("committed")
	m.batches.WithLabelValues("failed")
	for _, r := range []string{"purged", "deferred", "failed"} {
		m.purges.WithLabelValues(r)
	}
	reg.MustRegister(m.batches, m.rows, m.duplicates, m.deadLetters, m.pending, m.lastCommit, m.batchSeconds, m.batchSize, m.lag, m.purges)
	return m
}
