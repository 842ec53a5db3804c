// Package websocket fans item events out to WebSocket viewers: a sharded hub
// of items, one live feed per watched item, direct non-blocking writes to
// the viewers that keep up, and per-viewer bounded queues, drained by one
// writer goroutine each, for those that momentarily do not.
package websocket

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"sync"
	"time"

	"github.com/bidding-platform/shared/config"
	"github.com/bidding-platform/shared/models"
	"github.com/bidding-platform/shared/stream"
)

// Source is what the hub needs from the message bus: live events of one item,
// and its stored history.
type Source interface {
	// Subscribe delivers the item's live events to fn, one at a time; more
	// is true when the next one is already waiting.
	Subscribe(itemID string, fn func(data []byte, more bool)) (unsubscribe func() error, err error)
	// Last returns the item's newest stored event; ok is false when it has none.
	Last(ctx context.Context, itemID string) (ev models.Event, ok bool, err error)
	// After calls fn for each stored event with after < seq <= upTo (0: no
	// bound) and returns the seq of the oldest event still retained.
	After(ctx context.Context, itemID string, after, upTo uint64, fn func(models.Event) error) (oldest uint64, err error)
	// Oldest returns the seq of the item's oldest event still retained (0
	// when none is).
	Oldest(ctx context.Context, itemID string) (uint64, error)
	// SubscribeViewers and PublishViewers exchange each instance's viewer
	// count of an item, so every instance can show the total.
	SubscribeViewers(itemID string, fn func(data []byte)) (unsubscribe func() error, err error)
	PublishViewers(itemID string, data []byte) error
}

// Config tunes the hub and its viewers. Zero fields take the defaults below.
type Config struct {
	// SendQueueSize bounds each viewer's queue of messages not yet written.
	SendQueueSize int
	// PingInterval is how often viewers are pinged; PongTimeout is how long a
	// viewer may stay silent (no pong) before it is reaped.
	PingInterval time.Duration
	PongTimeout  time.Duration
	// WriteTimeout bounds one write to a viewer.
	WriteTimeout time.Duration
	// ViewersInterval throttles viewer-count messages per item.
	ViewersInterval time.Duration
	// GapTimeout is how long a missing event may take to appear in JetStream
	// before viewers are told it was missed (default DefaultGapTimeout).
	GapTimeout time.Duration
	// SocketSendBuffer, when positive, fixes each viewer's kernel send
	// buffer (SO_SNDBUF) in bytes. Autotuning lets a stuck viewer's socket
	// hold megabytes before the queue notices; a fixed size bounds that
	// memory and lets slow viewers be detected sooner.
	SocketSendBuffer int
	// MaxConnections caps viewers on this instance.
	MaxConnections int
	// MaxConnsPerIP caps the viewers of one client address on this
	// instance; zero means no cap.
	MaxConnsPerIP int
	// TrustForwardedFor counts a viewer against the rightmost
	// X-Forwarded-For entry instead of its TCP peer. Only behind a load
	// balancer that appends the client's address, such as the ALB.
	TrustForwardedFor bool
	// MaxCatchupReplays caps the since_seq replays read from JetStream at
	// once; CatchupWait bounds how long a resuming viewer waits for one
	// before it is told to come back (CloseTryAgain).
	MaxCatchupReplays int
	CatchupWait       time.Duration
	// AllowedOrigins lists browser origins that may connect besides the
	// page's own host; "*" allows any.
	AllowedOrigins []string
}

// DefaultGapTimeout outlasts the gateway's outbox relay: an event whose
// gateway died before publishing it is republished by another gateway once
// it is 2 s old, on a relay pass that comes every second. Giving up sooner
// would tell viewers an event was missed that is about to arrive.
const DefaultGapTimeout = 5 * time.Second

func (c Config) withDefaults() Config {
	c.SendQueueSize = config.Positive(c.SendQueueSize, 128)
	c.MaxConnections = config.Positive(c.MaxConnections, 50000)
	c.PingInterval = config.Positive(c.PingInterval, 25*time.Second)
	c.PongTimeout = config.Positive(c.PongTimeout, 60*time.Second)
	c.WriteTimeout = config.Positive(c.WriteTimeout, 10*time.Second)
	c.ViewersInterval = config.Positive(c.ViewersInterval, time.Second)
	c.GapTimeout = config.Positive(c.GapTimeout, DefaultGapTimeout)
	c.MaxCatchupReplays = config.Positive(c.MaxCatchupReplays, DefaultMaxCatchupReplays)
	c.CatchupWait = config.Positive(c.CatchupWait, DefaultCatchupWait)
	return c
}

// DefaultMaxCatchupReplays lets a crowd of reconnecting pages through quickly:
// a replay of a few events takes a few JetStream requests, so 64 at once
// keeps JetStream busy without queueing the live feeds' own reads behind a
// thousand of them.
const DefaultMaxCatchupReplays = 64

// DefaultCatchupWait is how long a resuming viewer waits for a replay slot.
// Pages reconnect with backoff after being told to come back, so a longer
// wait only holds connections that could have been spread out.
const DefaultCatchupWait = 10 * time.Second

// numShards spreads the item map over independent locks so joins and leaves
// of different items do not contend.
const numShards = 64

// ErrClosed is returned by Join once the hub is shutting down.
var ErrClosed = errors.New("hub is closed")

// Hub holds the feeds of every item watched on this instance.
type Hub struct {
	cfg     Config
	src     Source
	log     *slog.Logger
	metrics *Metrics
	// instance tells this instance's viewer counts from the others'.
	instance string
	shards   [numShards]shard
	// resync coalesces reconnect notifications: one pending catch-up pass
	// covers any number of reconnects, so the channel holds one.
	resync chan struct{}

	// replays holds one token per since_seq replay running.
	replays chan struct{}
	// closing is closed with closed, for waits that must end at shutdown.
	closing chan struct{}

	mu      sync.Mutex
	closed  bool
	conns   int            // admitted viewers, against MaxConnections
	perAddr map[string]int // admitted viewers per client address
	clients sync.WaitGroup // one per admitted viewer, for shutdown
}

type shard struct {
	mu    sync.Mutex
	feeds map[string]*feed
}

// feed is one item's live subscription on this instance and its viewers.
type feed struct {
	id           string
	ready        chan struct{} // closed once initialised; err says how
	err          error
	refs         int // viewers joined or joining; guarded by the shard lock
	unsub        func() error
	unsubViewers func() error

	mu           sync.Mutex
	initializing bool
	pending      []models.Event // live events received while initializing
	last         uint64         // seq of the last event sent to viewers
	state        state
	clients      []*client // client.idx is each one's position
	senders      []*sender // one per fan-out goroutine, reused
	// out holds messages for every viewer until flush sends them
	// together; each critical section of mu flushes before it ends,
	// except onMessage while more events are already waiting.
	out []*outMsg
	// Viewer counts: other instances' counts, what this instance last
	// published and when, the total last shown, and whether to publish at
	// the next tick regardless.
	remote      map[string]remoteCount
	published   int
	publishedAt time.Time
	shown       int
	announce    bool
	// quiet reads the item's newest stored event once the feed has been
	// quiet for quietAfter (see there).
	quiet *time.Timer
}

// NewHub returns a hub reading events from src.
func NewHub(cfg Config, src Source, metrics *Metrics, log *slog.Logger) *Hub {
	cfg = cfg.withDefaults()
	h := &Hub{cfg: cfg, src: src, log: log, metrics: metrics, instance: newInstanceID(), resync: make(chan struct{}, 1),
		replays: make(chan struct{}, cfg.MaxCatchupReplays), closing: make(chan struct{}), perAddr: make(map[string]int)}
	for i := range h.shards {
		h.shards[i].feeds = make(map[string]*feed)
	}
	return h
}

func (h *Hub) shard(itemID string) *shard {
	f := fnv.New32a()
	_, _ = f.Write([]byte(itemID))
	return &h.shards[f.Sum32()%numShards]
}

// Resync asks the hub to catch every feed up from JetStream; the NATS client
// calls it after a reconnect, when live events may have been missed.
func (h *Hub) Resync() {
	select {
	case h.resync <- struct{}{}:
	default:
	}
}

// Run pushes throttled viewer counts and performs resyncs until ctx ends,
// then disconnects every viewer.
func (h *Hub) Run(ctx context.Context) error {
	tick := time.NewTicker(h.cfg.ViewersInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			h.close()
			return nil
		case now := <-tick.C:
			for _, f := range h.feeds() {
				h.tickViewers(f, now)
			}
		case <-h.resync:
			for _, f := range h.feeds() {
				h.catchUp(ctx, f)
			}
		}
	}
}

// close disconnects every viewer with "going away" so pages reconnect to
// another instance.
func (h *Hub) close() {
	h.mu.Lock()
	if !h.closed {
		h.closed = true
		close(h.closing)
	}
	h.mu.Unlock()
	for _, f := range h.feeds() {
		f.mu.Lock()
		for _, c := range f.clients {
			c.stop(closeGoingAway, "server shutting down")
		}
		f.mu.Unlock()
	}
}

// Wait blocks until every viewer connection has ended or ctx expires.
func (h *Hub) Wait(ctx context.Context) error {
	done := make(chan struct{})
	go func() { h.clients.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("wait for viewers: %w", ctx.Err())
	}
}

func (h *Hub) feeds() []*feed {
	var out []*feed
	for i := range h.shards {
		s := &h.shards[i]
		s.mu.Lock()
		for _, f := range s.feeds {
			out = append(out, f)
		}
		s.mu.Unlock()
	}
	return out
}

// acquire returns the item's feed, creating and initialising it for the first
// viewer. Each successful acquire must be paired with release.
func (h *Hub) acquire(ctx context.Context, itemID string) (*feed, error) {
	s := h.shard(itemID)
	s.mu.Lock()
	f, ok := s.feeds[itemID]
	if !ok {
		f = &feed{id: itemID, ready: make(chan struct{}), initializing: true, remote: make(map[string]remoteCount)}
		s.feeds[itemID] = f
	}
	f.refs++
	s.mu.Unlock()
	if !ok {
		f.err = h.init(ctx, f)
		close(f.ready)
		if f.err != nil {
			s.mu.Lock()
			if s.feeds[itemID] == f {
				delete(s.feeds, itemID) // the next viewer tries afresh
			}
			s.mu.Unlock()
		}
	}
	select {
	case <-f.ready:
	case <-ctx.Done():
		h.release(f)
		return nil, ctx.Err()
	}
	if f.err != nil {
		h.release(f)
		return nil, f.err
	}
	return f, nil
}

// init subscribes live first, then reads the newest stored event: events
// published in between are both buffered and stored, and the buffer is
// replayed through apply, which drops what the snapshot already covers.
func (h *Hub) init(ctx context.Context, f *feed) error {
	unsub, err := h.src.Subscribe(f.id, func(data []byte, more bool) { h.onMessage(f, data, more) })
	if err != nil {
		return err
	}
	ev, ok, err := h.src.Last(ctx, f.id)
	if err != nil {
		_ = unsub()
		return err
	}
	// Without the other instances' counts the page shows this instance's
	// viewers only; that is no reason to refuse the viewer.
	unsubViewers, err := h.src.SubscribeViewers(f.id, func(data []byte) { h.onViewers(f, data) })
	if err != nil {
		h.log.Warn("subscribe viewer counts", "item_id", f.id, "err", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.unsub, f.unsubViewers = unsub, unsubViewers
	if ok {
		f.last = ev.Seq
		f.state.apply(ev)
	}
	// apply may let go of f.mu while it fills a hole, and onMessage then
	// adds to pending, so the loop takes events until none is left.
	for len(f.pending) > 0 {
		p := f.pending[0]
		f.pending = f.pending[1:]
		h.apply(f, p)
	}
	h.flush(f)
	f.quiet = time.AfterFunc(quietAfter, func() { h.quietCheck(f) })
	f.pending, f.initializing = nil, false
	h.metrics.subscriptions.Inc()
	return nil
}

// quietAfter is how long after a feed's start, and after each of its live
// events, the item's newest stored event is read once more. A live event can
// be lost: on a NATS cluster a new subscription's interest reaches the
// other servers a moment after it is taken, and routes between servers
// drop what they carry when a server goes away. Within the item's stream
// a lost event is a hole the next event reveals, but the item's last event
// has no next one, and its viewers would wait for it for ever. A busy item
// never goes quiet that long, so this costs one read per lull.
const quietAfter = time.Second

// quietCheck catches f up with the stream, unless the feed has ended or the
// service is shutting down; a read that fails is tried again (catchUp).
func (h *Hub) quietCheck(f *feed) {
	select {
	case <-h.closing:
		return
	case <-f.ready: // the timer starts at the end of init, just before
	}
	s := h.shard(f.id)
	s.mu.Lock()
	current := s.feeds[f.id] == f
	s.mu.Unlock()
	if current {
		h.catchUp(context.Background(), f)
	}
}

func (h *Hub) release(f *feed) {
	s := h.shard(f.id)
	s.mu.Lock()
	f.refs--
	last := f.refs == 0
	if last && s.feeds[f.id] == f {
		delete(s.feeds, f.id)
	}
	s.mu.Unlock()
	if last {
		f.mu.Lock()
		if f.quiet != nil {
			f.quiet.Stop()
		}
		f.mu.Unlock()
	}
	if last && f.err == nil && f.unsub != nil {
		if err := f.unsub(); err != nil {
			h.log.Debug("unsubscribe", "item_id", f.id, "err", err)
		}
		if f.unsubViewers != nil {
			_ = f.unsubViewers()
			h.publishViewers(f.id, 0) // the others drop this instance at once
		}
		h.metrics.subscriptions.Dec()
	}
}

// maxEventBatch bounds how many events wait for the ones behind them, so a
// busy item still goes out in steady steps.
const maxEventBatch = 32

// onMessage handles one live event from NATS. While more are waiting, the
// event is held so that the next ones go out with it: one write per viewer
// for the lot, which lets the fan-out catch up when events come faster than
// it writes them one by one.
func (h *Hub) onMessage(f *feed, data []byte, more bool) {
	// The subscription is on the item's subject, so decoding against it
	// also refuses an event of another item.
	ev, err := stream.Decode(stream.Subject(f.id), data)
	ok := err == nil
	if !ok {
		h.log.Warn("skipping an invalid event", "item_id", f.id, "err", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.initializing {
		if ok {
			f.pending = append(f.pending, ev)
		}
		return
	}
	if ok {
		h.apply(f, ev)
	}
	if !more {
		f.quiet.Reset(quietAfter) // the lull starts after the last event waiting
	}
	if !more || len(f.out) >= maxEventBatch {
		h.flush(f)
	}
}

// apply sends ev to the feed's viewers in seq order, first fetching from
// JetStream any events between the last one sent and ev. Caller holds f.mu,
// which fill may let go of for a while.
func (h *Hub) apply(f *feed, ev models.Event) {
	if ev.Seq > f.last+1 {
		h.fill(f, ev.Seq-1)
	}
	if ev.Seq <= f.last {
		return // already sent: a duplicate, or covered by the snapshot or a catch-up
	}
	h.deliver(f, ev)
}

// fill sends events f.last+1..upTo from JetStream. An event published out of
// order may not be stored yet, so a hole is retried until GapTimeout; after
// that viewers are told what is missing. Caller holds f.mu. fill lets go of
// it while it reads JetStream and waits, so that viewers can join and leave
// the item meanwhile, and holds it again when it returns. What a catch-up
// sent in between is not sent twice.
func (h *Hub) fill(f *feed, upTo uint64) {
	ctx, cancel := context.WithTimeout(context.Background(), h.cfg.GapTimeout)
	defer cancel()
	h.metrics.holes.Inc()
	defer h.metrics.holes.Dec()
	var read []models.Event // in seq order, sent under f.mu
	o := newOrderer(f.last+1, func(ev models.Event) error {
		read = append(read, ev)
		return nil
	})
	// send delivers what was read and catches the orderer up with what
	// others delivered. Caller holds f.mu.
	send := func() {
		for {
			for _, ev := range read {
				if ev.Seq == f.last+1 {
					h.deliver(f, ev)
					h.metrics.recovered.Inc()
				}
			}
			read = read[:0]
			if f.last < o.next {
				break
			}
			_ = o.skip(f.last) // emit never fails here
		}
		h.flush(f)
	}
	wait := 5 * time.Millisecond
	for f.last < upTo {
		after := f.last
		f.mu.Unlock()
		_, err := h.src.After(ctx, f.id, after, upTo, o.add)
		gaveUp := errors.Is(err, errHeldFull)
		if !gaveUp && o.next <= upTo {
			if err != nil && ctx.Err() == nil {
				h.log.Warn("read history", "item_id", f.id, "after", after, "err", err)
			}
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				gaveUp = true
			case <-t.C:
				wait = min(wait*2, 200*time.Millisecond)
			}
		}
		f.mu.Lock()
		send()
		if gaveUp {
			break
		}
	}
	// Give up on what is still missing: announce each hole, send the rest.
	for f.last < upTo {
		from, to, ok := o.hole()
		if !ok {
			h.missed(f, f.last+1, upTo)
			return
		}
		h.missed(f, from, to)
		_ = o.skip(to) // emit never fails here
		send()
	}
}

func (h *Hub) missed(f *feed, from, to uint64) {
	h.log.Warn("events missed", "item_id", f.id, "from_seq", from, "to_seq", to)
	h.metrics.missed.Add(float64(to - from + 1))
	f.last = to
	m, err := prepare(missedMessage{Type: TypeMissed, ItemID: f.id, FromSeq: from, ToSeq: to, ServerTime: time.Now().UTC()}, 0, time.Time{})
	if err != nil {
		h.log.Error("encode missed message", "err", err)
		return
	}
	h.queue(f, m)
}

// catchUp sends whatever JetStream holds beyond the feed's last event, after
// a reconnect during which live events were not received.
func (h *Hub) catchUp(ctx context.Context, f *feed) {
	select {
	case <-f.ready:
	default:
		return // still initialising: init reads the newest state itself
	}
	if f.err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	ev, ok, err := h.src.Last(ctx, f.id)
	if err != nil {
		h.log.Warn("catch up; trying again", "item_id", f.id, "err", err)
		f.mu.Lock()
		f.quiet.Reset(quietAfter)
		f.mu.Unlock()
		return
	}
	if !ok {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	h.flush(f)
	if ev.Seq > f.last {
		h.log.Info("catching up after reconnect", "item_id", f.id, "from_seq", f.last+1, "to_seq", ev.Seq)
		h.fill(f, ev.Seq)
		h.flush(f)
	}
}

// deliver encodes ev once and queues it for every viewer. Caller holds f.mu
// and flushes.
func (h *Hub) deliver(f *feed, ev models.Event) {
	f.last = ev.Seq
	f.state.apply(ev)
	m, err := prepare(eventMessage{Event: public(ev), ServerTime: time.Now().UTC()}, ev.Seq, ev.Timestamp)
	if err != nil {
		h.log.Error("encode event", "item_id", f.id, "seq", ev.Seq, "err", err)
		return
	}
	h.queue(f, m)
}

// join adds c to the item's feed: first a snapshot, then, with since set,
// the stored events after *since, then live events, with nothing missing or
// repeated in between. It returns the feed for leave.
func (h *Hub) join(ctx context.Context, c *client, itemID string, since *uint64) (*feed, error) {
	h.mu.Lock()
	closed := h.closed
	h.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	f, err := h.acquire(ctx, itemID)
	if err != nil {
		return nil, fmt.Errorf("watch %s: %w", itemID, err)
	}
	f.mu.Lock()
	if since != nil && *since < f.last {
		// The replay needs a slot; the snapshot and the replay's end are
		// taken once it has one, so nothing is sent while it waits.
		f.mu.Unlock()
		release, err := h.replaySlot(ctx)
		if err != nil {
			h.release(f)
			return nil, err
		}
		defer release()
		f.mu.Lock()
	}
	h.flush(f) // events held back are older than the snapshot
	snap, err := prepare(snapshotMessage{
		Type: TypeSnapshot, ItemID: itemID, CurrentBid: f.state.currentBid, HighestBidderID: f.state.bidder,
		Status: f.state.statusOr("unknown"), Seq: f.last, EndsAt: f.state.endsAt, BidCount: f.state.bidCount,
		WinnerID: f.state.winner, Viewers: f.total() + 1, ServerTime: time.Now().UTC(),
	}, 0, time.Time{})
	if err != nil {
		f.mu.Unlock()
		h.release(f)
		return nil, fmt.Errorf("encode snapshot: %w", err)
	}
	s := f.sender()
	c.push([]*outMsg{snap}, snap.frame, s)
	s.publish(h.metrics)
	upTo := f.last
	f.add(c)
	h.mu.Lock()
	if h.closed {
		// close ran between the check above and now and did not see c.
		c.stop(closeGoingAway, "server shutting down")
	}
	h.mu.Unlock()
	if since == nil || *since >= upTo {
		if since != nil {
			c.minSeq = *since // a viewer ahead of this instance skips what it has
		}
		f.mu.Unlock()
		return f, nil
	}
	// Live events go to c.backlog while the history is read without the
	// feed's lock, so other viewers are not held up by this one's replay.
	c.catching = true
	f.mu.Unlock()

	err = h.replay(ctx, c, itemID, *since, upTo)

	f.mu.Lock()
	defer f.mu.Unlock()
	c.catching = false
	backlog := c.backlog
	c.backlog = nil
	if err != nil {
		f.remove(c)
		h.release(f)
		return nil, err
	}
	if len(backlog) > 0 {
		s = f.sender()
		c.push(backlog, nil, s)
		s.publish(h.metrics)
	}
	return f, nil
}

// maxReplay bounds how many stored events one resuming viewer is sent.
const maxReplay = 10000

// replay queues the stored events since < seq <= upTo for c, waiting for
// room in its queue: the viewer's writer is already draining it. Events no
// longer retained are announced instead of skipped silently.
func (h *Hub) replay(ctx context.Context, c *client, itemID string, since, upTo uint64) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	o := newOrderer(since+1, func(ev models.Event) error {
		m, err := prepare(eventMessage{Event: public(ev), ServerTime: time.Now().UTC(), Replay: true}, ev.Seq, ev.Timestamp)
		if err != nil {
			return err
		}
		return c.enqueue(ctx, m)
	})
	truncated := func(first uint64) error {
		return c.enqueue(ctx, h.mustPrepare(truncatedMessage{Type: TypeHistoryTruncated, ItemID: itemID, SinceSeq: since, FirstSeq: first, ServerTime: time.Now().UTC()}))
	}
	missed := func(from, to uint64) error {
		return c.enqueue(ctx, h.mustPrepare(missedMessage{Type: TypeMissed, ItemID: itemID, FromSeq: from, ToSeq: to, ServerTime: time.Now().UTC()}))
	}
	from := since
	if upTo-since > maxReplay {
		// A resume point this old is a page left open for hours; what it
		// missed is beyond a live view, so it gets the newest part only.
		from = upTo - maxReplay
		if err := truncated(from + 1); err != nil {
			return err
		}
		o.next = from + 1
	}
	seen := false
	oldest, err := h.src.Oldest(ctx, itemID)
	if err != nil {
		return fmt.Errorf("replay %s after %d: %w", itemID, since, err)
	}
	if oldest > o.next {
		// The oldest retained event is newer than what the viewer has:
		// the history in between was discarded. (The first event read is
		// no guide: the stream may hold an item's events slightly out of
		// seq order.)
		if err := truncated(oldest); err != nil {
			return err
		}
		o.next = oldest
	}
	_, err = h.src.After(ctx, itemID, from, upTo, func(ev models.Event) error {
		seen = true
		err := o.add(ev)
		if errors.Is(err, errHeldFull) {
			from, to, _ := o.hole()
			if err := missed(from, to); err != nil {
				return err
			}
			if err := o.skip(to); err != nil {
				return err
			}
			return o.add(ev)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("replay %s after %d: %w", itemID, since, err)
	}
	if !seen && oldest == 0 {
		// Nothing of the item is stored any more (the stream was lost).
		return truncated(upTo + 1)
	}
	// Holes are events the live feed carried but the stream does not hold
	// yet (a publish that failed with a NATS node is stored later by the
	// gateway's relay): missed, not discarded, so the viewer may resume.
	for o.next <= upTo {
		from, to, ok := o.hole()
		if !ok {
			return missed(o.next, upTo)
		}
		if err := missed(from, to); err != nil {
			return err
		}
		if err := o.skip(to); err != nil {
			return err
		}
	}
	return nil
}

func (h *Hub) mustPrepare(v any) *outMsg {
	m, err := prepare(v, 0, time.Time{})
	if err != nil {
		panic(fmt.Sprintf("encode %T: %v", v, err)) // only fixed message structs reach here
	}
	return m
}

// leave removes c from its feed, dropping the feed's subscription after the
// last viewer.
func (h *Hub) leave(f *feed, c *client) {
	f.mu.Lock()
	f.remove(c)
	f.mu.Unlock()
	h.release(f)
}

func (s *state) statusOr(def string) string {
	if s.status == "" {
		return def
	}
	return s.status
}
