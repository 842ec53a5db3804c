// Package nats connects the broadcast service to NATS: one core subscription
// per watched item for live events, and JetStream reads of the BIDS stream
// for snapshots and catch-up.
package nats

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	gonats "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/bidding-platform/shared/config"
	"github.com/bidding-platform/shared/models"
	"github.com/bidding-platform/shared/natsconn"
	"github.com/bidding-platform/shared/stream"
)

// ErrNotConnected is returned while the connection to NATS is down.
var ErrNotConnected = errors.New("nats is not connected")

// Options tune the connection. The zero value is usable.
type Options struct {
	// Name identifies this instance in NATS's monitoring.
	Name string
	// Auth is the service's NATS user.
	Auth natsconn.Auth
	// ReconnectWait is the pause between reconnect attempts; zero means
	// natsconn's default.
	ReconnectWait time.Duration
	// OnReconnect runs after every (re)connection, once subscriptions are
	// restored, so callers can catch up on what was published meanwhile.
	OnReconnect func()
	// StreamCheckInterval is how often Follow checks that the stream was
	// not created anew (default 5 s): a new stream's events wait at most
	// that long.
	StreamCheckInterval time.Duration
}

// Client is the service's one NATS connection.
type Client struct {
	nc     *gonats.Conn
	js     jetstream.JetStream
	log    *slog.Logger
	mu     sync.Mutex
	stream jetstream.Stream // nil until the stream was found
	// invalid remembers stored messages already reported as invalid, so
	// that history reads meeting one again (a hole retried until
	// GAP_TIMEOUT, every resuming viewer) do not log it again.
	invalid     map[storedMsg]struct{}
	streamCheck time.Duration
}

type storedMsg struct {
	subject string
	seq     uint64
}

// maxInvalid bounds the memory of reported messages; past it, it starts
// over, at the cost of a repeated line.
const maxInvalid = 1024

// Connect dials NATS. It returns even when NATS is not reachable yet and keeps
// retrying in the background, so the service can start before NATS does;
// Ready reports when it is usable.
func Connect(ctx context.Context, url string, opts Options, log *slog.Logger) (*Client, error) {
	c := &Client{log: log, invalid: make(map[storedMsg]struct{}), streamCheck: config.Positive(opts.StreamCheckInterval, 5*time.Second)}
	nc, err := natsconn.Connect(ctx, natsconn.Config{
		URL:           url,
		Name:          opts.Name,
		Auth:          opts.Auth,
		Log:           log,
		ReconnectWait: opts.ReconnectWait,
		OnConnect: func() {
			bindCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			c.bindLogged(bindCtx)
			// Live events published while disconnected never arrive:
			// the hub reads them from JetStream.
			if opts.OnReconnect != nil {
				opts.OnReconnect()
			}
		},
	})
	if err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	c.mu.Lock()
	c.nc, c.js = nc, js
	c.mu.Unlock()
	if nc.IsConnected() {
		c.bindLogged(ctx)
	}
	return c, nil
}

// bindLogged binds to the stream where the outcome is only worth a log
// line: history reads bind again until the stream is found.
func (c *Client) bindLogged(ctx context.Context) {
	_, err := c.bind(ctx)
	switch {
	case err == nil, errors.Is(err, ErrNotConnected):
	case errors.Is(err, jetstream.ErrStreamNotFound):
		c.log.Info("the event stream does not exist yet; the API gateway creates it", "stream", stream.Name)
	default:
		c.log.Warn("looking up the event stream", "stream", stream.Name, "err", err)
	}
}

// bind looks the BIDS stream up and remembers its handle, which history
// reads need. It never creates or changes the stream: the API gateway is
// the one service that manages it, and this service's NATS user may only
// read it. A stream the gateway recreates keeps its name, so the handle
// stays good.
func (c *Client) bind(ctx context.Context) (jetstream.Stream, error) {
	c.mu.Lock()
	js := c.js
	c.mu.Unlock()
	if js == nil {
		// Called from the connect handler before Connect returned; Connect
		// binds itself right after.
		return nil, ErrNotConnected
	}
	s, err := js.Stream(ctx, stream.Name)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", stream.Name, err)
	}
	c.mu.Lock()
	c.stream = s
	c.mu.Unlock()
	return s, nil
}

// bids returns the stream's handle. jetstream.ErrStreamNotFound means the
// gateway has not created it yet, or not again after NATS lost its storage:
// then no event is stored that anyone could read, and history reads find
// none rather than fail.
func (c *Client) bids(ctx context.Context) (jetstream.Stream, error) {
	// Fail fast while reconnecting: a request would only wait for its
	// deadline, and viewers are better told to retry.
	if !c.nc.IsConnected() {
		return nil, ErrNotConnected
	}
	c.mu.Lock()
	s := c.stream
	c.mu.Unlock()
	if s != nil {
		return s, nil
	}
	return c.bind(ctx)
}

// Ready reports whether NATS is connected, for /ready.
func (c *Client) Ready(context.Context) error {
	if !c.nc.IsConnected() {
		return ErrNotConnected
	}
	return nil
}

// Subscribe takes a core NATS subscription on the item's subject. fn runs on
// one goroutine per subscription, in the order NATS delivered the messages;
// more tells it that further messages are already waiting, so it can send
// them together.
func (c *Client) Subscribe(itemID string, fn func(data []byte, more bool)) (unsubscribe func() error, err error) {
	sub, err := c.nc.Subscribe(stream.Subject(itemID), func(m *gonats.Msg) {
		// The message being handled still counts as pending until its
		// callback returns. Should that change, more would only be
		// false for one waiting message, which costs batching, not order.
		n, _, err := m.Sub.Pending()
		fn(m.Data, err == nil && n > 1)
	})
	if err != nil {
		return nil, fmt.Errorf("subscribe %s: %w", itemID, err)
	}
	// A hot item can publish faster than one callback fans out for a moment;
	// the default limit (64k messages) is kept, but bytes are raised so large
	// bursts are not dropped as slow-consumer errors.
	_ = sub.SetPendingLimits(1<<20, 256<<20)
	return sub.Unsubscribe, nil
}

// Last returns the newest valid event of the item, or ok=false when it has
// none. An invalid newest event is logged and passed over, so that one bad
// message does not keep viewers from an item.
func (c *Client) Last(ctx context.Context, itemID string) (ev models.Event, ok bool, err error) {
	s, err := c.bids(ctx)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return models.Event{}, false, nil
	}
	if err != nil {
		return models.Event{}, false, err
	}
	subj := stream.Subject(itemID)
	m, err := s.GetLastMsgForSubject(ctx, subj)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return models.Event{}, false, nil
	}
	if err != nil {
		return models.Event{}, false, fmt.Errorf("last event of %s: %w", itemID, err)
	}
	ev, err = stream.Decode(m.Subject, m.Data)
	if err == nil {
		return ev, true, nil
	}
	c.skip(m, err)
	return c.lastBefore(ctx, s, subj, m.Sequence)
}

// lastBefore returns the newest valid event of the subject stored before
// stream sequence end. Direct gets only read forward, so it reads windows
// that reach twice as far back each time: the valid event before an
// invalid one is usually close by.
func (c *Client) lastBefore(ctx context.Context, s jetstream.Stream, subj string, end uint64) (models.Event, bool, error) {
	for back := uint64(256); ; back *= 2 {
		from := uint64(1)
		if end > back {
			from = end - back
		}
		var last models.Event
		found := false
		for seq := from; ; {
			ev, sseq, ok, err := c.next(ctx, s, subj, seq)
			if err != nil {
				return models.Event{}, false, err
			}
			if !ok || sseq >= end {
				break
			}
			last, found, seq = ev, true, sseq+1
		}
		if found || from == 1 {
			return last, found, nil
		}
	}
}

// After calls fn for each stored event of the item with after < seq <= upTo
// (upTo 0 means up to the newest), in the order JetStream stored them, which
// is seq order unless two publishers raced. It returns the item seq of the
// oldest event still retained for the item (0 when none is), so the caller
// can tell a viewer that history before it was discarded.
//
// JetStream's stream sequence is shared by all items, so the first wanted
// event is found by a binary search over stream sequences with direct gets
// ("next message on this subject at or after"), then read forward one
// direct get per event.
func (c *Client) After(ctx context.Context, itemID string, after, upTo uint64, fn func(models.Event) error) (oldest uint64, err error) {
	s, err := c.bids(ctx)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	subj := stream.Subject(itemID)
	first, firstStreamSeq, ok, err := c.next(ctx, s, subj, 1)
	if err != nil || !ok {
		return 0, err
	}
	oldest = first.Seq
	start := firstStreamSeq
	// The search below assumes seqs rise with stream sequence, which holds
	// only roughly: after a NATS failover one gateway's held events reach
	// the stream after later ones of another gateway (hundreds of seqs
	// behind were seen under load). Searching for a point reorderMargin
	// seqs earlier starts the read before every wanted event; the extra
	// ones are passed over below.
	const reorderMargin = 1024
	search := uint64(0)
	if after > reorderMargin {
		search = after - reorderMargin
	}
	if first.Seq <= search {
		last, err := s.GetLastMsgForSubject(ctx, subj)
		if err != nil {
			return oldest, fmt.Errorf("last event of %s: %w", itemID, err)
		}
		// Find the smallest stream sequence whose next message on the
		// subject has item seq > search. Invariant: next(lo) has seq <=
		// search; next(hi) has seq > search or does not exist.
		lo, hi := firstStreamSeq, last.Sequence+1
		for hi-lo > 1 {
			mid := lo + (hi-lo)/2
			ev, sseq, ok, err := c.next(ctx, s, subj, mid)
			if err != nil {
				return oldest, err
			}
			if !ok || sseq >= hi || ev.Seq > search {
				hi = mid
			} else {
				lo = sseq
			}
		}
		start = hi
	}
	// Past upTo the read goes on for a few events, since a racing
	// publisher may have stored a wanted event just after a later one.
	const lookahead = 16
	beyond := 0
	for seq := start; ; {
		ev, sseq, ok, err := c.next(ctx, s, subj, seq)
		if err != nil {
			return oldest, err
		}
		if !ok {
			return oldest, nil
		}
		seq = sseq + 1
		if upTo != 0 && ev.Seq > upTo {
			if beyond++; beyond >= lookahead {
				return oldest, nil
			}
			continue
		}
		if ev.Seq > after {
			if err := fn(ev); err != nil {
				return oldest, err
			}
		}
	}
}

// Oldest returns the seq of the item's oldest event still retained (0 when
// none is). History is discarded from the front only (the archive's purge),
// so the item's first stored message is it.
func (c *Client) Oldest(ctx context.Context, itemID string) (uint64, error) {
	s, err := c.bids(ctx)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	first, _, ok, err := c.next(ctx, s, stream.Subject(itemID), 1)
	if err != nil || !ok {
		return 0, err
	}
	return first.Seq, nil
}

// next reads the item's first valid event at or after stream sequence seq.
// Invalid ones are logged and passed over: a reader could never use them,
// and stopping at one would stall every history read past it.
func (c *Client) next(ctx context.Context, s jetstream.Stream, subj string, seq uint64) (ev models.Event, streamSeq uint64, ok bool, err error) {
	for {
		m, err := s.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subj))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return models.Event{}, 0, false, nil
		}
		if err != nil {
			return models.Event{}, 0, false, fmt.Errorf("get %s at %d: %w", subj, seq, err)
		}
		ev, err := stream.Decode(m.Subject, m.Data)
		if err == nil {
			return ev, m.Sequence, true, nil
		}
		c.skip(m, err)
		seq = m.Sequence + 1
	}
}

// skip logs an invalid stored message the first time a read meets it.
func (c *Client) skip(m *jetstream.RawStreamMsg, err error) {
	key := storedMsg{m.Subject, m.Sequence}
	c.mu.Lock()
	_, seen := c.invalid[key]
	if !seen {
		if len(c.invalid) >= maxInvalid {
			clear(c.invalid)
		}
		c.invalid[key] = struct{}{}
	}
	c.mu.Unlock()
	if !seen {
		c.log.Warn("skipping an invalid stored event", "subject", m.Subject, "stream_seq", m.Sequence, "err", err)
	}
}

// Drain stops delivery after the messages in flight and closes the
// connection, for graceful shutdown.
func (c *Client) Drain() error {
	if c.nc.IsClosed() {
		return nil
	}
	if err := c.nc.Drain(); err != nil {
		c.nc.Close()
		return fmt.Errorf("drain nats: %w", err)
	}
	return nil
}

// Close closes the connection at once; it is idempotent.
func (c *Client) Close() { c.nc.Close() }

// viewersPrefix carries instances' viewer counts: core NATS only, outside
// the BIDS stream's subjects, since counts are worthless once stale.
const viewersPrefix = "broadcast.viewers."

// SubscribeViewers receives the viewer counts other instances publish for
// the item.
func (c *Client) SubscribeViewers(itemID string, fn func(data []byte)) (unsubscribe func() error, err error) {
	sub, err := c.nc.Subscribe(viewersPrefix+itemID, func(m *gonats.Msg) { fn(m.Data) })
	if err != nil {
		return nil, fmt.Errorf("subscribe viewer counts of %s: %w", itemID, err)
	}
	return sub.Unsubscribe, nil
}

// PublishViewers publishes this instance's viewer count of the item.
func (c *Client) PublishViewers(itemID string, data []byte) error {
	if err := c.nc.Publish(viewersPrefix+itemID, data); err != nil {
		return fmt.Errorf("publish viewer count of %s: %w", itemID, err)
	}
	return nil
}

// Follow delivers every item's events stored from now on to fn, in stream
// order, until ctx ends; started runs once the consumer reads. It is one
// ordered consumer on the whole stream, from the event after the newest
// stored when it starts: the consumer is ephemeral and in memory, and when
// a message goes missing or NATS reconnects the library recreates it from
// the last stream sequence seen, so a NATS blip delays events but loses
// none. A stream created anew (NATS lost its storage and the gateway made
// it again) numbers its events from 1, below that sequence, so Follow
// checks every Options.StreamCheckInterval that the stream is the one it follows,
// and follows a new one from its first event. Until the stream exists (the
// gateway creates it) Follow retries. Invalid messages are logged and
// passed over.
func (c *Client) Follow(ctx context.Context, fn func(models.Event), started func()) error {
	retry := 500 * time.Millisecond
	fromFirst := false
	for {
		cc, created, err := c.follow(ctx, fn, fromFirst)
		if err == nil {
			started()
			recreated := c.waitRecreated(ctx, created)
			cc.Stop()
			if !recreated {
				return nil
			}
			c.log.Warn("the event stream was created anew; following it from its first event", "stream", stream.Name)
			fromFirst, retry = true, 500*time.Millisecond
			continue
		}
		if ctx.Err() != nil {
			return nil
		}
		c.log.Warn("following every item's events (personal channels wait for it)", "err", err)
		t := time.NewTimer(retry)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		retry = min(retry*2, 5*time.Second)
	}
}

// waitRecreated waits until ctx ends (false) or the stream is found created
// at another time than created (true). A check that fails (NATS away, the
// stream not made again yet) is tried at the next tick.
func (c *Client) waitRecreated(ctx context.Context, created time.Time) bool {
	t := time.NewTicker(c.streamCheck)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
		s, err := c.bids(ctx)
		if err != nil {
			continue
		}
		infoCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		info, err := s.Info(infoCtx)
		cancel()
		if err == nil && !info.Created.Equal(created) {
			return true
		}
	}
}

// follow starts the consumer, from the stream's first event with
// fromFirst, and returns when the stream was created.
func (c *Client) follow(ctx context.Context, fn func(models.Event), fromFirst bool) (jetstream.ConsumeContext, time.Time, error) {
	s, err := c.bids(ctx)
	if err != nil {
		return nil, time.Time{}, err
	}
	// From a sequence, not "deliver new": the library recreates the
	// consumer after a reconnect with the policy it was given until it has
	// delivered a message, and "new" would then skip what was published
	// meanwhile.
	info, err := s.Info(ctx)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("stream %s: %w", stream.Name, err)
	}
	start := info.State.LastSeq + 1
	if fromFirst {
		start = max(info.State.FirstSeq, 1)
	}
	cons, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: start})
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("ordered consumer on %s: %w", stream.Name, err)
	}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		ev, err := stream.Decode(m.Subject(), m.Data())
		if err != nil {
			c.log.Warn("skipping an invalid event", "subject", m.Subject(), "err", err)
			return
		}
		fn(ev)
	}, jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		c.log.Warn("following every item's events", "err", err)
	}))
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("consume %s: %w", stream.Name, err)
	}
	return cc, info.Created, nil
}
