package app_test

import (
	"testing"
	"time"

	"github.com/bidding-platform/broadcast-service/internal/app"
	"github.com/bidding-platform/shared/config"
	"github.com/bidding-platform/shared/natsconn"
	"github.com/bidding-platform/shared/testenv"
)

// TestViewersAsItsNATSUser: with the NATS users the deployments ship, the
// service does all of its work as its own user, which may not create the
// stream: viewers of an item before the gateway created the stream get an
// empty snapshot, then live events, a viewer resuming on another instance
// gets its history, and the instances share their viewer counts.
func TestViewersAsItsNATSUser(t *testing.T) {
	n, passwords := testenv.NATSWithShippedUsers(t)
	asBroadcast := func(c *app.Config) {
		c.NATSAuth = natsconn.Auth{User: "broadcast", Password: config.Secret(passwords["broadcast"])}
	}
	in := startServer(t, n.URL(), asBroadcast)
	testenv.WaitFor(t, 30*time.Second, "ready", func() error { return in.readyIs(200) })
	a := dial(t, in.addr, "item_id=user_item")
	if m := read(t, a); m.Type != "snapshot" || m.Seq != 0 {
		t.Fatalf("first message before the stream exists = %+v, want an empty snapshot", m)
	}

	pub := newPublisher(t, n.JetStream(), "user_item") // the gateway creates the stream
	pub.publish(10)
	readEvents(t, a, 1, 10)

	other := startServer(t, n.URL(), asBroadcast)
	b := dial(t, other.addr, "item_id=user_item&since_seq=4")
	if m := read(t, b); m.Type != "snapshot" || m.Seq != 10 {
		t.Fatalf("first message on a resuming viewer = %+v, want snapshot seq 10", m)
	}
	readEvents(t, b, 5, 10)
	for {
		if m := read(t, a); m.Type == "viewers" && m.Count == 2 {
			break
		}
	}

	// Personal channels follow every item through an ordered consumer,
	// which this user may create and read.
	alice := openChannel(t, other.addr, "alice", "")
	it := &item{publisher: newPublisher(t, n.JetStream(), "user_personal")}
	it.bid("alice", 10000, false, nil)
	it.bid("bob", 11000, false, nil)
	if m := readNotice(t, alice); m.Type != "outbid" || m.ItemID != "user_personal" {
		t.Fatalf("alice's notice as the broadcast NATS user = %+v, want outbid on user_personal", m)
	}
}
