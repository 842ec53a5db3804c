package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/bidding-platform/shared/config"
	"github.com/bidding-platform/shared/models"
	"github.com/bidding-platform/shared/stream"
)

// PurgeConfig says when a closed item's history leaves the stream. Zero
// values other than After take the defaults below.
type PurgeConfig struct {
	// After is how long after an auction closed its whole history stays in
	// the stream, for viewers catching up; 0 never purges.
	After time.Duration
	// Every is the pause between purge passes; by default a quarter of
	// After (at least 100ms, at most a minute), so an item is purged
	// within After and a quarter of it.
	Every time.Duration
	// Batch bounds the items one pass looks at.
	Batch int
	// Timeout bounds each JetStream or PostgreSQL call of a pass.
	Timeout time.Duration
}

func (c *PurgeConfig) defaults() {
	c.Every = config.Positive(c.Every, min(max(c.After/4, 100*time.Millisecond), time.Minute))
	c.Batch = config.Positive(c.Batch, 256)
	c.Timeout = config.Positive(c.Timeout, 10*time.Second)
}

// PurgeStore is the archive's side of purging: which closed items are due,
// and which are done.
type PurgeStore interface {
	PurgeDue(ctx context.Context, closedBefore time.Time, limit int) ([]string, error)
	MarkPurged(ctx context.Context, itemIDs []string) error
}

// Purger ties the stream's retention to the archive's progress. The stream
// has no age limit and refuses new events when full rather than dropping
// old ones (stream.Config), so nothing leaves it unarchived; this is what
// makes room. Once a closed item's auction_closed event is archived and
// ARCHIVE_PURGE_AFTER has passed since the close, the item's subject is
// purged down to that event: it describes the whole outcome, so viewers and
// the gateway's restore still find the item's last state, while the bids
// before it live on in PostgreSQL. Open items are never purged.
type Purger struct {
	cfg     PurgeConfig
	js      jetstream.JetStream
	store   PurgeStore
	log     *slog.Logger
	metrics *Metrics
}

// NewPurger returns a purger; Run starts it.
func NewPurger(cfg PurgeConfig, js jetstream.JetStream, store PurgeStore, log *slog.Logger, m *Metrics) *Purger {
	cfg.defaults()
	return &Purger{cfg: cfg, js: js, store: store, log: log, metrics: m}
}

// Run makes a pass every Every until ctx ends. A pass that fails is logged
// and the next one retries: every step is idempotent, and an item is marked
// done only after its purge succeeded. Several workers may purge at once;
// they only repeat each other's work.
func (p *Purger) Run(ctx context.Context) error {
	if p.cfg.After <= 0 {
		return nil
	}
	t := time.NewTicker(p.cfg.Every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		n, err := p.Pass(ctx)
		if n > 0 {
			p.log.InfoContext(ctx, "purged closed items' history from the stream", "items", n)
		}
		if err != nil && ctx.Err() == nil {
			p.log.WarnContext(ctx, "stream purge pass, will retry", "err", err)
		}
	}
}

// Pass purges the items due now and returns how many it finished.
func (p *Purger) Pass(ctx context.Context) (int, error) {
	qctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	ids, err := p.store.PurgeDue(qctx, time.Now().Add(-p.cfg.After), p.cfg.Batch)
	cancel()
	if err != nil || len(ids) == 0 {
		return 0, err
	}
	s, floor, err := p.ackFloor(ctx)
	if err != nil {
		return 0, err
	}
	var done []string
	var errs []error
	for _, id := range ids {
		finished, err := p.purge(ctx, s, id, floor)
		switch {
		case err != nil:
			p.metrics.purges.WithLabelValues("failed").Inc()
			errs = append(errs, err)
		case finished:
			done = append(done, id)
		default:
			p.metrics.purges.WithLabelValues("deferred").Inc()
		}
	}
	mctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	err = p.store.MarkPurged(mctx, done)
	cancel()
	if err != nil {
		// Purged but not marked: the next pass purges again, which
		// changes nothing.
		return 0, errors.Join(append(errs, err)...)
	}
	p.metrics.purges.WithLabelValues("purged").Add(float64(len(done)))
	return len(done), errors.Join(errs...)
}

// ackFloor returns the stream and the durable consumer's acknowledgement
// floor: every message at or below it is archived or dead-lettered.
func (p *Purger) ackFloor(ctx context.Context) (jetstream.Stream, uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	s, err := p.js.Stream(ctx, stream.Name)
	if err != nil {
		return nil, 0, fmt.Errorf("stream %s: %w", stream.Name, err)
	}
	cons, err := s.Consumer(ctx, Durable)
	if err != nil {
		return nil, 0, fmt.Errorf("consumer %s: %w", Durable, err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("consumer %s: %w", Durable, err)
	}
	return s, info.AckFloor.Stream, nil
}

// purge removes what precedes the item's auction_closed event from its
// subject. It reports false, with no error, when it must wait: the close
// lies above the ack floor, so an earlier event of the item may still be
// on its way to PostgreSQL (workers commit batches in any order, and a
// close in the archive proves nothing about the batches before it).
func (p *Purger) purge(ctx context.Context, s jetstream.Stream, itemID string, floor uint64) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	closeSeq, found, err := p.findClose(ctx, s, itemID)
	if err != nil {
		return false, err
	}
	if !found {
		// The archive has the close but the stream does not: the stream
		// was recreated without it. Nothing there is the item's archived
		// history, so nothing is purged.
		p.log.InfoContext(ctx, "closed item has no auction_closed event in the stream; leaving its subject alone", "item_id", itemID)
		return true, nil
	}
	if closeSeq > floor {
		return false, nil
	}
	// By sequence rather than "keep the last one": whatever the stream
	// stored after the close (a late republish) stays, and the close is
	// never the message removed.
	if err := s.Purge(ctx, jetstream.WithPurgeSubject(stream.Subject(itemID)), jetstream.WithPurgeSequence(closeSeq)); err != nil {
		return false, fmt.Errorf("purge %s below %d: %w", stream.Subject(itemID), closeSeq, err)
	}
	return true, nil
}

// findClose returns the stream sequence of the item's auction_closed event.
// It is nearly always the subject's last message; when something was
// stored after it, the subject is read from its start, one direct get per
// message, and the newest close wins.
func (p *Purger) findClose(ctx context.Context, s jetstream.Stream, itemID string) (uint64, bool, error) {
	subj := stream.Subject(itemID)
	last, err := s.GetLastMsgForSubject(ctx, subj)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("last message of %s: %w", subj, err)
	}
	if isClose(last) {
		return last.Sequence, true, nil
	}
	var closeSeq uint64
	for seq := uint64(1); seq < last.Sequence; {
		m, err := s.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subj))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			return 0, false, fmt.Errorf("read %s at %d: %w", subj, seq, err)
		}
		if isClose(m) {
			closeSeq = m.Sequence
		}
		seq = m.Sequence + 1
	}
	return closeSeq, closeSeq > 0, nil
}

func isClose(m *jetstream.RawStreamMsg) bool {
	e, err := stream.Decode(m.Subject, m.Data)
	// A cancellation ends an item's history as a close does.
	return err == nil && (e.Type == models.EventAuctionClosed || e.Type == models.EventAuctionCancelled)
}
