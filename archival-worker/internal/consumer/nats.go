// Package consumer moves events from the JetStream stream to the archive: a
// durable pull consumer fetches batches, the store writes each batch in one
// transaction, and only then are its messages acknowledged. Delivery is at
// least once; the store's idempotent inserts make the archive exactly once.
package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/bidding-platform/archival-worker/internal/database"
	"github.com/bidding-platform/shared/config"
	"github.com/bidding-platform/shared/models"
	"github.com/bidding-platform/shared/stream"
)

// Durable is the consumer name every worker shares, so that several workers
// split the stream between them and a restarted one resumes where the group
// left off.
const Durable = "archival-worker"

// Store writes one batch atomically.
type Store interface {
	Write(ctx context.Context, events []models.Event, dead []database.DeadLetter) (database.Result, error)
	// SeqHolder names the event archived with an item and seq, for the
	// dead letter of a different event that claims the same seq.
	SeqHolder(ctx context.Context, itemID string, seq uint64) (string, error)
}

// Config tunes the consumer. Zero values take the defaults below.
type Config struct {
	// BatchSize is the most messages written in one transaction.
	BatchSize int
	// BatchWait is the longest a fetch waits to fill a batch.
	BatchWait time.Duration
	// AckWait is how long JetStream waits for an acknowledgement before
	// redelivering. While a batch is being retried the worker keeps
	// extending it, so this only matters when a worker dies.
	AckWait time.Duration
	// WriteTimeout bounds one attempt to write a batch, so a hung
	// PostgreSQL turns into a retry instead of a stall.
	WriteTimeout time.Duration
	// Writers is how many batches are written at once, each on its own
	// PostgreSQL connection, so one batch's round trips overlap another's
	// work. Order between batches does not matter: bid inserts are
	// idempotent and item rows only move to a higher seq.
	Writers int
	// ShutdownGrace is how long, after the stop signal, the batch in hand
	// may still take to commit.
	ShutdownGrace time.Duration
	// MinBackoff and MaxBackoff bound the jittered retry delay.
	MinBackoff, MaxBackoff time.Duration
}

func (c *Config) defaults() {
	c.BatchSize = config.Positive(c.BatchSize, 4000)
	c.BatchWait = config.Positive(c.BatchWait, 100*time.Millisecond)
	c.AckWait = config.Positive(c.AckWait, 30*time.Second)
	c.WriteTimeout = config.Positive(c.WriteTimeout, 10*time.Second)
	c.Writers = config.Positive(c.Writers, 1)
	c.ShutdownGrace = config.Positive(c.ShutdownGrace, 10*time.Second)
	c.MinBackoff = config.Positive(c.MinBackoff, 100*time.Millisecond)
	c.MaxBackoff = config.Positive(c.MaxBackoff, 5*time.Second)
}

// Consumer is one worker's share of the durable consumer.
type Consumer struct {
	cfg     Config
	js      jetstream.JetStream
	store   Store
	log     *slog.Logger
	metrics *Metrics

	mu      sync.Mutex
	lastErr error // the last write's error, nil once a write succeeds
}

// New returns a consumer; Run starts it.
func New(cfg Config, js jetstream.JetStream, store Store, log *slog.Logger, m *Metrics) *Consumer {
	cfg.defaults()
	return &Consumer{cfg: cfg, js: js, store: store, log: log, metrics: m}
}

// Healthy reports the last write's failure, for readiness: a worker whose
// writes fail is not archiving, whatever a ping says.
func (c *Consumer) Healthy(context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastErr
}

func (c *Consumer) setErr(err error) {
	c.mu.Lock()
	c.lastErr = err
	c.mu.Unlock()
}

// Run consumes until ctx is cancelled, then finishes the batch in hand and
// returns nil. It returns an error only for a configuration JetStream
// rejects.
func (c *Consumer) Run(ctx context.Context) error {
	cons, err := c.ensure(ctx)
	if err != nil {
		return err
	}
	if cons == nil {
		return nil // stopped before NATS was reachable
	}
	// The fetcher cuts the next batch while the writers write. The channel
	// is unbuffered: at most one batch waits, fetched and unacked.
	batches := make(chan batch)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(batches)
		c.fetch(ctx, cons, batches)
	}()
	// The write of the batch in hand may outlive ctx by ShutdownGrace.
	writeCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	stop := context.AfterFunc(ctx, func() { time.AfterFunc(c.cfg.ShutdownGrace, cancel) })
	defer stop()
	var writers sync.WaitGroup
	for range c.cfg.Writers {
		writers.Go(func() {
			for b := range batches {
				c.handle(writeCtx, b)
			}
		})
	}
	writers.Wait()
	<-done
	return nil
}

// ensure creates the durable consumer, retrying while NATS is unreachable
// or the stream does not exist yet, so the worker may start first.
func (c *Consumer) ensure(ctx context.Context) (jetstream.Consumer, error) {
	for attempt := 0; ; attempt++ {
		cons, err := c.create(ctx)
		if err == nil {
			return cons, nil
		}
		if errors.Is(err, jetstream.ErrInvalidOption) {
			return nil, err
		}
		c.log.WarnContext(ctx, "jetstream not ready, retrying", "err", err)
		if !sleep(ctx, c.backoff(attempt)) {
			return nil, nil
		}
	}
}

func (c *Consumer) create(ctx context.Context) (jetstream.Consumer, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	// Bound, never created: the API gateway is the one service that
	// manages the stream (and recreates it if NATS lost it), and the
	// worker's NATS user may not. The consumer inherits the stream's
	// replicas.
	s, err := c.js.Stream(ctx, stream.Name)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", stream.Name, err)
	}
	cons, err := s.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable:       Durable,
		Description:   "Archives every event to PostgreSQL",
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       c.cfg.AckWait,
		// Never give up on a message: one that cannot be written because
		// PostgreSQL is down must wait for it, not be dropped.
		MaxDeliver: -1,
		// Room for every worker's batch in hand plus the one prefetched.
		MaxAckPending: 64 * c.cfg.BatchSize,
		// Enough pending pulls for several workers fetching at once.
		MaxWaiting: 512,
	})
	if err != nil {
		return nil, fmt.Errorf("create consumer %s: %w", Durable, err)
	}
	return cons, nil
}

// fetch pulls messages until ctx ends and hands them over in batches of
// up to BatchSize, each cut after BatchWait from its first message. It
// pulls continuously (Messages) rather than with one Fetch request per
// batch: short Fetch requests left the consumer idle for about a second
// now and then on nats-server 2.9, which is most of the lag budget.
func (c *Consumer) fetch(ctx context.Context, cons jetstream.Consumer, out chan<- batch) {
	for failures := 0; ctx.Err() == nil; failures++ {
		// One batch buffered per writer plus one being cut.
		it, err := cons.Messages(jetstream.PullMaxMessages((c.cfg.Writers + 1) * c.cfg.BatchSize))
		if err == nil {
			stop := context.AfterFunc(ctx, it.Stop)
			err = c.pump(ctx, it, out)
			stop()
			it.Stop()
			if ctx.Err() != nil {
				return
			}
			failures = 0
		}
		c.log.WarnContext(ctx, "pull messages", "err", err)
		if !sleep(ctx, c.backoff(failures)) {
			return
		}
		// The consumer or the whole stream may be gone with NATS's
		// storage; recreate them (the archive is idempotent, so a consumer
		// starting over from the first message is harmless).
		if fresh, err := c.create(ctx); err == nil {
			cons = fresh
		}
	}
}

// pump cuts batches from the iterator until it fails or ctx ends. A batch
// it cannot hand over is negatively acknowledged so it is redelivered at
// once rather than after AckWait.
func (c *Consumer) pump(ctx context.Context, it jetstream.MessagesContext, out chan<- batch) error {
	for {
		first, err := it.Next()
		if err != nil {
			return err
		}
		msgs := make([]jetstream.Msg, 1, c.cfg.BatchSize)
		msgs[0] = first
		// One deadline for the whole batch: cheaper than a timer per message.
		cut, cancel := context.WithTimeout(ctx, c.cfg.BatchWait)
		var nextErr error
		for len(msgs) < c.cfg.BatchSize {
			m, err := it.Next(jetstream.NextContext(cut))
			if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
				break // cut the batch; a stopped ctx is handled below
			}
			if err != nil {
				nextErr = err
				break
			}
			msgs = append(msgs, m)
		}
		cancel()
		// Set here, where messages arrive in order, not at commit, where
		// writers finish in any order.
		if meta, err := msgs[len(msgs)-1].Metadata(); err == nil {
			c.metrics.pending.Set(float64(meta.NumPending))
		}
		// Decoding here overlaps it with the previous batch's write.
		b := batch{msgs: msgs}
		b.events, b.dead = c.decodeAll(msgs)
		select {
		case out <- b:
		case <-ctx.Done():
			for _, m := range msgs {
				_ = m.Nak() // best effort: otherwise redelivered after AckWait
			}
			return ctx.Err()
		}
		if nextErr != nil {
			return nextErr
		}
	}
}

// handle writes one batch, retrying with backoff until it commits or the
// shutdown grace runs out, and acknowledges it only after the commit.
func (c *Consumer) handle(ctx context.Context, b batch) {
	msgs, events, dead := b.msgs, b.events, b.dead
	lastExtend := time.Now()
	isolated := false
	isolatedRows := 0 // inserted while isolating, skipped by the retry
	for attempt := 0; ; attempt++ {
		start := time.Now()
		wctx, cancel := context.WithTimeout(ctx, c.cfg.WriteTimeout)
		res, err := c.store.Write(wctx, events, dead)
		cancel()
		if err == nil {
			c.setErr(nil)
			res.Inserted += isolatedRows
			res.Duplicates = max(0, res.Duplicates-isolatedRows)
			c.committed(msgs, events, res, time.Since(start))
			return
		}
		c.metrics.batches.WithLabelValues("failed").Inc()
		if database.Permanent(err) && len(events) > 0 && !isolated {
			// One event PostgreSQL will never accept must not hold the
			// stream up: find it, dead-letter it, write the rest.
			c.log.WarnContext(ctx, "batch rejected by postgres, isolating the bad events", "err", err)
			before := len(dead)
			var n int
			events, dead, n = c.isolate(ctx, msgs, events, dead)
			isolatedRows += n
			// Isolating again is worth it while it finds something: another
			// worker may commit an event that takes a seq of this batch
			// between the isolation and the retry. Once it finds nothing,
			// the failure is retried with backoff.
			isolated = len(dead) == before
			continue
		}
		c.setErr(fmt.Errorf("write batch: %w", err))
		c.log.WarnContext(ctx, "write batch, will retry", "messages", len(msgs), "attempt", attempt+1, "err", err)
		if !sleep(ctx, c.backoff(attempt)) {
			// Out of time: leave the batch to be redelivered, now rather
			// than after AckWait.
			for _, m := range msgs {
				_ = m.Nak()
			}
			c.log.WarnContext(context.WithoutCancel(ctx), "stopping with an uncommitted batch; it will be redelivered", "messages", len(msgs))
			return
		}
		// Keep the batch ours while we retry, so it is not redelivered to
		// another worker that would fail the same way.
		if time.Since(lastExtend) > c.cfg.AckWait/3 {
			for _, m := range msgs {
				_ = m.InProgress()
			}
			lastExtend = time.Now()
		}
	}
}

// isolate writes events one at a time and turns those PostgreSQL rejects
// into dead letters. Events it writes are written again by the retried
// batch, which skips them as duplicates; it returns how many it inserted,
// so that the metrics count them as written rather than as duplicates.
func (c *Consumer) isolate(ctx context.Context, msgs []jetstream.Msg, events []models.Event, dead []database.DeadLetter) ([]models.Event, []database.DeadLetter, int) {
	raw := make(map[string]jetstream.Msg, len(msgs))
	for _, m := range msgs {
		if e, err := stream.Decode(m.Subject(), m.Data()); err == nil {
			raw[e.EventID] = m
		}
	}
	kept := events[:0:0]
	inserted := 0
	for _, e := range events {
		wctx, cancel := context.WithTimeout(ctx, c.cfg.WriteTimeout)
		res, err := c.store.Write(wctx, []models.Event{e}, nil)
		cancel()
		inserted += res.Inserted
		if err == nil || !database.Permanent(err) {
			// Transient failures are retried with the whole batch.
			kept = append(kept, e)
			continue
		}
		reason := "rejected by postgres: " + err.Error()
		if database.SeqTaken(err) {
			reason = c.seqTaken(ctx, e)
		}
		c.log.WarnContext(ctx, "dead-lettering an event postgres refuses", "event_id", e.EventID, "item_id", e.ItemID, "seq", e.Seq, "reason", reason)
		d := database.DeadLetter{Subject: stream.Subject(e.ItemID), Reason: reason}
		if m, ok := raw[e.EventID]; ok {
			d.Subject, d.Payload = m.Subject(), m.Data()
			if meta, merr := m.Metadata(); merr == nil {
				d.StreamSeq = meta.Sequence.Stream
			}
		}
		dead = append(dead, d)
	}
	return kept, dead, inserted
}

// seqTaken is the dead letter's reason for an event whose item and seq are
// archived for a different event. Both claim the same place in the item's
// history, so an auction was rewound (a seq reissued) or an event forged:
// keeping the first and setting the other aside with both ids lets an
// operator decide, where skipping it as a duplicate would lose it unseen.
func (c *Consumer) seqTaken(ctx context.Context, e models.Event) string {
	wctx, cancel := context.WithTimeout(ctx, c.cfg.WriteTimeout)
	holder, err := c.store.SeqHolder(wctx, e.ItemID, e.Seq)
	cancel()
	if err != nil || holder == "" {
		holder = "another event" // the refusal itself is proof enough
	} else {
		holder = "event " + holder
	}
	return fmt.Sprintf("duplicate seq: item %s seq %d is already archived as %s; this event %s claims the same seq and is not archived",
		e.ItemID, e.Seq, holder, e.EventID)
}

func (c *Consumer) committed(msgs []jetstream.Msg, events []models.Event, res database.Result, took time.Duration) {
	now := time.Now()
	// Metrics first, so that once the stream shows everything acknowledged
	// the counters already include it.
	m := c.metrics
	m.batches.WithLabelValues("committed").Inc()
	m.rows.Add(float64(res.Inserted))
	m.duplicates.Add(float64(res.Duplicates))
	m.deadLetters.Add(float64(res.DeadLetters))
	m.lastCommit.Set(float64(now.UnixNano()) / 1e9)
	m.batchSeconds.Observe(took.Seconds())
	m.batchSize.Observe(float64(len(msgs)))
	for _, e := range events {
		if !e.Timestamp.IsZero() {
			m.lag.Observe(now.Sub(e.Timestamp).Seconds())
		}
	}
	for _, msg := range msgs {
		// An acknowledgement lost here only causes a redelivery, which
		// the idempotent insert skips.
		_ = msg.Ack()
	}
}

func (c *Consumer) backoff(attempt int) time.Duration {
	d := c.cfg.MinBackoff << min(attempt, 16)
	if d <= 0 || d > c.cfg.MaxBackoff {
		d = c.cfg.MaxBackoff
	}
	// Full jitter: workers that failed together do not retry together.
	return d/2 + rand.N(d/2+1)
}

// sleep waits for d or ctx, and says whether ctx is still alive.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// batch is a set of messages written in one transaction, already decoded.
type batch struct {
	msgs   []jetstream.Msg
	events []models.Event
	dead   []database.DeadLetter
}

// decodeAll splits a batch into events and dead letters. A message the
// shared decoder refuses can never be archived, however often it is
// retried: it is logged here, once, and stored with the reason.
func (c *Consumer) decodeAll(msgs []jetstream.Msg) ([]models.Event, []database.DeadLetter) {
	events := make([]models.Event, 0, len(msgs))
	var dead []database.DeadLetter
	for _, m := range msgs {
		e, err := stream.Decode(m.Subject(), m.Data())
		if err == nil {
			events = append(events, e)
			continue
		}
		var seq uint64
		if meta, merr := m.Metadata(); merr == nil {
			seq = meta.Sequence.Stream
		}
		c.log.Warn("dead-lettering an invalid event", "subject", m.Subject(), "stream_seq", seq, "err", err)
		dead = append(dead, database.DeadLetter{StreamSeq: seq, Subject: m.Subject(), Reason: err.Error(), Payload: m.Data()})
	}
	return events, dead
}
