// Package nats publishes the gateway's accepted events to JetStream, relays
// what the outbox still holds, and feeds the price cache from the live
// subjects of every item.
package nats

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/bidding-platform/api-gateway/internal/service"
	"github.com/bidding-platform/shared/config"
	"github.com/bidding-platform/shared/models"
	"github.com/bidding-platform/shared/natsconn"
	"github.com/bidding-platform/shared/stream"
)

// Outbox is the store side of the transactional outbox.
type Outbox interface {
	Pending(ctx context.Context, olderThan time.Duration, max int) ([]service.OutboxEntry, error)
	Ack(ctx context.Context, entries ...service.OutboxEntry) error
	Backlog(ctx context.Context) (int64, error)
}

// Metrics observes publishing. A nil Metrics in Config records nothing.
type Metrics interface {
	Published(n int)
	PublishFailed(n int)
	OutboxBacklog(n int64)
	// PublishRefused counts one publish the stream refused for lack of
	// room, by the limit it named (see streamFull).
	PublishRefused(reason string)
	// StreamFull says whether the stream is refusing publishes for lack
	// of room: from the first refusal until a publish is accepted again.
	StreamFull(full bool)
}

// Config says where NATS is and how the relay behaves.
type Config struct {
	// URL is one server or a comma-separated list of a cluster's.
	URL string
	// Name identifies the gateway in NATS's monitoring.
	Name string
	// Auth is the gateway's NATS user.
	Auth natsconn.Auth
	// StreamReplicas is the stream's replica count (default 1). A publish
	// is acknowledged once a majority of them stored the event.
	StreamReplicas int
	// RelayEvery is how often the relay looks at the outbox (default 1s).
	RelayEvery time.Duration
	// RelayAge is how old an outbox entry must be before the relay
	// republishes it (default 2s), which leaves the direct publish time to
	// be acknowledged first. The broadcast service's GAP_TIMEOUT (5s)
	// outlasts RelayAge plus RelayEvery, so that viewers wait for an event
	// the relay republishes instead of hearing it was missed.
	RelayAge time.Duration
	// RelayBatch bounds one look at the outbox (default 512).
	RelayBatch int
	// Queue bounds events waiting for the direct publish (default 16384);
	// beyond it events wait in the outbox for the relay instead.
	Queue int
	// AckTimeout bounds the wait for JetStream's acknowledgement (default 5s).
	AckTimeout time.Duration
	Metrics    Metrics
}

func (c *Config) defaults() {
	c.StreamReplicas = config.Positive(c.StreamReplicas, 1)
	c.RelayEvery = config.Positive(c.RelayEvery, time.Second)
	c.RelayAge = config.Positive(c.RelayAge, 2*time.Second)
	c.RelayBatch = config.Positive(c.RelayBatch, 512)
	c.Queue = config.Positive(c.Queue, 16384)
	c.AckTimeout = config.Positive(c.AckTimeout, 5*time.Second)
	if c.Metrics == nil {
		c.Metrics = nopMetrics{}
	}
}

type nopMetrics struct{}

func (nopMetrics) Published(int)         {}
func (nopMetrics) PublishFailed(int)     {}
func (nopMetrics) OutboxBacklog(int64)   {}
func (nopMetrics) PublishRefused(string) {}
func (nopMetrics) StreamFull(bool)       {}

// Client is the gateway's NATS connection.
type Client struct {
	nc     *nats.Conn
	js     jetstream.JetStream
	outbox Outbox
	cfg    Config
	log    *slog.Logger

	// queue carries events from the bid path to the publishing goroutine.
	queue chan service.OutboxEntry
	// inflight carries publishes waiting for their acknowledgement, in
	// publish order; its capacity bounds them.
	inflight chan published
	// ensure asks for stream.Ensure (after connecting, or when a publish
	// found no stream); capacity 1 merges requests.
	ensure chan struct{}

	feedMu sync.Mutex
	feed   *nats.Subscription

	// Per-item order. JetStream keeps the first copy of each event id, so
	// an item's events stay in seq order as long as nobody publishes event
	// k while an earlier one is unpublished. After a failure (or a drop)
	// for an item, the item is held: direct publishing stops and the relay
	// publishes its outbox in order, then hands what was held back to the
	// queue. Every item starts held until the first relay pass, which
	// publishes what a crashed gateway left behind first.
	holdMu  sync.Mutex
	holds   map[string]*hold
	holdAll bool
	// kick wakes the relay early; capacity 1 merges requests.
	kick chan struct{}

	// The current full-stream episode: JetStream refused a publish for
	// lack of room and has accepted none since. full is read on every
	// acknowledgement; the rest is guarded by fullMu.
	full        atomic.Bool
	fullMu      sync.Mutex
	fullSince   time.Time
	fullRefused int

	kv itemsKV
}

// hold is one held item: the events the bid path handed over meanwhile,
// in order (they are in the outbox too).
type hold struct {
	events   []service.OutboxEntry
	overflow bool
	// covered: a relay pass that started after the hold reads every event
	// it holds back; only such a pass may release it.
	covered bool
}

// maxHeld bounds the events kept per held item; beyond it the item stays
// held until a relay pass has published them from the outbox.
const maxHeld = 4096

type published struct {
	entry service.OutboxEntry
	ack   jetstream.PubAckFuture
}

// Connect dials NATS. It does not wait for the server: the gateway keeps
// taking bids while NATS is down, and the relay catches up once it is back.
func Connect(ctx context.Context, cfg Config, outbox Outbox, log *slog.Logger) (*Client, error) {
	cfg.defaults()
	c := &Client{
		outbox:   outbox,
		cfg:      cfg,
		log:      log,
		queue:    make(chan service.OutboxEntry, cfg.Queue),
		inflight: make(chan published, 4096),
		ensure:   make(chan struct{}, 1),
		holds:    make(map[string]*hold),
		holdAll:  true,
		kick:     make(chan struct{}, 1),
	}
	nc, err := natsconn.Connect(ctx, natsconn.Config{
		URL:  cfg.URL,
		Name: cfg.Name,
		Auth: cfg.Auth,
		Log:  log,
		// No client-side buffer while disconnected: the outbox is the
		// buffer, and a publish that fails at once is retried by the relay.
		NoReconnectBuffer: true,
		// Once connected, the stream may need recreating and the outbox
		// holds whatever was accepted meanwhile: the relay publishes it
		// now rather than on its next tick. With natsconn's short default
		// wait, that is within a quarter second of NATS coming back.
		OnConnect: func() { c.requestEnsure(); c.wakeRelay() },
	})
	if err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc,
		jetstream.WithPublishAsyncMaxPending(4096),
		jetstream.WithPublishAsyncTimeout(cfg.AckTimeout),
	)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	c.nc, c.js = nc, js
	if nc.IsConnected() {
		// Once now, so that the first bids find the stream; if this fails
		// the ensure loop keeps trying.
		ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		if _, err := stream.Ensure(ctx, js, cfg.StreamReplicas); err != nil {
			log.Warn("ensuring the event stream", "err", err)
		}
		cancel()
	}
	return c, nil
}

func (c *Client) requestEnsure() {
	select {
	case c.ensure <- struct{}{}:
	default:
	}
}

// Publish queues an accepted event for JetStream without blocking. When the
// item is held or the queue is full the event waits in the outbox for the
// relay.
func (c *Client) Publish(e service.OutboxEntry) {
	id := e.Event.ItemID
	c.holdMu.Lock()
	defer c.holdMu.Unlock()
	h := c.holds[id]
	if h == nil && c.holdAll {
		h = &hold{}
		c.holds[id] = h
	}
	if h != nil {
		if len(h.events) < maxHeld {
			h.events = append(h.events, e)
		} else {
			h.overflow = true
		}
		return
	}
	select {
	case c.queue <- e:
	default:
		// Dropped: later events of this item must not overtake it.
		c.holds[id] = &hold{}
		c.wakeRelay()
	}
}

func (c *Client) wakeRelay() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// Hold stops direct publishing for an item until the relay has published
// its outbox in order: the bid path calls it when a bid's outcome is
// unknown, since that bid's event may be in the outbox, and a later event
// published directly would overtake it.
func (c *Client) Hold(id string) { c.holdItem(id) }

// holdItem stops direct publishing for an item after a failed publish.
func (c *Client) holdItem(id string) {
	c.holdMu.Lock()
	if c.holds[id] == nil {
		c.holds[id] = &hold{}
	}
	c.holdMu.Unlock()
	c.wakeRelay()
}

// startPass marks the start of a relay pass: whatever was held so far is
// in the outbox and will be read by this pass. It reports whether anything
// is held.
func (c *Client) startPass() bool {
	c.holdMu.Lock()
	defer c.holdMu.Unlock()
	for _, h := range c.holds {
		h.events, h.overflow, h.covered = h.events[:0], false, true
	}
	return c.holdAll || len(c.holds) > 0
}

// release ends the holds after a relay pass that published the whole
// outbox: events held since the pass started go to the queue, ahead of
// anything the bid path hands over next.
func (c *Client) release() {
	c.holdMu.Lock()
	defer c.holdMu.Unlock()
	c.holdAll = false
	for id, h := range c.holds {
		if h.overflow || !h.covered {
			continue
		}
		n := 0
		for _, e := range h.events {
			select {
			case c.queue <- e:
				n++
				continue
			default:
			}
			break
		}
		if n < len(h.events) {
			h.events = append(h.events[:0], h.events[n:]...)
			h.overflow = true // the rest waits for the next pass
			continue
		}
		delete(c.holds, id)
	}
}

// Ping reports whether NATS is connected.
func (c *Client) Ping(context.Context) error {
	if !c.nc.IsConnected() {
		return fmt.Errorf("nats %s", c.nc.Status())
	}
	return nil
}

// Subscribe feeds fn with every item's live events (core NATS, no
// acknowledgements), including other gateways' accepted bids.
func (c *Client) Subscribe(fn func(models.Event)) error {
	sub, err := c.nc.Subscribe(stream.Subjects, func(m *nats.Msg) {
		e, err := stream.Decode(m.Subject, m.Data)
		if err != nil {
			// Skipped: the cache only ever misses a price, and the
			// archiver dead-letters the event.
			c.log.Warn("skipping an invalid event", "subject", m.Subject, "err", err)
			return
		}
		fn(e)
	})
	if err != nil {
		return fmt.Errorf("subscribe %s: %w", stream.Subjects, err)
	}
	// The feed is a cache; dropping under pressure is better than memory.
	_ = sub.SetPendingLimits(65536, 64<<20)
	c.feedMu.Lock()
	c.feed = sub
	c.feedMu.Unlock()
	return nil
}

// Run publishes queued events, acknowledges them in the outbox, relays what
// the outbox still holds and keeps the stream in place, until ctx is done.
// Then it publishes what is queued (bounded by AckTimeout), acknowledges
// what JetStream confirmed, and drains the connection. Events it could not
// finish stay in the outbox for the next gateway's relay.
func (c *Client) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	pubDone := make(chan struct{})
	wg.Add(3)
	go func() { defer wg.Done(); defer close(c.inflight); c.publishLoop(ctx) }()
	go func() { defer wg.Done(); defer close(pubDone); c.ackLoop() }()
	go func() { defer wg.Done(); c.ensureLoop(ctx) }()
	c.relayLoop(ctx)
	wg.Wait()
	<-pubDone
	c.feedMu.Lock()
	if c.feed != nil {
		_ = c.feed.Unsubscribe()
	}
	c.feedMu.Unlock()
	if err := c.nc.Drain(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		c.nc.Close()
	}
	return nil
}

// Close closes the connection at once; Run drains it gracefully instead.
func (c *Client) Close() { c.nc.Close() }

func (c *Client) publishLoop(ctx context.Context) {
	for {
		select {
		case e := <-c.queue:
			c.publishOne(e)
		case <-ctx.Done():
			// Finish what the bid path handed over before shutdown.
			for {
				select {
				case e := <-c.queue:
					c.publishOne(e)
				default:
					return
				}
			}
		}
	}
}

func (c *Client) publishOne(e service.OutboxEntry) {
	c.holdMu.Lock()
	held := c.holds[e.Event.ItemID] != nil
	c.holdMu.Unlock()
	if held {
		return // a failure since it was queued: the relay publishes it in order
	}
	f, err := c.publishAsync(e)
	if err != nil {
		c.failed(e, err)
		return
	}
	c.inflight <- published{entry: e, ack: f}
}

func (c *Client) publishAsync(e service.OutboxEntry) (jetstream.PubAckFuture, error) {
	data, err := json.Marshal(e.Event)
	if err != nil {
		return nil, fmt.Errorf("encode event %s: %w", e.Event.EventID, err)
	}
	msg := &nats.Msg{Subject: stream.Subject(e.Event.ItemID), Data: data, Header: nats.Header{}}
	// JetStream drops a second message with the same id within the
	// stream's duplicate window, which makes republishing safe.
	msg.Header.Set(jetstream.MsgIDHeader, e.Event.EventID)
	if e.LeaderMax > e.Event.Amount {
		// Beside the event, not in it: viewers and the archive get the
		// event's data only, and a restored item needs the maximum.
		msg.Header.Set(stream.LeaderMaxHeader, strconv.FormatInt(int64(e.LeaderMax), 10))
	}
	return c.js.PublishMsgAsync(msg)
}

func (c *Client) failed(e service.OutboxEntry, err error) {
	c.log.Debug("publish failed", "event_id", e.Event.EventID, "err", err)
	c.holdItem(e.Event.ItemID)
	c.cfg.Metrics.PublishFailed(1)
	if reason, ok := streamFull(err); ok {
		// The stream is there; ensuring it would not make room, and could
		// undo a limit an operator raised by hand.
		c.refused(reason)
		return
	}
	// A missing stream shows as "no responders" or, because our own price
	// feed subscribes to the same subjects, as an ack timeout; ensuring the
	// stream is idempotent and cheap, so any failure asks for it.
	c.requestEnsure()
}

// streamFull says whether err is JetStream refusing a message for lack of
// room, and names the limit: the stream's message count (stream.Config's
// backstop), its bytes or messages per subject (should an operator set
// them), or the account's or server's storage. Such a refusal says nothing
// against the event. Like any failed publish it stays in the outbox, and
// the relay publishes it, in order, once the archival worker's purges have
// made room; it is never dropped as a poison message.
func streamFull(err error) (string, bool) {
	var ae *jetstream.APIError
	if !errors.As(err, &ae) {
		return "", false
	}
	// nats.go names none of these codes; they are nats-server's.
	switch ae.ErrorCode {
	case 10077: // JSStreamStoreFailedF, with the store's error
		switch ae.Description {
		case "maximum messages exceeded":
			return "max_msgs", true
		case "maximum bytes exceeded":
			return "max_bytes", true
		case "maximum messages per subject exceeded":
			return "max_msgs_per_subject", true
		}
	case 10002, // JSAccountResourcesExceeded
		10023, // JSInsufficientResources
		10047: // JSStorageResourcesExceeded
		return "storage", true
	}
	return "", false
}

// refused records a publish refused for lack of room. The first one of an
// episode warns, once, and holds every item, so that bids wait in the
// outbox while the relay probes with one event per pass, instead of each
// bid publishing into another refusal.
func (c *Client) refused(reason string) {
	c.cfg.Metrics.PublishRefused(reason)
	c.fullMu.Lock()
	defer c.fullMu.Unlock()
	c.fullRefused++
	if c.full.Load() {
		return
	}
	c.full.Store(true)
	c.fullSince = time.Now()
	c.cfg.Metrics.StreamFull(true)
	c.log.Warn("the event stream is full and refuses new events; accepted bids wait in the outbox until the archival worker's purges make room",
		"stream", stream.Name, "reason", reason)
	c.holdMu.Lock()
	c.holdAll = true
	c.holdMu.Unlock()
}

// roomAgain ends a full-stream episode after JetStream accepted a publish.
func (c *Client) roomAgain() {
	if !c.full.Load() {
		return
	}
	c.fullMu.Lock()
	defer c.fullMu.Unlock()
	if !c.full.Load() {
		return
	}
	c.full.Store(false)
	c.cfg.Metrics.StreamFull(false)
	c.log.Info("the event stream accepts events again; the relay publishes what waited in the outbox",
		"stream", stream.Name, "full_for", time.Since(c.fullSince).Round(time.Millisecond), "refused", c.fullRefused)
	c.fullRefused = 0
}

// ackLoop waits for acknowledgements in publish order and removes the
// confirmed events from the outbox in batches.
func (c *Client) ackLoop() {
	var batch []service.OutboxEntry
	flush := func() {
		if len(batch) == 0 {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		if err := c.outbox.Ack(ctx, batch...); err != nil {
			// Left in the outbox: the relay republishes and JetStream
			// deduplicates, so this costs time, not correctness.
			c.log.Debug("outbox ack", "err", err, "entries", len(batch))
		}
		cancel()
		c.cfg.Metrics.Published(len(batch))
		batch = batch[:0]
	}
	for p := range c.inflight {
		select {
		case <-p.ack.Ok():
			batch = append(batch, p.entry)
		case err := <-p.ack.Err():
			c.failed(p.entry, err)
		}
		if len(batch) >= 256 || len(c.inflight) == 0 {
			if len(batch) > 0 {
				c.roomAgain()
			}
			flush()
		}
	}
	flush()
}

func (c *Client) ensureLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.ensure:
		}
		for ctx.Err() == nil && c.nc.IsConnected() {
			ectx, cancel := context.WithTimeout(ctx, 5*time.Second)
			_, err := stream.Ensure(ectx, c.js, c.cfg.StreamReplicas)
			cancel()
			if err == nil {
				break
			}
			c.log.Warn("ensuring the event stream", "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
		}
	}
}

// relayLoop republishes outbox entries that were not acknowledged in time:
// NATS was down, the queue was full, or a gateway died mid-publish. While
// an item is held it publishes the whole outbox, young entries included,
// in order, and then releases the holds.
func (c *Client) relayLoop(ctx context.Context) {
	t := time.NewTicker(c.cfg.RelayEvery)
	defer t.Stop()
	var lastBacklog time.Time
	soon := true // the first pass at once: it ends the startup hold
	for {
		var wake <-chan time.Time
		kick := c.kick
		if c.full.Load() {
			// One probe per tick while the stream is full: each refusal
			// kicks, and kicks would turn the probes into a busy loop.
			kick, soon = nil, false
		}
		if soon {
			wake = time.After(50 * time.Millisecond)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-kick:
		case <-wake:
		}
		if time.Since(lastBacklog) >= c.cfg.RelayEvery {
			if n, err := c.updateBacklog(ctx); err == nil && n == 0 {
				// Nothing waits: another gateway's relay published what
				// this one was refused, so the stream took events again.
				c.roomAgain()
			}
			lastBacklog = time.Now()
		}
		if !c.nc.IsConnected() {
			soon = false // the reconnect handler kicks us
			continue
		}
		held := c.startPass()
		age := c.cfg.RelayAge
		if held {
			age = 0
		}
		// complete: the pass read the whole outbox and published it, so
		// the holds may end.
		complete := false
		for ctx.Err() == nil {
			limit := c.cfg.RelayBatch
			probe := c.full.Load()
			if probe {
				// While the stream is full, one refusal a pass rather
				// than a batch of them. Once the probe is accepted the
				// pass goes on with whole batches.
				limit = 1
			}
			n, err := c.relayBatch(ctx, age, limit)
			if err != nil {
				c.log.Debug("outbox relay", "err", err)
				break
			}
			if n < limit {
				// A short batch has seen every outbox; a short probe,
				// one item's at most.
				complete = !probe
				break
			}
		}
		if complete && held && ctx.Err() == nil {
			c.release()
		}
		c.holdMu.Lock()
		soon = c.holdAll || len(c.holds) > 0
		c.holdMu.Unlock()
	}
}

func (c *Client) updateBacklog(ctx context.Context) (int64, error) {
	bctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	n, err := c.outbox.Backlog(bctx)
	if err == nil {
		c.cfg.Metrics.OutboxBacklog(n)
	}
	return n, err
}

// relayBatch republishes up to limit outbox entries older than age, in
// outbox order, waits for their acknowledgements and removes the confirmed
// ones. It returns how many entries it found, and an error if any of them
// could not be published.
func (c *Client) relayBatch(ctx context.Context, age time.Duration, limit int) (int, error) {
	pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	entries, err := c.outbox.Pending(pctx, age, limit)
	cancel()
	if err != nil {
		return 0, fmt.Errorf("outbox pending: %w", err)
	}
	if len(entries) == 0 {
		return 0, nil
	}
	futures := make([]jetstream.PubAckFuture, len(entries))
	var firstErr error
	for i, e := range entries {
		f, err := c.publishAsync(e)
		if err != nil {
			c.failed(e, err)
			firstErr = cmp.Or(firstErr, err)
			continue
		}
		futures[i] = f
	}
	done := make([]service.OutboxEntry, 0, len(entries))
	for i, f := range futures {
		if f == nil {
			continue
		}
		select {
		case <-f.Ok():
			done = append(done, entries[i])
		case err := <-f.Err():
			c.failed(entries[i], err)
			firstErr = cmp.Or(firstErr, err)
		}
	}
	if len(done) > 0 && firstErr == nil {
		// Only a batch without refusals ends an episode: one with room for
		// a few events is still full, and would warn again at once.
		c.roomAgain()
	}
	if len(done) > 0 {
		actx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := c.outbox.Ack(actx, done...)
		cancel()
		if err != nil {
			return len(entries), fmt.Errorf("outbox ack: %w", err)
		}
		c.cfg.Metrics.Published(len(done))
		if age > 0 {
			c.log.Info("relayed outbox entries", "count", len(done))
		}
	}
	if firstErr != nil {
		return len(entries), fmt.Errorf("republish: %w", firstErr)
	}
	return len(entries), nil
}
