package service

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/bidding-platform/shared/config"
	"github.com/bidding-platform/shared/models"
)

// Publisher hands an accepted event to JetStream. It must not block: the
// event is already in the outbox, so a publisher that cannot keep up may
// drop it and let the relay deliver it later.
type Publisher interface {
	Publish(e OutboxEntry)
	// Hold makes the item's next events wait for the relay, which
	// publishes the outbox in order: a bid whose outcome is unknown may
	// have left an event there that nobody handed over.
	Hold(itemID string)
}

// Metrics observes the bid path. A nil Metrics in Config records nothing.
type Metrics interface {
	// Prefiltered counts a bid answered from the local price cache.
	Prefiltered(o models.Outcome)
	// StoreCall records one PlaceBids round trip and how many bids it carried.
	StoreCall(d time.Duration, bids int, err error)
}

// Config tunes the bid path. The zero value is filled by New with the
// defaults noted on each field.
type Config struct {
	// Prefilter answers bids that cannot win from the local price cache.
	Prefilter bool
	// Coalesce batches concurrent bids on one item into one store call.
	Coalesce bool
	// MaxBatch bounds one coalesced store call (default 64), which bounds
	// the script's run time and so Redis's latency for everyone else.
	MaxBatch int
	// StoreTimeout bounds one store call (default 2s), so a hung Redis gives
	// a 503 instead of a hang.
	StoreTimeout time.Duration
	// SoftClose and SoftCloseMaxExtensions are passed to the store with
	// every bid.
	SoftClose              time.Duration
	SoftCloseMaxExtensions int64
	// MaxIdempotencyKeys is passed to the store with every bid.
	MaxIdempotencyKeys int64
	// AutoCreate makes Item create a default active item for an unknown id.
	AutoCreate bool
	// DefaultDuration is the length of auto-created and unspecified
	// auctions (default 24h).
	DefaultDuration time.Duration
	// MaxDuration bounds an auction's length (default 30 days).
	MaxDuration time.Duration
	// ClockMargin keeps the pre-filter away from an auction's end (default
	// 2s): the store decides by Redis's clock, ours may be ahead or behind.
	ClockMargin time.Duration
	// CacheTTL is how long a cached price is trusted without news from the
	// store or the event stream (default 10s); Redis may have restarted
	// empty meanwhile.
	CacheTTL time.Duration
	Metrics  Metrics
	// Archive, when set, answers for closed items the store has let go.
	Archive Archive
	// Users and Live, when both are set, answer for a user's bids and
	// items (UserBids, UserItems).
	Users UserArchive
	Live  LiveItems
	// Log, when set, records items durably and is what the store is
	// restored from when Redis lost or may have lost their state.
	Log EventLog
	// Open lists live auctions for Browse, Finals closed and cancelled
	// ones; Browse answers 503 for what is not set.
	Open   OpenIndex
	Finals FinalArchive
}

// Archive holds closed items after the store has let them go.
type Archive interface {
	// ArchivedItem returns a closed item; found is false if the archive
	// does not hold it.
	ArchivedItem(ctx context.Context, id string) (it models.Item, found bool, err error)
}

func (c *Config) defaults() {
	c.MaxBatch = config.Positive(c.MaxBatch, 64)
	c.StoreTimeout = config.Positive(c.StoreTimeout, 2*time.Second)
	c.DefaultDuration = config.Positive(c.DefaultDuration, 24*time.Hour)
	c.MaxDuration = config.Positive(c.MaxDuration, 30*24*time.Hour)
	c.ClockMargin = config.Positive(c.ClockMargin, 2*time.Second)
	c.CacheTTL = config.Positive(c.CacheTTL, 10*time.Second)
	if c.Metrics == nil {
		c.Metrics = nopMetrics{}
	}
}

type nopMetrics struct{}

func (nopMetrics) Prefiltered(models.Outcome)          {}
func (nopMetrics) StoreCall(time.Duration, int, error) {}

// Service places bids and manages items on top of a BidStore.
type Service struct {
	store BidStore
	pub   Publisher
	cfg   Config
	log   *slog.Logger
	now   func() time.Time
	lanes laneMap
	// drains counts lane goroutines, so shutdown can wait for them.
	drains sync.WaitGroup
	// checks merges concurrent checks of one item against the event log.
	checks singleflight.Group
}

// New builds a Service. pub receives every event the store accepts.
func New(store BidStore, pub Publisher, cfg Config, log *slog.Logger) *Service {
	cfg.defaults()
	s := &Service{store: store, pub: pub, cfg: cfg, log: log, now: time.Now}
	s.lanes.init()
	return s
}

// Wait blocks until no coalesced batch is running. Call it after the HTTP
// server stopped accepting bids.
func (s *Service) Wait() { s.drains.Wait() }

// Bid is one validated bid from a client.
type Bid struct {
	ItemID         string
	UserID         string
	Amount         models.Money
	Max            bool
	IdempotencyKey string
}

// PlaceBid decides one bid. A bid the local cache proves cannot win is
// answered without a store call; the others are coalesced with concurrent
// bids on the same item. ErrUnavailable (wrapped) means Redis could not
// decide in time. A bid on an item the store no longer holds because it
// closed long ago is answered as on a closed auction.
func (s *Service) PlaceBid(ctx context.Context, b Bid) (BidResult, error) {
	res, err := s.placeBid(ctx, b)
	// An item Redis lost or has not checked since it restarted is brought
	// up to the event log first; a second round covers a Redis that
	// restarted again meanwhile.
	for range 2 {
		lost := err == nil && res.Outcome == models.OutcomeNotFound && s.cfg.Log != nil
		if !lost && !errors.Is(err, ErrUnchecked) {
			break
		}
		if cerr := s.check(ctx, b.ItemID); errors.Is(cerr, ErrItemNotFound) {
			break
		} else if cerr != nil {
			return BidResult{}, cerr
		}
		res, err = s.placeBid(ctx, b)
	}
	if errors.Is(err, ErrUnchecked) {
		return BidResult{}, fmt.Errorf("%w: %w", errLogUnavailable, err)
	}
	if err == nil && res.Outcome == models.OutcomeNotFound {
		if it, found := s.archived(ctx, b.ItemID); found {
			return BidResult{Outcome: models.OutcomeNotActive, Item: it}, nil
		}
	}
	return res, err
}

func (s *Service) placeBid(ctx context.Context, b Bid) (BidResult, error) {
	for {
		l := s.lanes.get(b.ItemID, s.now())
		l.mu.Lock()
		if l.dead {
			// Evicted between lookup and lock; the map holds a fresh lane.
			l.mu.Unlock()
			continue
		}
		now := s.now()
		l.lastUsed = now
		// Only an idle lane's cache equals what Redis holds now (as far as
		// this gateway knows); while a batch is in flight its result may
		// already be superseded, so queued bids are filtered when the batch
		// returns (see round), which keeps every answer linearizable.
		if s.cfg.Prefilter && b.IdempotencyKey == "" && !l.busy && l.direct == 0 {
			if res, ok := l.decide(b.Amount, b.Max, now, s.cfg); ok {
				l.mu.Unlock()
				s.cfg.Metrics.Prefiltered(res.Outcome)
				return res, nil
			}
		}
		req := s.request(b)
		if !s.cfg.Coalesce {
			l.direct++
			l.mu.Unlock()
			return s.direct(l, req)
		}
		p := &pending{req: req, done: make(chan struct{})}
		l.queue = append(l.queue, p)
		if l.busy {
			l.mu.Unlock()
			select {
			case <-p.done:
				return p.res, p.err
			case <-ctx.Done():
				// The bid may still be decided; the client has gone away.
				return BidResult{}, ctx.Err()
			}
		}
		l.busy = true
		l.mu.Unlock()
		// This goroutine runs the first round itself (no hand-off for an
		// uncontended bid) and passes the lane on if others queued meanwhile.
		s.drains.Add(1)
		if more := s.round(l); more {
			go s.drainLoop(l)
		} else {
			s.drains.Done()
		}
		<-p.done // round always answers the bids it took, and it took ours.
		return p.res, p.err
	}
}

func (s *Service) request(b Bid) BidRequest {
	req := BidRequest{
		ItemID:             b.ItemID,
		UserID:             b.UserID,
		Amount:             b.Amount,
		Max:                b.Max,
		IdempotencyKey:     b.IdempotencyKey,
		BidID:              models.NewBidID(),
		EventID:            models.NewEventID(),
		SoftClose:          s.cfg.SoftClose,
		MaxExtensions:      s.cfg.SoftCloseMaxExtensions,
		MaxIdempotencyKeys: s.cfg.MaxIdempotencyKeys,
	}
	if b.IdempotencyKey != "" {
		req.RequestHash = RequestHash(b.ItemID, b.UserID, b.Amount, b.Max)
	}
	return req
}

// RequestHash fingerprints what a bid asks for, so an idempotency key reused
// for a different bid is told apart from a retry.
func RequestHash(itemID, userID string, amount models.Money, max bool) string {
	h := sha256.New()
	h.Write([]byte(itemID))
	h.Write([]byte{0})
	h.Write([]byte(userID))
	h.Write([]byte{0})
	h.Write(strconv.AppendInt(nil, int64(amount), 10))
	if max {
		// A plain bid's hash stays what it was before maxima existed.
		h.Write([]byte{0, 'm'})
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// direct places one bid without coalescing (COALESCE=false, for measuring).
func (s *Service) direct(l *lane, req BidRequest) (BidResult, error) {
	results, err := s.call([]BidRequest{req})
	s.holdIfUnknown(req.ItemID, err)
	l.mu.Lock()
	l.learn(results, err, s.now())
	l.direct--
	l.mu.Unlock()
	if err != nil {
		return BidResult{}, err
	}
	s.publish(results[0])
	return results[0], nil
}

func (s *Service) call(reqs []BidRequest) ([]BidResult, error) {
	// Not the request's context: a coalesced call carries other clients'
	// bids, and a bid in flight should be decided even if its client left.
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.StoreTimeout)
	defer cancel()
	start := time.Now()
	results, err := s.store.PlaceBids(ctx, reqs)
	if err == nil && len(results) != len(reqs) {
		err = fmt.Errorf("store answered %d of %d bids: %w", len(results), len(reqs), ErrUnavailable)
	}
	if err != nil && models.ErrorKind(err) == models.KindInternal {
		// Redis answered, but with something we cannot use (a script
		// error, a malformed reply): a bug to log, not an outage to retry.
		err = models.Wrap(models.KindInternal, "bid store answered with an error", err)
	}
	s.cfg.Metrics.StoreCall(time.Since(start), len(reqs), err)
	return results, err
}

func (s *Service) holdIfUnknown(itemID string, err error) {
	if errors.Is(err, ErrOutcomeUnknown) {
		s.pub.Hold(itemID)
	}
}

func (s *Service) publish(r BidResult) {
	for _, e := range r.Entries {
		s.pub.Publish(e)
	}
}

func (s *Service) drainLoop(l *lane) {
	defer s.drains.Done()
	for s.round(l) {
	}
}

// round answers what the cache already decides, sends up to MaxBatch of the
// remaining queued bids to the store in one call, and reports whether the
// lane still has work. The lane is busy throughout; when round returns
// false it has marked the lane idle.
func (s *Service) round(l *lane) bool {
	l.mu.Lock()
	now := s.now()
	if s.cfg.Prefilter {
		kept := l.queue[:0]
		for _, p := range l.queue {
			if p.req.IdempotencyKey == "" {
				if res, ok := l.decide(p.req.Amount, p.req.Max, now, s.cfg); ok {
					p.finish(res, nil)
					s.cfg.Metrics.Prefiltered(res.Outcome)
					continue
				}
			}
			kept = append(kept, p)
		}
		clear(l.queue[len(kept):])
		l.queue = kept
	}
	n := min(len(l.queue), s.cfg.MaxBatch)
	if n == 0 {
		l.busy = false
		l.mu.Unlock()
		return false
	}
	batch := make([]*pending, n)
	copy(batch, l.queue)
	rest := copy(l.queue, l.queue[n:])
	clear(l.queue[rest:])
	l.queue = l.queue[:rest]
	l.mu.Unlock()

	reqs := make([]BidRequest, n)
	for i, p := range batch {
		reqs[i] = p.req
	}
	results, err := s.call(reqs)
	// Before the next round can publish anything of this item.
	s.holdIfUnknown(reqs[0].ItemID, err)
	l.mu.Lock()
	l.learn(results, err, s.now())
	var stranded []*pending
	if err != nil {
		// Redis did not answer in time. The bids queued behind this call
		// arrived during the same outage: answer them now instead of making
		// each batch wait out its own timeout, which would stretch a 503
		// to several timeouts under load. None of them reached Redis.
		stranded, l.queue = l.queue, nil
	}
	l.mu.Unlock()
	for _, p := range stranded {
		p.finish(BidResult{}, err)
	}
	for i, p := range batch {
		if err != nil {
			p.finish(BidResult{}, err)
			continue
		}
		s.publish(results[i])
		p.finish(results[i], nil)
	}
	return true
}

// Observe feeds the price cache from the live event stream, which carries
// other gateways' accepted bids and auction closes.
func (s *Service) Observe(e models.Event) {
	l := s.lanes.lookup(e.ItemID)
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.known || e.Seq <= l.item.Seq {
		return
	}
	switch e.Type {
	case models.EventBid:
		l.item.CurrentBid = e.Amount
		l.item.HighestBidderID = e.UserID
		l.item.BidCount = max(l.item.BidCount+1, e.BidCount)
	case models.EventAuctionClosed:
		l.item.Status = models.StatusClosed
	default:
		// An event we do not understand may change anything: stop trusting.
		l.known = false
		return
	}
	if e.EndsAt != nil {
		l.item.EndsAt = *e.EndsAt
	}
	l.item.Seq = e.Seq
	l.checked = s.now()
}

type pending struct {
	req  BidRequest
	res  BidResult
	err  error
	done chan struct{}
}

func (p *pending) finish(res BidResult, err error) {
	p.res, p.err = res, err
	close(p.done)
}

// lane is one item's queue of bids and its cached state.
type lane struct {
	mu sync.Mutex
	// item is the last state the store or the event stream told us about;
	// valid when known.
	item    models.Item
	known   bool
	checked time.Time
	// busy: a round is running; bids queue behind it.
	busy bool
	// direct counts uncoalesced store calls in flight (COALESCE=false);
	// like busy, it means the cache may already be superseded.
	direct   int
	queue    []*pending
	lastUsed time.Time
	// dead: evicted from the map; whoever holds it looks again.
	dead bool
}

// decide answers a bid from the cache when the answer is certain. The
// cache may be behind the store but never ahead of it, and the rules only
// ever raise the minimum next bid and close an auction for good, so an
// answer other than acceptance stays right. The store decides by Redis's
// clock, which may be ahead of ours or behind by up to ClockMargin: the
// answer is trusted only when the rules give it at both ends of that window.
//
// With maxima it stays exact: it answers only rejections, and a bid is
// rejected below the minimum next bid whoever leads with whatever maximum.
// A bid above it may still lose to a hidden maximum, which only the store
// knows. The cache never acts as the bidder (no user), since a leader's
// own maximum is judged against that maximum.
func (l *lane) decide(amount models.Money, maxBid bool, now time.Time, cfg Config) (BidResult, bool) {
	if !l.known || now.Sub(l.checked) > cfg.CacheTTL {
		return BidResult{}, false
	}
	bid := models.BidAttempt{Amount: amount, Max: maxBid}
	early := models.Decide(l.item, bid, now.Add(-cfg.ClockMargin))
	if early.Outcome.Placed() {
		return BidResult{}, false
	}
	late := models.Decide(l.item, bid, now.Add(cfg.ClockMargin))
	if late.Outcome != early.Outcome || late.Status != early.Status {
		return BidResult{}, false
	}
	return BidResult{Outcome: early.Outcome, Item: early.Item}, true
}

// learn updates the cache from a store call's answers.
func (l *lane) learn(results []BidResult, err error, now time.Time) {
	if err != nil {
		// Redis may come back empty or restored from an old snapshot.
		l.known = false
		return
	}
	for _, r := range results {
		switch {
		case r.Replayed || r.Item.ID == "":
			// A stored first answer describes the past, not the present.
		case r.Outcome == models.OutcomeNotFound:
			l.known = false
		case r.Outcome.Placed() || r.Outcome == models.OutcomeTooLow || r.Outcome == models.OutcomeNotActive:
			if !l.known || r.Item.Seq >= l.item.Seq {
				l.item, l.known, l.checked = r.Item, true, now
			}
		}
	}
}

const (
	laneShards = 64
	// maxLanesPerShard bounds the cache at 64*4096 items; idle lanes are
	// evicted first.
	maxLanesPerShard = 4096
	laneIdle         = time.Minute
)

// laneMap is a sharded map of lanes, so lookups for different items do not
// contend on one lock.
type laneMap struct {
	shards [laneShards]laneShard
}

type laneShard struct {
	mu    sync.RWMutex
	lanes map[string]*lane
}

func (m *laneMap) init() {
	for i := range m.shards {
		m.shards[i].lanes = make(map[string]*lane)
	}
}

func (m *laneMap) shard(id string) *laneShard {
	// FNV-1a: cheap and allocation-free.
	h := uint32(2166136261)
	for i := 0; i < len(id); i++ {
		h ^= uint32(id[i])
		h *= 16777619
	}
	return &m.shards[h%laneShards]
}

func (m *laneMap) lookup(id string) *lane {
	sh := m.shard(id)
	sh.mu.RLock()
	l := sh.lanes[id]
	sh.mu.RUnlock()
	return l
}

func (m *laneMap) get(id string, now time.Time) *lane {
	if l := m.lookup(id); l != nil {
		return l
	}
	sh := m.shard(id)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if l := sh.lanes[id]; l != nil {
		return l
	}
	if len(sh.lanes) >= maxLanesPerShard {
		sh.evict(now)
	}
	l := &lane{lastUsed: now}
	sh.lanes[id] = l
	return l
}

// evict drops idle lanes; if none has been idle long, it drops any that is
// not busy, so the map stays bounded.
func (sh *laneShard) evict(now time.Time) {
	var spare string
	for id, l := range sh.lanes {
		l.mu.Lock()
		if !l.busy && l.direct == 0 && len(l.queue) == 0 {
			if now.Sub(l.lastUsed) > laneIdle {
				l.dead = true
				delete(sh.lanes, id)
			} else if spare == "" {
				spare = id
			}
		}
		l.mu.Unlock()
	}
	if len(sh.lanes) >= maxLanesPerShard && spare != "" {
		l := sh.lanes[spare]
		l.mu.Lock()
		if !l.busy && l.direct == 0 && len(l.queue) == 0 {
			l.dead = true
			delete(sh.lanes, spare)
		}
		l.mu.Unlock()
	}
}
