package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	gws "github.com/gorilla/websocket"

	"github.com/bidding-platform/broadcast-service/internal/app"
	"github.com/bidding-platform/broadcast-service/internal/websocket"
	"github.com/bidding-platform/shared/auth"
	"github.com/bidding-platform/shared/auth/authtest"
	"github.com/bidding-platform/shared/config"
	"github.com/bidding-platform/shared/models"
	"github.com/bidding-platform/shared/stream"
	"github.com/bidding-platform/shared/testenv"
)

// notice is every field of the personal channel's messages.
type notice struct {
	Type       string       `json:"type"`
	UserID     string       `json:"user_id"`
	ItemID     string       `json:"item_id"`
	ItemName   string       `json:"item_name"`
	CurrentBid models.Money `json:"current_bid"`
	BidderID   string       `json:"bidder_id"`
	FinalPrice models.Money `json:"final_price"`
	WinnerID   *string      `json:"winner_id"`
	Seq        uint64       `json:"seq"`
	Timestamp  time.Time    `json:"timestamp"`
	EndsAt     time.Time    `json:"ends_at"`
	ServerTime time.Time    `json:"server_time"`
}

// dialUser opens userID's personal channel; with viaProtocol the token
// goes in Sec-WebSocket-Protocol, otherwise in the query.
func dialUser(addr, userID, token string, viaProtocol bool) (*gws.Conn, *http.Response, error) {
	d := gws.Dialer{HandshakeTimeout: 10 * time.Second}
	u := "ws://" + addr + "/ws/users/" + userID
	if token != "" && !viaProtocol {
		u += "?access_token=" + url.QueryEscape(token)
	}
	if token != "" && viaProtocol {
		d.Subprotocols = []string{"access_token", token}
	}
	c, resp, err := d.Dial(u, nil)
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	return c, resp, err
}

// openChannel opens userID's channel and reads its "ready".
func openChannel(t *testing.T, addr, userID, token string) *gws.Conn {
	t.Helper()
	c, _, err := dialUser(addr, userID, token, false)
	if err != nil {
		t.Fatalf("open %s's channel: %v", userID, err)
	}
	t.Cleanup(func() { c.Close() })
	if m := readNotice(t, c); m.Type != "ready" || m.UserID != userID {
		t.Fatalf("first message %+v, want ready for %s", m, userID)
	}
	return c
}

func readNotice(t *testing.T, c *gws.Conn) notice {
	t.Helper()
	if err := c.SetReadDeadline(time.Now().Add(15 * time.Second)); err != nil {
		t.Fatal(err)
	}
	_, data, err := c.ReadMessage()
	if err != nil {
		t.Fatalf("read notice: %v", err)
	}
	var m notice
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatalf("decode %s: %v", data, err)
	}
	if m.ServerTime.IsZero() {
		t.Fatalf("notice without server_time: %s", data)
	}
	return m
}

// item publishes one item's events as the gateway would.
type item struct {
	*publisher
	leader string
	price  models.Money
}

func newItem(t *testing.T, n *testenv.NATSServer, id string) *item {
	return &item{publisher: newPublisher(t, natsJS(t, n), id)}
}

// bid publishes userID's bid of amount cents, ending at ends (nil: in an
// hour), naming the previous leader; it returns the event.
func (it *item) bid(userID string, amount int64, autoAnswered bool, ends *time.Time) models.Event {
	it.t.Helper()
	ev := it.event()
	ev.UserID, ev.Amount, ev.PreviousBidderID, ev.AutoAnswered = userID, models.Money(amount), it.leader, autoAnswered
	ev.PreviousBid, it.price = it.price, ev.Amount
	if ends != nil {
		ev.EndsAt = ends
	}
	it.leader = userID
	it.send(ev)
	return ev
}

func (it *item) close(winner string, price int64) models.Event {
	it.t.Helper()
	it.seq++
	ev := models.Event{Type: models.EventAuctionClosed, EventID: models.NewEventID(), ItemID: it.itemID, WinnerID: winner,
		Amount: models.Money(price), Timestamp: time.Now().UTC(), Seq: it.seq, Name: "Closed " + it.itemID}
	it.send(ev)
	return ev
}

func TestPersonalOutbid(t *testing.T) {
	n := testenv.NATS(t)
	it := newItem(t, n, "po_item")
	other := newItem(t, n, "po_other")
	in := startServer(t, n.URL(), nil)
	alice := openChannel(t, in.addr, "alice", "")
	// The gateway is unreachable: the channel works from live events.
	if got := in.metric(t, "broadcast_personal_seed_failures_total"); got != 1 {
		t.Errorf("seed failures = %v, want 1", got)
	}

	it.bid("alice", 10000, false, nil)
	bob := it.bid("bob", 11000, false, nil)
	m := readNotice(t, alice)
	if m.Type != "outbid" || m.ItemID != "po_item" || m.BidderID != "bob" || m.CurrentBid != 11000 || m.Seq != bob.Seq || !m.Timestamp.Equal(bob.Timestamp) {
		t.Fatalf("notice %+v, want outbid on po_item by bob at 110.00, seq %d", m, bob.Seq)
	}

	it.bid("alice", 12000, false, nil)
	it.bid("alice", 13000, false, nil)    // her own raise: not outbid
	it.bid("carol", 14000, true, nil)     // answered at once by her maximum
	it.bid("alice", 15000, false, nil)    // ... the automatic bid
	other.bid("alice", 10000, false, nil) // another item, to show order
	last := other.bid("dave", 10500, false, nil)
	m = readNotice(t, alice)
	if m.Type != "outbid" || m.ItemID != "po_other" || m.Seq != last.Seq || m.BidderID != "dave" {
		t.Fatalf("notice %+v, want the outbid on po_other (nothing for her own raise or an answered bid)", m)
	}
	testenv.WaitFor(t, 10*time.Second, "notice counted", func() error {
		return in.metricIs(t, `broadcast_personal_notices_total{type="outbid"}`, 2)
	})
	if got := in.metric(t, "broadcast_personal_connections"); got != 1 {
		t.Errorf("personal connections = %v, want 1", got)
	}
}

// fakeGateway serves GET /api/v1/users/{id}/items?role=bidding in pages
// of one item, checking the token it was sent, and GET /api/v1/items/{id}
// with an item's name.
type fakeGateway struct {
	t     *testing.T
	mu    sync.Mutex
	items map[string][]map[string]any // user -> items
	token map[string]string           // user -> the token it must get
	calls int
	names map[string]string // item -> name
	// nameGate, when not nil, holds every answer with a name until it
	// is closed; seedGate holds the users' items in the same way.
	nameGate chan struct{}
	seedGate chan struct{}
}

func (g *fakeGateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if id, ok := strings.CutPrefix(r.URL.Path, "/api/v1/items/"); ok {
		g.serveItem(w, id)
		return
	}
	g.mu.Lock()
	gate := g.seedGate
	g.mu.Unlock()
	if gate != nil {
		<-gate
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.calls++
	user, ok := strings.CutPrefix(r.URL.Path, "/api/v1/users/")
	user, ok2 := strings.CutSuffix(user, "/items")
	if !ok || !ok2 || r.URL.Query().Get("role") != "bidding" {
		http.Error(w, `{"error":"bad request"}`, http.StatusBadRequest)
		return
	}
	if want := g.token[user]; want != "" && r.Header.Get("Authorization") != "Bearer "+want {
		http.Error(w, `{"error":"unauthorized"}`, http.StatusUnauthorized)
		return
	}
	items := g.items[user]
	if items == nil {
		items = []map[string]any{}
	}
	i := 0
	if c := r.URL.Query().Get("cursor"); c != "" {
		fmt.Sscanf(c, "c%d", &i)
	}
	page := map[string]any{"items": items[i:min(i+1, len(items))]}
	if i+1 < len(items) {
		page["next_cursor"] = fmt.Sprintf("c%d", i+1)
	}
	_ = json.NewEncoder(w).Encode(page)
}

func (g *fakeGateway) serveItem(w http.ResponseWriter, id string) {
	g.mu.Lock()
	name, gate := g.names[id], g.nameGate
	g.mu.Unlock()
	if name == "" {
		http.Error(w, `{"error":"item not found"}`, http.StatusNotFound)
		return
	}
	if gate != nil {
		<-gate
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"id": id, "name": name, "status": "active", "current_bid": 100.00})
}

func seedItem(id, name string, seq uint64, leading bool, ends time.Time) map[string]any {
	return map[string]any{"id": id, "name": name, "status": "active", "current_bid": 100.00, "highest_bidder_id": "",
		"starting_price": 50.00, "min_increment": 1.00, "ends_at": ends, "bid_count": seq, "seq": seq,
		"leading": leading, "your_bid": 100.00, "reserve_met": true}
}

func TestPersonalWonLostWithSeed(t *testing.T) {
	n := testenv.NATS(t)
	it := newItem(t, n, "wl_item")
	quiet := newItem(t, n, "wl_quiet")
	// Carol bid on both items before she connected: only the gateway
	// knows, on two pages.
	carolBid := it.bid("carol", 10000, false, nil)
	quiet.bid("carol", 10000, false, nil)
	gw := &fakeGateway{t: t, items: map[string][]map[string]any{
		"carol": {seedItem("wl_item", "Lamp", carolBid.Seq, true, time.Now().Add(time.Hour)), seedItem("wl_quiet", "Vase", 1, true, time.Now().Add(time.Hour))},
	}}
	srv := httptest.NewServer(gw)
	t.Cleanup(srv.Close)
	in := startServer(t, n.URL(), func(c *app.Config) { c.GatewayInternalURL = srv.URL })

	alice := openChannel(t, in.addr, "alice", "")
	bob := openChannel(t, in.addr, "bob", "")
	carol := openChannel(t, in.addr, "carol", "")
	gw.mu.Lock()
	calls := gw.calls
	gw.mu.Unlock()
	if calls != 4 { // alice, bob, and carol's two pages
		t.Errorf("gateway calls = %d, want 4", calls)
	}

	it.bid("alice", 11000, false, nil)
	if m := readNotice(t, carol); m.Type != "outbid" || m.ItemName != "Lamp" || m.BidderID != "alice" {
		t.Fatalf("carol's notice %+v, want outbid on Lamp by alice", m)
	}
	it.bid("bob", 12000, false, nil)
	if m := readNotice(t, alice); m.Type != "outbid" || m.BidderID != "bob" {
		t.Fatalf("alice's notice %+v, want outbid by bob", m)
	}
	closed := it.close("bob", 12000)
	for _, tc := range []struct {
		name string
		c    *gws.Conn
		want string
	}{{"alice", alice, "auction_lost"}, {"bob", bob, "auction_won"}, {"carol", carol, "auction_lost"}} {
		m := readNotice(t, tc.c)
		if m.Type != tc.want || m.ItemID != "wl_item" || m.FinalPrice != 12000 || m.WinnerID == nil || *m.WinnerID != "bob" ||
			m.Seq != closed.Seq || !m.Timestamp.Equal(closed.Timestamp) {
			t.Errorf("%s's notice %+v, want %s of wl_item at 120.00 won by bob, seq %d", tc.name, m, tc.want, closed.Seq)
		}
	}
	// An item closed without a winner: its only bidder lost, and hears
	// of it from the seed alone.
	quiet.close("", 0)
	if m := readNotice(t, carol); m.Type != "auction_lost" || m.ItemID != "wl_quiet" || m.WinnerID == nil || *m.WinnerID != "" {
		t.Fatalf("carol's notice %+v, want auction_lost of wl_quiet with winner_id \"\"", m)
	}
}

// An item first seen in a bid event is named from the gateway; its outbid
// notices wait for the name, and come before the item's closing notice.
func TestPersonalItemNames(t *testing.T) {
	n := testenv.NATS(t)
	named := newItem(t, n, "nm_item")
	unknown := newItem(t, n, "nm_unknown")
	closing := newItem(t, n, "nm_closing")
	witness := newItem(t, n, "nm_witness")
	gate := make(chan struct{})
	gw := &fakeGateway{t: t, items: map[string][]map[string]any{},
		names: map[string]string{"nm_item": "Globe", "nm_closing": "Kettle"}, nameGate: gate}
	srv := httptest.NewServer(gw)
	t.Cleanup(srv.Close)
	t.Cleanup(func() {
		select {
		case <-gate:
		default:
			close(gate)
		}
	})
	in := startServer(t, n.URL(), func(c *app.Config) {
		c.GatewayInternalURL = srv.URL
		c.NameTimeout = time.Minute // the gate, not the clock, decides when the name comes
	})
	alice := openChannel(t, in.addr, "alice", "")
	carol := openChannel(t, in.addr, "carol", "")

	// Her first bid on the item starts the name's read; bob outbids her
	// while it is held at the gateway. Carol's notice on another item,
	// later in the stream, shows that bob's bid has been applied.
	named.bid("alice", 10000, false, nil)
	bob := named.bid("bob", 11000, false, nil)
	witness.bid("carol", 10000, false, nil)
	witness.bid("dave", 10500, false, nil)
	if m := readNotice(t, carol); m.Type != "outbid" || m.ItemID != "nm_witness" {
		t.Fatalf("carol's notice %+v, want outbid on nm_witness", m)
	}
	close(gate)
	if m := readNotice(t, alice); m.Type != "outbid" || m.ItemID != "nm_item" || m.ItemName != "Globe" || m.Seq != bob.Seq {
		t.Fatalf("notice %+v, want outbid on nm_item named Globe, seq %d", m, bob.Seq)
	}
	named.bid("alice", 12000, false, nil)
	named.bid("bob", 13000, false, nil)
	if m := readNotice(t, alice); m.Type != "outbid" || m.ItemName != "Globe" {
		t.Fatalf("notice %+v, want the next outbid on Globe", m)
	}

	// An item the gateway does not know: the notice comes without a name.
	// (The witness was not known either: the gateway's 404 is not held.)
	unknown.bid("alice", 10000, false, nil)
	unknown.bid("bob", 11000, false, nil)
	if m := readNotice(t, alice); m.Type != "outbid" || m.ItemID != "nm_unknown" || m.ItemName != "" {
		t.Fatalf("notice %+v, want outbid on nm_unknown without a name", m)
	}
	testenv.WaitFor(t, 10*time.Second, "the failed names counted", func() error {
		return in.metricIs(t, "broadcast_personal_name_failures_total", 2)
	})

	// The item closes while its name is held: the outbid comes first,
	// named from the closing event, then the result.
	gw.mu.Lock()
	gw.nameGate = make(chan struct{})
	gw.mu.Unlock()
	t.Cleanup(func() { close(gw.nameGate) })
	closing.bid("alice", 10000, false, nil)
	closing.bid("bob", 11000, false, nil)
	closed := closing.close("bob", 11000)
	for _, want := range []string{"outbid", "auction_lost"} {
		if m := readNotice(t, alice); m.Type != want || m.ItemID != "nm_closing" || m.ItemName != closed.Name {
			t.Fatalf("notice %+v, want %s of nm_closing named %q", m, want, closed.Name)
		}
	}
}

// holdSeeds makes gw hold its answers of users' items until the returned
// function is called (or the test ends). The server must wait for them
// (longSeeds).
// longSeeds lets a server wait for held seeds as long as a test runs.
func longSeeds(c *app.Config) { c.SeedTimeout = 10 * time.Minute }

func holdSeeds(t *testing.T, gw *fakeGateway) (release func()) {
	gate := make(chan struct{})
	gw.mu.Lock()
	gw.seedGate = gate
	gw.mu.Unlock()
	var once sync.Once
	release = func() { once.Do(func() { close(gate) }) }
	t.Cleanup(release)
	return release
}

// A final event that comes while a channel's seed is read is told once on
// that channel, though the seed, read before it, still shows the item open.
func TestPersonalFinalWhileSeeding(t *testing.T) {
	n := testenv.NATS(t)
	it := newItem(t, n, "fs_item")
	other := newItem(t, n, "fs_other")
	bid := it.bid("alice", 10000, false, nil)
	gw := &fakeGateway{t: t, items: map[string][]map[string]any{
		"alice": {seedItem("fs_item", "Lamp", bid.Seq, true, time.Now().Add(time.Hour))},
	}}
	srv := httptest.NewServer(gw)
	t.Cleanup(srv.Close)
	in := startServer(t, n.URL(), func(c *app.Config) {
		c.GatewayInternalURL = srv.URL
		longSeeds(c)
	})
	tab1 := openChannel(t, in.addr, "alice", "")

	release := holdSeeds(t, gw)
	tab2, _, err := dialUser(in.addr, "alice", "", false) // registered; its seed is held
	if err != nil {
		t.Fatal(err)
	}
	defer tab2.Close()
	it.close("alice", 10000)
	if m := readNotice(t, tab1); m.Type != "auction_won" {
		t.Fatalf("first tab: %+v, want auction_won", m)
	}
	release()
	for _, want := range []string{"ready", "auction_won"} {
		if m := readNotice(t, tab2); m.Type != want {
			t.Fatalf("second tab: %+v, want %s", m, want)
		}
	}
	other.bid("alice", 10000, false, nil)
	other.bid("bob", 11000, false, nil)
	if m := readNotice(t, tab2); m.Type != "outbid" || m.ItemID != "fs_other" {
		t.Fatalf("second tab: %+v, want the outbid on fs_other (the win told once)", m)
	}
}

// More notices than a channel's queue holds, while its seed is read: the
// channel is closed as slow rather than made ready with a gap.
func TestPersonalOverflowWhileSeeding(t *testing.T) {
	n := testenv.NATS(t)
	witness := newItem(t, n, "ov_witness")
	gw := &fakeGateway{t: t, items: map[string][]map[string]any{}}
	srv := httptest.NewServer(gw)
	t.Cleanup(srv.Close)
	const queue = 4
	in := startServer(t, n.URL(), func(c *app.Config) {
		c.GatewayInternalURL = srv.URL
		c.SendQueueSize = queue
		longSeeds(c)
	})
	carol := openChannel(t, in.addr, "carol", "")
	release := holdSeeds(t, gw)
	alice, _, err := dialUser(in.addr, "alice", "", false)
	if err != nil {
		t.Fatal(err)
	}
	defer alice.Close()
	for i := range queue + 1 {
		item := newItem(t, n, fmt.Sprintf("ov_item_%d", i))
		item.bid("alice", 10000, false, nil)
		item.bid("bob", 11000, false, nil)
	}
	witness.bid("carol", 10000, false, nil)
	witness.bid("dave", 11000, false, nil)
	if m := readNotice(t, carol); m.Type != "outbid" || m.ItemID != "ov_witness" {
		t.Fatalf("carol: %+v, want outbid on ov_witness", m)
	}
	release()
	if err := alice.SetReadDeadline(time.Now().Add(15 * time.Second)); err != nil {
		t.Fatal(err)
	}
	_, data, err := alice.ReadMessage()
	if !gws.IsCloseError(err, websocket.CloseSlowViewer) {
		t.Fatalf("alice's channel: message %s, error %v; want closed %d before ready", data, err, websocket.CloseSlowViewer)
	}
}

// Items nobody connected bid on are tracked only for the seeds of
// channels registered before their events: a channel that registers later,
// and keeps seeding, does not keep them.
func TestPersonalForgetsItemsWhileOthersSeed(t *testing.T) {
	n := testenv.NATS(t)
	it := newItem(t, n, "fg_item")
	gw := &fakeGateway{t: t, items: map[string][]map[string]any{}}
	srv := httptest.NewServer(gw)
	t.Cleanup(srv.Close)
	in := startServer(t, n.URL(), func(c *app.Config) {
		c.GatewayInternalURL = srv.URL
		longSeeds(c)
	})
	holdSeeds(t, gw)
	bob, _, err := dialUser(in.addr, "bob", "", false)
	if err != nil {
		t.Fatal(err)
	}
	it.bid("xavier", 10000, false, nil)
	it.bid("yvonne", 11000, false, nil)
	testenv.WaitFor(t, 10*time.Second, "the item tracked for bob's seed", func() error {
		return in.metricIs(t, "broadcast_personal_items", 1)
	})
	carol, _, err := dialUser(in.addr, "carol", "", false)
	if err != nil {
		t.Fatal(err)
	}
	defer carol.Close()
	bob.Close()
	// The channel is counted out after it unregistered, and with it
	// what only its seed needed was let go.
	testenv.WaitFor(t, 10*time.Second, "bob's channel gone", func() error {
		return in.metricIs(t, "broadcast_personal_connections", 1)
	})
	if got := in.metric(t, "broadcast_personal_items"); got != 0 {
		t.Errorf("%v items tracked, want 0: carol, still seeding, registered after the item's events", got)
	}
}

// A bid the leader's automatic bid answers at once never makes its bidder
// the leader: they are told they were outbid, never that they lead an
// auction ending soon.
func TestPersonalAnsweredBidIsNoLead(t *testing.T) {
	n := testenv.NATS(t)
	it := newItem(t, n, "an_item")
	in := startServer(t, n.URL(), func(c *app.Config) { c.EndingSoonLead = time.Minute })
	bob := openChannel(t, in.addr, "bob", "")
	ends := time.Now().Add(30 * time.Second).UTC()
	it.bid("alice", 10000, false, &ends)
	it.bid("bob", 11000, true, &ends)    // answered ...
	it.bid("alice", 12000, false, &ends) // ... by her maximum
	it.close("alice", 12000)
	for _, want := range []string{"outbid", "auction_lost"} {
		if m := readNotice(t, bob); m.Type != want {
			t.Fatalf("bob: %+v, want %s (and no ending-soon: he never led)", m, want)
		}
	}
}

func TestPersonalEndingSoon(t *testing.T) {
	n := testenv.NATS(t)
	it := newItem(t, n, "es_item")
	seeded := newItem(t, n, "es_seeded")
	seededEnd := time.Now().Add(30 * time.Second).UTC().Truncate(time.Second)
	gw := &fakeGateway{t: t, items: map[string][]map[string]any{
		"alice": {seedItem("es_seeded", "Clock", 1, true, seededEnd)},
	}}
	srv := httptest.NewServer(gw)
	t.Cleanup(srv.Close)
	in := startServer(t, n.URL(), func(c *app.Config) {
		c.GatewayInternalURL = srv.URL
		c.EndingSoonLead = time.Minute
	})
	seeded.leader, seeded.seq = "alice", 1

	// The seeded item she leads ends within the lead: told at once.
	alice := openChannel(t, in.addr, "alice", "")
	if m := readNotice(t, alice); m.Type != "auction_ending_soon" || m.ItemID != "es_seeded" || m.ItemName != "Clock" || !m.EndsAt.Equal(seededEnd) {
		t.Fatalf("notice %+v, want auction_ending_soon of es_seeded (Clock) ending %s", m, seededEnd)
	}

	// A live lead: the notice comes when the end is a minute away.
	ends := time.Now().Add(time.Minute + 2*time.Second).UTC()
	it.bid("alice", 10000, false, &ends)
	m := readNotice(t, alice)
	if m.Type != "auction_ending_soon" || m.ItemID != "es_item" || m.CurrentBid != 10000 || !m.EndsAt.Equal(ends) {
		t.Fatalf("notice %+v, want auction_ending_soon of es_item at 100.00 ending %s", m, ends)
	}
	if now := time.Now(); now.Before(ends.Add(-time.Minute)) {
		t.Errorf("told at %s, before the lead began at %s", now, ends.Add(-time.Minute))
	}
	// Once per item: her raise that extends the end brings none, and the
	// next thing she hears is being outbid.
	later := ends.Add(30 * time.Second)
	it.bid("alice", 11000, false, &later)
	seeded.bid("bob", 20000, false, nil)
	if m := readNotice(t, alice); m.Type != "outbid" || m.ItemID != "es_seeded" {
		t.Fatalf("notice %+v, want outbid on es_seeded (no second ending-soon)", m)
	}
}

func TestPersonalAuth(t *testing.T) {
	n := testenv.NATS(t)
	newItem(t, n, "auth_item") // the stream
	secret := config.Secret(strings.Repeat("s", 48))
	ac := auth.DefaultConfig()
	ac.Secret, ac.DevTokens = secret, true
	issuer, err := auth.New(ac, nil)
	if err != nil {
		t.Fatal(err)
	}
	tokenFor := func(sub string, roles ...string) string {
		tok, _, err := issuer.Issue(sub, roles, time.Now(), time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	gw := &fakeGateway{t: t, token: map[string]string{"alice": tokenFor("alice")}, items: map[string][]map[string]any{}}
	srv := httptest.NewServer(gw)
	t.Cleanup(srv.Close)
	in := startServer(t, n.URL(), func(c *app.Config) {
		c.Auth.Disabled, c.Auth.Secret = false, secret
		c.GatewayInternalURL = srv.URL
	})

	for _, tc := range []struct {
		name, user, token string
		protocol          bool
		want              int
	}{
		{"no token", "alice", "", false, http.StatusUnauthorized},
		{"bad token", "alice", "not-a-token", false, http.StatusUnauthorized},
		{"bad token in protocol", "alice", "not-a-token", true, http.StatusUnauthorized},
		{"another user's", "alice", tokenFor("bob"), false, http.StatusForbidden},
		{"another user's in protocol", "alice", tokenFor("bob"), true, http.StatusForbidden},
		{"own token", "alice", tokenFor("alice"), false, http.StatusSwitchingProtocols},
		{"own token in protocol", "alice", tokenFor("alice"), true, http.StatusSwitchingProtocols},
		{"admin", "alice", tokenFor("root", auth.RoleAdmin), false, http.StatusSwitchingProtocols},
		{"seller is not admin", "alice", tokenFor("sam", auth.RoleSeller), true, http.StatusForbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, resp, err := dialUser(in.addr, tc.user, tc.token, tc.protocol)
			if resp == nil {
				t.Fatalf("no answer: %v", err)
			}
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.want)
			}
			if c == nil {
				if resp.StatusCode == http.StatusUnauthorized && resp.Header.Get("WWW-Authenticate") == "" {
					t.Error("401 without WWW-Authenticate")
				}
				return
			}
			defer c.Close()
			if got, want := c.Subprotocol(), map[bool]string{true: "access_token"}[tc.protocol]; got != want {
				t.Errorf("subprotocol %q, want %q", got, want)
			}
			if m := readNotice(t, c); m.Type != "ready" || m.UserID != "alice" {
				t.Errorf("first message %+v, want ready for alice", m)
			}
		})
	}
	// The user's own token reached the gateway each time (an admin's is
	// refused by this fake, which counts as a failed seed).
	if got := in.metric(t, "broadcast_personal_seed_failures_total"); got != 1 {
		t.Errorf("seed failures = %v, want 1 (the admin's)", got)
	}
	// The item channel stays public.
	if c, err := dialErr(in.addr, "item_id=auth_item", nil); err != nil {
		t.Errorf("item channel without a token: %v", err)
	} else {
		c.Close()
	}
}

// With an identity provider's key set (AUTH_JWKS_URL), a personal channel
// takes the provider's tokens, as the gateway does, and refuses the rest.
func TestPersonalAuthJWKS(t *testing.T) {
	n := testenv.NATS(t)
	newItem(t, n, "jwks_item") // the stream
	key, stranger := authtest.ECKey(t), authtest.ECKey(t)
	idp := authtest.NewJWKS(t, map[string]any{"es-1": &key.PublicKey})
	in := startServer(t, n.URL(), func(c *app.Config) {
		c.Auth.Disabled, c.Auth.JWKSURL = false, idp.URL
		c.Auth.Issuer, c.Auth.Audience = "https://idp.test/", "bidding-api"
	})
	claims := func(sub string, change func(jwt.MapClaims)) jwt.MapClaims {
		c := jwt.MapClaims{"sub": sub, "iss": "https://idp.test/", "aud": "bidding-api",
			"iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix()}
		if change != nil {
			change(c)
		}
		return c
	}
	valid := func(c jwt.MapClaims) string { return authtest.Sign(t, jwt.SigningMethodES256, key, "es-1", c) }

	for _, tc := range []struct {
		name, token string
		want        int
	}{
		{"the provider's token", valid(claims("alice", nil)), http.StatusSwitchingProtocols},
		{"another user's", valid(claims("bob", nil)), http.StatusForbidden},
		{"a key the provider does not list", authtest.Sign(t, jwt.SigningMethodES256, stranger, "es-1", claims("alice", nil)), http.StatusUnauthorized},
		{"an unknown kid", authtest.Sign(t, jwt.SigningMethodES256, stranger, "es-9", claims("alice", nil)), http.StatusUnauthorized},
		{"another issuer", valid(claims("alice", func(c jwt.MapClaims) { c["iss"] = "https://evil.test/" })), http.StatusUnauthorized},
		{"another audience", valid(claims("alice", func(c jwt.MapClaims) { c["aud"] = "other-api" })), http.StatusUnauthorized},
		{"expired", valid(claims("alice", func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-time.Hour).Unix() })), http.StatusUnauthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, resp, err := dialUser(in.addr, "alice", tc.token, false)
			if resp == nil {
				t.Fatalf("no answer: %v", err)
			}
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.want)
			}
			if c != nil {
				defer c.Close()
				if m := readNotice(t, c); m.Type != "ready" || m.UserID != "alice" {
					t.Errorf("first message %+v, want ready for alice", m)
				}
			}
		})
	}
}

// A stream created anew (NATS lost its storage; the gateway makes it
// again) numbers its events from 1: the channels follow it from there,
// not from the old stream's next number.
func TestPersonalStreamCreatedAnew(t *testing.T) {
	n := testenv.NATS(t)
	js := natsJS(t, n)
	it := newItem(t, n, "sa_item")
	in := startServer(t, n.URL(), func(c *app.Config) { c.StreamCheckInterval = 100 * time.Millisecond })
	alice := openChannel(t, in.addr, "alice", "")
	for range 3 {
		it.bid("alice", int64(10000+1000*it.seq), false, nil)
		it.bid("bob", int64(10500+1000*it.seq), false, nil)
		if m := readNotice(t, alice); m.Type != "outbid" {
			t.Fatalf("before: %+v, want outbid", m)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := js.DeleteStream(ctx, stream.Name); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Ensure(ctx, js, 1); err != nil {
		t.Fatal(err)
	}
	again := newItem(t, n, "sa_again")
	again.bid("alice", 10000, false, nil)
	last := again.bid("carol", 11000, false, nil)
	if m := readNotice(t, alice); m.Type != "outbid" || m.ItemID != "sa_again" || m.Seq != last.Seq {
		t.Fatalf("after: %+v, want outbid on sa_again (the new stream's second event)", m)
	}
}

func TestPersonalTwoInstances(t *testing.T) {
	n := testenv.NATS(t)
	it := newItem(t, n, "multi_item")
	one := startServer(t, n.URL(), nil)
	two := startServer(t, n.URL(), nil)
	alice := openChannel(t, one.addr, "alice", "")
	bob := openChannel(t, two.addr, "bob", "")

	it.bid("alice", 10000, false, nil)
	it.bid("bob", 11000, false, nil)
	if m := readNotice(t, alice); m.Type != "outbid" || m.BidderID != "bob" {
		t.Fatalf("alice on instance 1: %+v, want outbid by bob", m)
	}
	it.bid("alice", 12000, false, nil)
	if m := readNotice(t, bob); m.Type != "outbid" || m.BidderID != "alice" {
		t.Fatalf("bob on instance 2: %+v, want outbid by alice", m)
	}
	it.close("alice", 12000)
	if m := readNotice(t, alice); m.Type != "auction_won" {
		t.Errorf("alice: %+v, want auction_won", m)
	}
	if m := readNotice(t, bob); m.Type != "auction_lost" {
		t.Errorf("bob: %+v, want auction_lost", m)
	}
}

func TestPersonalTabsAndCap(t *testing.T) {
	n := testenv.NATS(t)
	it := newItem(t, n, "tabs_item")
	in := startServer(t, n.URL(), func(c *app.Config) { c.MaxConnsPerUser = 2 })
	tabs := []*gws.Conn{openChannel(t, in.addr, "alice", ""), openChannel(t, in.addr, "alice", "")}
	if _, resp, err := dialUser(in.addr, "alice", "", false); err == nil || resp == nil || resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("third channel: %v, want 429", err)
	}
	if _, resp, _ := dialUser(in.addr, "bad%20id", "", false); resp == nil || resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("invalid user id: %v, want 400", resp)
	}
	it.bid("alice", 10000, false, nil)
	it.bid("bob", 11000, false, nil)
	for i, c := range tabs {
		if m := readNotice(t, c); m.Type != "outbid" {
			t.Errorf("tab %d: %+v, want outbid", i, m)
		}
	}
}
