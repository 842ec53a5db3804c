package consumer_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/bidding-platform/archival-worker/internal/consumer"
	"github.com/bidding-platform/archival-worker/internal/database"
	"github.com/bidding-platform/shared/models"
	"github.com/bidding-platform/shared/stream"
	"github.com/bidding-platform/shared/testenv"
)

// archive is a real NATS and PostgreSQL with the stream and a migrated
// archive, for the consumer and the purger.
type archive struct {
	js    jetstream.JetStream
	pgURL string
	store *database.Store
	reg   *prometheus.Registry
	m     *consumer.Metrics
	log   *slog.Logger
}

func newArchive(t *testing.T) *archive {
	t.Helper()
	ns := testenv.NATS(t)
	js := ns.JetStream()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := stream.Ensure(ctx, js, 1); err != nil {
		t.Fatal(err)
	}
	pgURL := testenv.PostgresDB(t)
	store, err := database.Open(ctx, database.Config{URL: pgURL})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(store.Close)
	if err := store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	return &archive{js: js, pgURL: pgURL, store: store, reg: reg, m: consumer.NewMetrics(reg), log: slog.New(slog.NewTextHandler(io.Discard, nil))}
}

// run starts a consumer on store until the test ends.
func (a *archive) run(t *testing.T, store consumer.Store) {
	t.Helper()
	c := consumer.New(consumer.Config{BatchSize: 100, BatchWait: 20 * time.Millisecond, Writers: 1, MaxBackoff: 200 * time.Millisecond},
		a.js, store, a.log, a.m)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("consumer: %v", err)
		}
	})
}

// publish stores each event in the stream under its own message id; a
// suffix after the id lets a test store a second copy of one event.
func (a *archive) publish(t *testing.T, evs ...models.Event) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, e := range evs {
		data, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		msg := nats.NewMsg(stream.Subject(e.ItemID))
		msg.Data = data
		msg.Header.Set(jetstream.MsgIDHeader, fmt.Sprintf("%s-%d", e.EventID, time.Now().UnixNano()))
		if _, err := a.js.PublishMsg(ctx, msg); err != nil {
			t.Fatalf("publish %s: %v", e.EventID, err)
		}
	}
}

// drained says whether the durable consumer had every message acknowledged.
func (a *archive) drained() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	c, err := a.js.Consumer(ctx, stream.Name, consumer.Durable)
	if err != nil {
		return err
	}
	info, err := c.Info(ctx)
	if err != nil {
		return err
	}
	if info.NumPending != 0 || info.NumAckPending != 0 {
		return fmt.Errorf("%d pending, %d awaiting ack", info.NumPending, info.NumAckPending)
	}
	return nil
}

// query runs sql on the archive and hands the rows to fn.
func (a *archive) query(t *testing.T, sql string, fn func(pgx.Rows) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, a.pgURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(ctx, sql)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	if err := fn(rows); err != nil {
		t.Fatal(err)
	}
}

func bidAt(item string, seq int, at time.Time) models.Event {
	return models.Event{
		Type: models.EventBid, EventID: fmt.Sprintf("evt_%s_%d", item, seq), ItemID: item, BidID: fmt.Sprintf("bid_%s_%d", item, seq),
		UserID: "user_1", Amount: models.Money(1000 + 100*seq), PreviousBid: models.Money(900 + 100*seq),
		Seq: uint64(seq), Timestamp: at, BidCount: int64(seq),
	}
}

// counter returns the value of a counter vector's child on reg.
func counter(t *testing.T, reg *prometheus.Registry, name, label string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetValue() == label {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no %s{%s} on the registry", name, label)
	return 0
}

// value returns the value of an unlabelled counter or gauge.
func value(t *testing.T, a *archive, name string) float64 {
	t.Helper()
	mfs, err := a.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			m := mf.GetMetric()[0]
			if c := m.GetCounter(); c != nil {
				return c.GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	t.Fatalf("no %s on the registry", name)
	return 0
}
