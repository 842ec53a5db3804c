package app

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/bidding-platform/shared/testenv"
)

// 1,000 concurrent bids from 100 users on one item, half of them maxima,
// for each strategy on a single Redis and on a Redis Cluster. The history
// must be linearizable (automatic bids included), the final price and
// leader must follow from the placed bids' values alone, and the leader's
// maximum above the price must appear in no answer to a read and no event.
func TestConcurrentMaxBids(t *testing.T) {
	t.Parallel()
	eachStore(t, testenv.Redis(t), func(t *testing.T, cfg Config, n *testenv.NATSServer) {
		runContention(t, startGateway(t, cfg), n, 100, 10, 0.5)
	})
}

// The answers to maximum bids over HTTP: a maximum leads below its amount
// and only its bidder hears the amount; a lower bid is placed and outbid at
// once (200, not highest) with the automatic bid's events in history; the
// leader raising its maximum moves no price; both amounts at once, or a
// maximum that does not raise one's own, change nothing.
func TestMaxBidAnswers(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	g := e.gw
	g.createItem(t, "lot_max", "10.00", "1.00")
	maxBid := func(user, amount string) answer {
		return do(t, "POST", g.url+"/api/v1/items/lot_max/bid", fmt.Sprintf(`{"user_id":%q,"max_amount":%s}`, user, amount))
	}
	if a := maxBid("alice", "50.00"); a.Status != 200 || a.str("current_bid") != "10.00" || a.str("is_highest") != "true" || a.str("max_amount") != "50.00" {
		t.Fatalf("alice's maximum: %d %s", a.Status, a.Body)
	}
	if a := g.bid(t, "lot_max", "bob", "20.00"); a.Status != 200 || a.str("success") != "true" || a.str("is_highest") != "false" ||
		a.str("current_bid") != "21.00" || !strings.Contains(a.str("message"), "automatic bid") || strings.Contains(string(a.Body), "50.00") {
		t.Fatalf("bob's bid under alice's maximum: %d %s", a.Status, a.Body)
	}
	before := g.item(t, "lot_max")
	for _, tc := range []struct {
		name, body string
		status     int
	}{
		{"both amounts", `{"user_id":"carol","amount":30.00,"max_amount":40.00}`, 400},
		{"neither amount", `{"user_id":"carol"}`, 400},
		{"a maximum not above one's own", `{"user_id":"alice","max_amount":50.00}`, 409},
		{"a bad maximum", `{"user_id":"carol","max_amount":"lots"}`, 400},
	} {
		a := do(t, "POST", g.url+"/api/v1/items/lot_max/bid", tc.body)
		if a.Status != tc.status {
			t.Errorf("%s: %d %s, want %d", tc.name, a.Status, a.Body, tc.status)
		}
		if after := g.item(t, "lot_max"); after.Seq != before.Seq || after.CurrentBid != before.CurrentBid {
			t.Errorf("%s changed the item: %+v, was %+v", tc.name, after, before)
		}
	}
	if a := maxBid("alice", "80.00"); a.Status != 200 || a.str("current_bid") != "21.00" || a.str("is_highest") != "true" || a.str("event_id") != "" {
		t.Fatalf("alice raising her maximum: %d %s", a.Status, a.Body)
	}
	body := string(do(t, "GET", g.url+"/api/v1/items/lot_max", "").Body)
	if strings.Contains(body, "80.00") || strings.Contains(body, "50.00") || !strings.Contains(body, `"highest_bidder_id":"alice"`) {
		t.Errorf("GET item: %s", body)
	}
	evs := waitEvents(t, e.nats.JetStream(), "lot_max", 3)
	if evs[1].UserID != "bob" || evs[1].Amount != 2000 || evs[1].Auto || evs[2].UserID != "alice" || evs[2].Amount != 2100 || !evs[2].Auto || evs[2].PreviousBid != 2000 {
		t.Errorf("events: %+v", evs)
	}
}

// A Redis that lost everything gets the leader's maximum back from the
// event log, where it is logged beside the last bid event (never in it):
// the next lower bid is still outbid automatically, and a tie still goes to
// the leader.
func TestLeaderMaxSurvivesRedisLoss(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	g := e.gw
	g.createItem(t, "lot", "10.00", "1.00")
	if a := do(t, "POST", g.url+"/api/v1/items/lot/bid", `{"user_id":"alice","max_amount":50.00}`); a.Status != 200 {
		t.Fatalf("alice's maximum: %d %s", a.Status, a.Body)
	}
	if a := g.bid(t, "lot", "bob", "20.00"); a.Status != 200 || a.str("is_highest") != "false" {
		t.Fatalf("bob's bid: %d %s", a.Status, a.Body)
	}
	evs := waitEvents(t, e.nats.JetStream(), "lot", 3)
	for _, ev := range evs {
		if b, _ := json.Marshal(ev); strings.Contains(string(b), "50.00") {
			t.Errorf("event %d shows alice's maximum: %s", ev.Seq, b)
		}
	}
	e.redis.Stop()
	e.redis.Start() // empty: this Redis keeps no data
	testenv.WaitFor(t, 10*time.Second, "reading the item again", func() error {
		it, err := try("GET", g.url+"/api/v1/items/lot", "")
		if err != nil || it.Status != 200 || it.str("current_bid") != "21.00" || it.str("highest_bidder_id") != "alice" {
			return fmt.Errorf("GET item: %v %d %s", err, it.Status, it.Body)
		}
		return nil
	})
	if a := g.bid(t, "lot", "bob", "30.00"); a.Status != 200 || a.str("is_highest") != "false" || a.str("current_bid") != "31.00" {
		t.Errorf("bob's 30.00 after Redis lost the item: %d %s, want outbid at 31.00", a.Status, a.Body)
	}
	if a := g.bid(t, "lot", "bob", "50.00"); a.Status != 200 || a.str("is_highest") != "false" || a.str("current_bid") != "50.00" {
		t.Errorf("bob's 50.00, alice's maximum: %d %s, want outbid at 50.00", a.Status, a.Body)
	}
	if a := g.bid(t, "lot", "bob", "51.00"); a.Status != 200 || a.str("is_highest") != "true" {
		t.Errorf("bob's 51.00, above alice's maximum: %d %s, want the lead", a.Status, a.Body)
	}
	// The restored item kept its leader, so the events after the loss
	// (seq 4 on) still name who led before them and which bids alice's
	// maximum answered at once.
	want := []struct {
		user, previous string
		answered       bool
	}{
		{"alice", "", false}, {"bob", "alice", true}, {"alice", "bob", false},
		{"bob", "alice", true}, {"alice", "bob", false},
		{"bob", "alice", true}, {"alice", "bob", false},
		{"bob", "alice", false},
	}
	evs = waitEvents(t, e.nats.JetStream(), "lot", len(want))
	for k, w := range want {
		if ev := evs[k]; ev.UserID != w.user || ev.PreviousBidderID != w.previous || ev.AutoAnswered != w.answered {
			t.Errorf("event %d: %s after %q, auto_answered %v; want %s after %q, auto_answered %v",
				ev.Seq, ev.UserID, ev.PreviousBidderID, ev.AutoAnswered, w.user, w.previous, w.answered)
		}
	}
}
