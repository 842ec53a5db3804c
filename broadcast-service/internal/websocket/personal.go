package websocket

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bidding-platform/shared/config"
	"github.com/bidding-platform/shared/models"
)

// Personal notice types of WS /ws/users/{id}.
const (
	TypeReady       = "ready"
	TypeOutbid      = "outbid"
	TypeAuctionWon  = "auction_won"
	TypeAuctionLost = "auction_lost"
	TypeEndingSoon  = "auction_ending_soon"
)

// DefaultEndingSoonLead is how long before an item's end its leader is
// told it ends soon.
const DefaultEndingSoonLead = 5 * time.Minute

// DefaultMaxConnsPerUser lets one user keep a channel open in every tab
// they are likely to have, and no more.
const DefaultMaxConnsPerUser = 10

// ErrUserFull: the user has MaxConnsPerUser personal channels open on this
// instance.
var ErrUserFull = errors.New("too many personal channels for this user")

// PersonalConfig tunes the personal channels. Zero fields take defaults,
// except EndingSoonLead, where zero turns ending-soon notices off.
type PersonalConfig struct {
	EndingSoonLead  time.Duration
	MaxConnsPerUser int
	// SeedTimeout bounds the read of a connecting user's items from the
	// gateway; the channel works from live events without it.
	SeedTimeout time.Duration
	// NameTimeout bounds how long an item's outbid notices wait for its
	// name from the gateway.
	NameTimeout time.Duration
}

// DefaultSeedTimeout bounds the read of a connecting user's items: the
// channel is not ready before it.
const DefaultSeedTimeout = 5 * time.Second

// DefaultNameTimeout: the gateway answers an item from Redis in well
// under a millisecond, and a notice is worth more on time than named.
const DefaultNameTimeout = time.Second

// SeedItem is one item a user bids on, as the gateway knows it when the
// user connects.
type SeedItem struct {
	ID              string
	Name            string
	Status          models.Status
	CurrentBid      models.Money
	HighestBidderID string
	EndsAt          *time.Time
	Seq             uint64
	Leading         bool
}

// Gateway is what the personal channels read from the API gateway: the
// items a user bids on (not final yet), with the user's own token and on
// behalf of their address (clientIP, for the gateway's per-address limit),
// and an item's name, which bid events do not carry.
type Gateway interface {
	Bidding(ctx context.Context, userID, token, clientIP string) ([]SeedItem, error)
	ItemName(ctx context.Context, itemID string) (string, error)
}

// maxNameLookups bounds the gateway reads of item names in flight, so a
// burst of new items costs the gateway a few requests at a time;
// nameRetryAfter spaces the reads of one item's name while the gateway
// fails.
const (
	maxNameLookups = 8
	nameRetryAfter = 10 * time.Second
)

// Personal routes notices to the personal channels of this instance. It
// sees every item's events (OnEvent, in stream order) and keeps state only
// for items a connected user bid on: who leads, the end, the name. Every
// instance sees every event, so a user's channels on any instance get
// their notices.
type Personal struct {
	hub     *Hub
	cfg     PersonalConfig
	gateway Gateway
	log     *slog.Logger
	metrics *PersonalMetrics
	// following is closed once events are followed: before that, a
	// channel cannot promise notices and is not told it is ready.
	following chan struct{}
	followed  sync.Once

	mu     sync.Mutex
	closed bool
	users  map[string]*personalUser
	items  map[string]*trackedItem
	// applied counts the events applied, to order them against channels'
	// registrations.
	applied uint64
	// seeding holds the channels between registration and ready. While
	// any is, every item seen in events is tracked, so that a seed read
	// before a newer event does not overwrite it, and final events are
	// kept in finals for the items their seeds may still bring; both are
	// let go once no channel registered before them is seeding.
	seeding map[*personalConn]struct{}
	finals  map[string]*finalSeen
	sender  *sender // writes under mu
	// lookups holds a slot per item name read from the gateway.
	lookups chan struct{}
}

// finalSeen is an item's final event kept for the channels seeding, and
// who was told of it.
type finalSeen struct {
	ev      models.Event
	applied uint64
	told    map[string]struct{}
}

type personalUser struct {
	conns []*personalConn
	items map[string]struct{} // tracked items the user bid on
}

// personalConn is one channel. Until ready, its notices wait in held, so
// that "ready" comes first.
type personalConn struct {
	user  string
	c     *client
	ready bool
	held  []*outMsg
	// registered is Personal.applied when the channel registered.
	registered uint64
	// overflowed: notices came faster than held could keep them before
	// ready, so the channel is closed as slow rather than have a gap.
	overflowed bool
	// endingSent: items this channel was told end soon, once each.
	endingSent map[string]struct{}
}

// trackedItem is what the notices need of an item, up to event seq.
type trackedItem struct {
	id         string
	name       string
	applied    uint64 // Personal.applied at its last event
	seq        uint64
	leader     string
	currentBid models.Money
	endsAt     *time.Time
	bidders    map[string]struct{} // connected users who bid on it
	timer      *time.Timer         // the next ending-soon check
	naming     bool                // its name is being read from the gateway
	nameRetry  time.Time           // after a failed read, when to read it again
	// heldOutbids are the bid events whose outbid notices wait for the
	// name being read.
	heldOutbids []models.Event
}

// NewPersonal returns the personal channels of hub's instance.
func NewPersonal(hub *Hub, cfg PersonalConfig, gateway Gateway, metrics *PersonalMetrics, log *slog.Logger) *Personal {
	cfg.MaxConnsPerUser = config.Positive(cfg.MaxConnsPerUser, DefaultMaxConnsPerUser)
	cfg.SeedTimeout = config.Positive(cfg.SeedTimeout, DefaultSeedTimeout)
	cfg.NameTimeout = config.Positive(cfg.NameTimeout, DefaultNameTimeout)
	return &Personal{hub: hub, cfg: cfg, gateway: gateway, log: log, metrics: metrics, following: make(chan struct{}),
		users: make(map[string]*personalUser), items: make(map[string]*trackedItem), seeding: make(map[*personalConn]struct{}),
		finals: make(map[string]*finalSeen), sender: newSender(),
		lookups: make(chan struct{}, maxNameLookups)}
}

// Following tells the channels that events flow: the follower calls it
// once its consumer reads.
func (p *Personal) Following() { p.followed.Do(func() { close(p.following) }) }

// Run disconnects every personal channel when ctx ends, with "going away",
// so clients reconnect to another instance.
func (p *Personal) Run(ctx context.Context) error {
	<-ctx.Done()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for _, u := range p.users {
		for _, pc := range u.conns {
			if pc.c != nil {
				pc.c.stop(closeGoingAway, "server shutting down")
			}
		}
	}
	for _, it := range p.items {
		if it.timer != nil {
			it.timer.Stop()
		}
	}
	return nil
}

// register counts a channel of userID before the upgrade; until activate
// it collects the user's notices. Each successful register is paired with
// unregister.
func (p *Personal) register(userID string) (*personalConn, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, ErrClosed
	}
	u := p.users[userID]
	if u == nil {
		u = &personalUser{items: make(map[string]struct{})}
		p.users[userID] = u
	} else if len(u.conns) >= p.cfg.MaxConnsPerUser {
		p.metrics.rejected.Inc()
		return nil, ErrUserFull
	}
	pc := &personalConn{user: userID, endingSent: make(map[string]struct{}), registered: p.applied}
	u.conns = append(u.conns, pc)
	p.seeding[pc] = struct{}{}
	return pc, nil
}

// seed reads the user's items; a gateway that cannot answer costs the
// notices of bids placed before the channel opened, not the channel.
func (p *Personal) seed(ctx context.Context, userID, token, clientIP string) []SeedItem {
	if p.gateway == nil {
		return nil
	}
	seedCtx, cancel := context.WithTimeout(ctx, p.cfg.SeedTimeout)
	defer cancel()
	items, err := p.gateway.Bidding(seedCtx, userID, token, clientIP)
	if err != nil && ctx.Err() != nil {
		return nil // the client left: nobody to seed
	}
	if err != nil {
		p.metrics.seedFailures.Inc()
		p.log.Warn("reading the user's items from the gateway; notices follow live events only", "user_id", userID, "err", err)
		return nil
	}
	return items
}

// activate takes the seed into the tracked items, sends "ready", then the
// notices held meanwhile, and from then on sends notices directly.
func (p *Personal) activate(pc *personalConn, c *client, items []SeedItem) {
	p.mu.Lock()
	defer p.mu.Unlock()
	pc.c = c
	if p.closed {
		c.stop(closeGoingAway, "server shutting down")
		return
	}
	if pc.overflowed {
		c.slow()
		return
	}
	u := p.users[pc.user]
	for _, s := range items {
		if s.Status == models.StatusClosed || s.Status == models.StatusCancelled {
			continue
		}
		if f, ok := p.finals[s.ID]; ok && f.ev.Seq >= s.Seq {
			// It ended after the gateway answered. If the user was
			// told after this channel registered, it holds the notice.
			if _, told := f.told[pc.user]; !told || f.applied <= pc.registered {
				if m := p.finalNotice(f.ev, pc.user); m != nil {
					pc.held = append(pc.held, m)
				}
			}
			continue
		}
		it := p.track(s.ID)
		if it.name == "" {
			it.name = s.Name
		}
		if s.Seq > it.seq {
			it.seq, it.currentBid, it.endsAt = s.Seq, s.CurrentBid, s.EndsAt
			it.leader = s.HighestBidderID
			if s.Leading {
				it.leader = pc.user
			}
		}
		p.addBidder(it, pc.user, u)
	}
	delete(p.seeding, pc)
	p.prune()
	ready, err := prepare(readyMessage{Type: TypeReady, UserID: pc.user, ServerTime: time.Now().UTC()}, 0, time.Time{})
	if err != nil {
		p.log.Error("encode ready message", "err", err)
		c.stop(CloseUnavailable, "internal error")
		return
	}
	held := pc.held
	pc.held, pc.ready = nil, true
	p.push(pc, append([]*outMsg{ready}, held...))
	for id := range u.items {
		p.schedule(p.items[id])
	}
}

// unregister ends pc's notices; the user's items are forgotten with their
// last channel.
func (p *Personal) unregister(pc *personalConn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.seeding, pc)
	u := p.users[pc.user]
	if u == nil {
		return
	}
	for i, o := range u.conns {
		if o == pc {
			u.conns = append(u.conns[:i], u.conns[i+1:]...)
			break
		}
	}
	if len(u.conns) == 0 {
		delete(p.users, pc.user)
		for id := range u.items {
			if it := p.items[id]; it != nil {
				delete(it.bidders, pc.user)
			}
		}
	}
	p.prune()
}

// prune forgets the items no connected user bid on and the final events
// kept for seeds, unless a channel registered before their last event is
// still seeding: a seed is read after its channel registered, so it
// already shows every event applied before. Caller holds p.mu.
func (p *Personal) prune() {
	// Events are numbered from 1; a channel registered when n were
	// applied needs those after n.
	needAfter := p.applied
	for pc := range p.seeding {
		needAfter = min(needAfter, pc.registered)
	}
	for id, f := range p.finals {
		if f.applied <= needAfter {
			delete(p.finals, id)
		}
	}
	for _, it := range p.items {
		if len(it.bidders) == 0 && it.applied <= needAfter {
			p.untrack(it)
		}
	}
}

func (p *Personal) track(itemID string) *trackedItem {
	it := p.items[itemID]
	if it == nil {
		it = &trackedItem{id: itemID, bidders: make(map[string]struct{})}
		p.items[itemID] = it
		p.metrics.items.Inc()
	}
	return it
}

func (p *Personal) untrack(it *trackedItem) {
	if p.items[it.id] != it {
		return
	}
	delete(p.items, it.id)
	p.metrics.items.Dec()
	it.heldOutbids = nil // their users left with the item's last bidder
	if it.timer != nil {
		it.timer.Stop()
	}
	for uid := range it.bidders {
		if u := p.users[uid]; u != nil {
			delete(u.items, it.id)
		}
	}
}

func (p *Personal) addBidder(it *trackedItem, userID string, u *personalUser) {
	it.bidders[userID] = struct{}{}
	u.items[it.id] = struct{}{}
}

// name reads the name of an item a connected user bid on from the gateway,
// once, in the background. The item's outbid notices wait for it, at most
// NameTimeout; other notices do not (final events carry the name). A
// failed read is tried again at an event of the item after nameRetryAfter.
// Caller holds p.mu.
func (p *Personal) name(it *trackedItem) {
	if it.name != "" || it.naming || p.gateway == nil || p.closed || time.Now().Before(it.nameRetry) {
		return
	}
	it.naming = true
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), p.cfg.NameTimeout)
		defer cancel()
		var name string
		var err error
		select {
		case p.lookups <- struct{}{}:
			name, err = p.gateway.ItemName(ctx, it.id)
			<-p.lookups
		case <-ctx.Done():
			err = fmt.Errorf("waiting for one of %d lookups in flight: %w", maxNameLookups, ctx.Err())
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		it.naming = false
		if p.items[it.id] != it {
			return // forgotten meanwhile
		}
		if err != nil {
			it.nameRetry = time.Now().Add(nameRetryAfter)
			p.metrics.nameFailures.Inc()
			p.log.Warn("reading an item's name from the gateway; its notices go without it", "item_id", it.id, "err", err)
		} else if it.name == "" {
			it.name = name
		}
		p.flushOutbids(it)
	}()
}

// OnEvent applies one event, in stream order, and sends the notices it
// causes to this instance's channels.
func (p *Personal) OnEvent(ev models.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.applied++
	switch ev.Type {
	case models.EventBid:
		p.onBid(ev)
	case models.EventAuctionClosed, models.EventAuctionCancelled:
		p.onFinal(ev)
	}
}

func (p *Personal) onBid(ev models.Event) {
	bidder, prev := p.users[ev.UserID], p.users[ev.PreviousBidderID]
	it := p.items[ev.ItemID]
	if it == nil {
		if bidder == nil && prev == nil && len(p.seeding) == 0 {
			return // nobody here cares
		}
		it = p.track(ev.ItemID)
	}
	it.applied = p.applied
	if ev.Seq > it.seq {
		it.seq, it.currentBid = ev.Seq, ev.Amount
		// An answered bid never takes the lead: the leader's automatic
		// bid in the next event keeps it.
		if !ev.AutoAnswered {
			it.leader = ev.UserID
		}
		if ev.EndsAt != nil {
			t := *ev.EndsAt
			it.endsAt = &t
		}
	}
	if bidder != nil {
		p.addBidder(it, ev.UserID, bidder)
	}
	// The contract's outbid rule: an event the leader's automatic bid
	// answers at once never cost them the lead.
	outbid := ev.PreviousBidderID != "" && ev.PreviousBidderID != ev.UserID && !ev.AutoAnswered && prev != nil
	if outbid {
		p.addBidder(it, ev.PreviousBidderID, prev)
	}
	if len(it.bidders) > 0 {
		p.name(it)
	}
	switch {
	case outbid && it.naming:
		it.heldOutbids = append(it.heldOutbids, ev)
	case outbid:
		p.outbid(prev, it, ev)
	}
	if !ev.AutoAnswered { // its current bid is not the leader's yet
		p.schedule(it)
	}
}

// outbid tells u that ev took the lead from them. Caller holds p.mu.
func (p *Personal) outbid(u *personalUser, it *trackedItem, ev models.Event) {
	p.notify(u, TypeOutbid, outbidMessage{Type: TypeOutbid, ItemID: ev.ItemID, ItemName: it.name, CurrentBid: ev.Amount,
		BidderID: ev.UserID, Seq: ev.Seq, Timestamp: ev.Timestamp, ServerTime: time.Now().UTC()}, ev)
}

// flushOutbids sends the outbid notices held for the item's name, in
// order, to the users still connected. Caller holds p.mu.
func (p *Personal) flushOutbids(it *trackedItem) {
	held := it.heldOutbids
	it.heldOutbids = nil
	for _, ev := range held {
		if u := p.users[ev.PreviousBidderID]; u != nil {
			p.outbid(u, it, ev)
		}
	}
}

// onFinal tells every connected bidder of a closed item whether they won,
// and those of a cancelled item that it was cancelled, then forgets it.
func (p *Personal) onFinal(ev models.Event) {
	var seen *finalSeen
	if len(p.seeding) > 0 {
		seen = &finalSeen{ev: ev, applied: p.applied, told: make(map[string]struct{})}
		p.finals[ev.ItemID] = seen
	}
	recipients := map[string]struct{}{}
	it := p.items[ev.ItemID]
	if it != nil {
		for uid := range it.bidders {
			recipients[uid] = struct{}{}
		}
		if it.name == "" {
			it.name = ev.Name
		}
		p.flushOutbids(it) // before the final notice, in the item's order
	}
	if ev.Type == models.EventAuctionClosed && ev.WinnerID != "" {
		recipients[ev.WinnerID] = struct{}{} // even if this instance missed the bid
	}
	for uid := range recipients {
		u := p.users[uid]
		if u == nil {
			continue
		}
		if it != nil && ev.Name == "" {
			ev.Name = it.name
		}
		m := p.finalNotice(ev, uid)
		if m == nil {
			continue
		}
		if seen != nil {
			seen.told[uid] = struct{}{}
		}
		for _, pc := range u.conns {
			p.send(pc, m)
		}
		p.metrics.notices.WithLabelValues(noticeType(ev, uid)).Add(float64(len(u.conns)))
	}
	if it != nil {
		p.untrack(it)
	}
}

func noticeType(ev models.Event, userID string) string {
	switch {
	case ev.Type == models.EventAuctionCancelled:
		return models.EventAuctionCancelled
	case ev.WinnerID != "" && ev.WinnerID == userID:
		return TypeAuctionWon
	}
	return TypeAuctionLost
}

// finalNotice is userID's notice of a final event. Caller holds p.mu.
func (p *Personal) finalNotice(ev models.Event, userID string) *outMsg {
	typ := noticeType(ev, userID)
	var v any
	if typ == models.EventAuctionCancelled {
		v = cancelledMessage{Type: typ, ItemID: ev.ItemID, ItemName: ev.Name, Seq: ev.Seq, Timestamp: ev.Timestamp, ServerTime: time.Now().UTC()}
	} else {
		v = finalMessage{Type: typ, ItemID: ev.ItemID, ItemName: ev.Name, FinalPrice: ev.Amount, WinnerID: ev.WinnerID,
			Seq: ev.Seq, Timestamp: ev.Timestamp, ServerTime: time.Now().UTC()}
	}
	m, err := prepare(v, ev.Seq, ev.Timestamp)
	if err != nil {
		p.log.Error("encode notice", "type", typ, "err", err)
		return nil
	}
	return m
}

// schedule sends the ending-soon notice to the item's leader when the
// item is within EndingSoonLead of its end, or sets a timer for that
// moment. Caller holds p.mu.
func (p *Personal) schedule(it *trackedItem) {
	lead := p.cfg.EndingSoonLead
	if it == nil || lead <= 0 || it.endsAt == nil {
		return
	}
	u := p.users[it.leader]
	if u == nil {
		return
	}
	if _, bid := it.bidders[it.leader]; !bid {
		return
	}
	now := time.Now()
	if !now.Before(*it.endsAt) {
		return // ended: the closing event follows
	}
	if wait := it.endsAt.Add(-lead).Sub(now); wait > 0 {
		if it.timer == nil {
			it.timer = time.AfterFunc(wait, func() {
				p.mu.Lock()
				defer p.mu.Unlock()
				if p.items[it.id] == it {
					p.schedule(it)
				}
			})
		} else {
			it.timer.Reset(wait)
		}
		return
	}
	var m *outMsg
	for _, pc := range u.conns {
		if _, sent := pc.endingSent[it.id]; sent {
			continue
		}
		if m == nil {
			var err error
			m, err = prepare(endingSoonMessage{Type: TypeEndingSoon, ItemID: it.id, ItemName: it.name, CurrentBid: it.currentBid,
				EndsAt: it.endsAt.UTC(), ServerTime: now.UTC()}, 0, time.Time{})
			if err != nil {
				p.log.Error("encode notice", "type", TypeEndingSoon, "err", err)
				return
			}
		}
		pc.endingSent[it.id] = struct{}{}
		p.send(pc, m)
		p.metrics.notices.WithLabelValues(TypeEndingSoon).Inc()
	}
}

// notify sends one notice to every channel of u. Caller holds p.mu.
func (p *Personal) notify(u *personalUser, typ string, v any, ev models.Event) {
	m, err := prepare(v, ev.Seq, ev.Timestamp)
	if err != nil {
		p.log.Error("encode notice", "type", typ, "err", err)
		return
	}
	for _, pc := range u.conns {
		p.send(pc, m)
	}
	p.metrics.notices.WithLabelValues(typ).Add(float64(len(u.conns)))
}

// send queues m for pc: held until ready, then pushed like an item
// viewer's events, with the same queue bound and slow-viewer cut-off.
// Caller holds p.mu.
func (p *Personal) send(pc *personalConn, m *outMsg) {
	if !pc.ready {
		// One place in the queue is kept for "ready".
		if len(pc.held) >= p.hub.cfg.SendQueueSize-1 {
			pc.overflowed = true
			return
		}
		pc.held = append(pc.held, m)
		return
	}
	p.push(pc, []*outMsg{m})
}

func (p *Personal) push(pc *personalConn, ms []*outMsg) {
	pc.c.push(ms, nil, p.sender)
	p.sender.publish(p.hub.metrics)
}

// Personal messages. Every one carries "type" and "server_time", like the
// item channel's; notices carry their event's seq and timestamp.
type readyMessage struct {
	Type       string    `json:"type"`
	UserID     string    `json:"user_id"`
	ServerTime time.Time `json:"server_time"`
}

type outbidMessage struct {
	Type       string       `json:"type"`
	ItemID     string       `json:"item_id"`
	ItemName   string       `json:"item_name"`
	CurrentBid models.Money `json:"current_bid"`
	BidderID   string       `json:"bidder_id"`
	Seq        uint64       `json:"seq"`
	Timestamp  time.Time    `json:"timestamp"`
	ServerTime time.Time    `json:"server_time"`
}

type finalMessage struct {
	Type       string       `json:"type"`
	ItemID     string       `json:"item_id"`
	ItemName   string       `json:"item_name"`
	FinalPrice models.Money `json:"final_price"`
	WinnerID   string       `json:"winner_id"`
	Seq        uint64       `json:"seq"`
	Timestamp  time.Time    `json:"timestamp"`
	ServerTime time.Time    `json:"server_time"`
}

type cancelledMessage struct {
	Type       string    `json:"type"`
	ItemID     string    `json:"item_id"`
	ItemName   string    `json:"item_name"`
	Seq        uint64    `json:"seq"`
	Timestamp  time.Time `json:"timestamp"`
	ServerTime time.Time `json:"server_time"`
}

type endingSoonMessage struct {
	Type       string       `json:"type"`
	ItemID     string       `json:"item_id"`
	ItemName   string       `json:"item_name"`
	CurrentBid models.Money `json:"current_bid"`
	EndsAt     time.Time    `json:"ends_at"`
	ServerTime time.Time    `json:"server_time"`
}

// PersonalMetrics are the personal channels' Prometheus metrics.
type PersonalMetrics struct {
	connections  prometheus.Gauge
	notices      *prometheus.CounterVec
	seedFailures prometheus.Counter
	nameFailures prometheus.Counter
	rejected     prometheus.Counter
	items        prometheus.Gauge
}

// NewPersonalMetrics creates the metrics and registers them on reg.
func NewPersonalMetrics(reg prometheus.Registerer) *PersonalMetrics {
	m := &PersonalMetrics{
		connections: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "broadcast_personal_connections", Help: "Open personal channels (WS /ws/users/{id}).",
		}),
		notices: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "broadcast_personal_notices_total", Help: "Notices sent to personal channels, by type (one per channel).",
		}, []string{"type"}),
		seedFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "broadcast_personal_seed_failures_total", Help: "Personal channels opened without the user's items because the gateway did not answer.",
		}),
		nameFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "broadcast_personal_name_failures_total", Help: "Item names the gateway did not answer; those items' notices go without item_name until it does.",
		}),
		rejected: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "broadcast_personal_rejected_total", Help: "Personal channels refused because the user had WS_MAX_CONNS_PER_USER open.",
		}),
		items: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "broadcast_personal_items", Help: "Items tracked for connected users' notices.",
		}),
	}
	for _, t := range []string{TypeOutbid, TypeAuctionWon, TypeAuctionLost, TypeEndingSoon, models.EventAuctionCancelled} {
		m.notices.WithLabelValues(t)
	}
	reg.MustRegister(m.connections, m.notices, m.seedFailures, m.nameFailures, m.rejected, m.items)
	return m
}
