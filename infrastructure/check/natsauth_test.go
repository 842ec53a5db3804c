package check

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/bidding-platform/shared/config"
	"github.com/bidding-platform/shared/models"
	"github.com/bidding-platform/shared/natsconn"
	"github.com/bidding-platform/shared/stream"
	"github.com/bidding-platform/shared/testenv"
)

// natsUsers are the users of nats-users.conf and the variable each one's
// password is read from.
var natsUsers = map[string]string{
	"gateway":   "NATS_GATEWAY_PASSWORD",
	"broadcast": "NATS_BROADCAST_PASSWORD",
	"archiver":  "NATS_ARCHIVER_PASSWORD",
}

// archiverDurable is the archival worker's durable consumer
// (archival-worker/internal/consumer.Durable).
const archiverDurable = "archival-worker"

// natsWithShippedUsers starts nats-server with the users file Docker Compose
// and Terraform ship, its passwords defined as the deployments define them
// (variables of the server's configuration), and returns the server and
// each user's password.
func natsWithShippedUsers(t *testing.T) (*testenv.NATSServer, map[string]string) {
	t.Helper()
	n, passwords := testenv.NATSWithShippedUsers(t)
	checkShippedUsers(t, passwords)
	return n, passwords
}

// shippedUsersConf is nats-users.conf with a random password defined for
// each user, and those passwords.
func shippedUsersConf(t *testing.T) (string, map[string]string) {
	t.Helper()
	conf, passwords := testenv.ShippedNATSUsers(t)
	checkShippedUsers(t, passwords)
	return conf, passwords
}

func checkShippedUsers(t *testing.T, passwords map[string]string) {
	t.Helper()
	if len(passwords) != len(natsUsers) {
		t.Fatalf("nats-users.conf has the users %v, want %v", passwords, natsUsers)
	}
	for user := range natsUsers {
		if _, ok := passwords[user]; !ok {
			t.Fatalf("nats-users.conf has no user %s", user)
		}
	}
}

func randomSecret(tb testing.TB) string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		tb.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// userConn is one service's connection, made the way the services make it,
// with the asynchronous errors the server sent it.
type userConn struct {
	nc *nats.Conn
	js jetstream.JetStream

	mu   sync.Mutex
	errs []error
}

func connectAs(t *testing.T, n *testenv.NATSServer, user, password string) *userConn {
	t.Helper()
	uc := &userConn{}
	nc, err := natsconn.Connect(context.Background(), natsconn.Config{
		URL: n.URL(), Name: "check-" + user, Auth: natsconn.Auth{User: user, Password: config.Secret(password)},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	// natsconn logs asynchronous errors; this second handler keeps them
	// for the test.
	prev := nc.ErrorHandler()
	nc.SetErrorHandler(func(c *nats.Conn, s *nats.Subscription, err error) {
		uc.mu.Lock()
		uc.errs = append(uc.errs, err)
		uc.mu.Unlock()
		if prev != nil {
			prev(c, s, err)
		}
	})
	testenv.WaitFor(t, 10*time.Second, user+" connected", func() error {
		if !nc.IsConnected() {
			return fmt.Errorf("status %v", nc.Status())
		}
		return nil
	})
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	uc.nc, uc.js = nc, js
	return uc
}

// refusedTo waits for the server to report a permissions violation naming
// subject.
func (uc *userConn) refusedTo(subject string) func() error {
	return func() error {
		uc.mu.Lock()
		defer uc.mu.Unlock()
		for _, err := range uc.errs {
			if errors.Is(err, nats.ErrPermissionViolation) && strings.Contains(err.Error(), subject) {
				return nil
			}
		}
		return fmt.Errorf("no permissions violation for %q among %v", subject, uc.errs)
	}
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// TestNATSUsersLeastPermissions starts nats-server with the shipped users
// and runs each service's JetStream and core NATS calls as its own user:
// what the service does passes, and what it has no business doing (change
// or delete the stream, publish events, read another user's replies, take
// over the archive's consumer) is refused and leaves the stream as it was.
func TestNATSUsersLeastPermissions(t *testing.T) {
	t.Parallel()
	n, pw := natsWithShippedUsers(t)
	gw := connectAs(t, n, "gateway", pw["gateway"])
	bc := connectAs(t, n, "broadcast", pw["broadcast"])
	ar := connectAs(t, n, "archiver", pw["archiver"])
	ctx := ctxFor(t, 2*time.Minute)
	refusal := func() context.Context { return ctxFor(t, 3*time.Second) }

	if nc, err := nats.Connect(n.URL(), nats.NoReconnect()); err == nil {
		nc.Close()
		t.Fatal("connected without a user")
	}
	if nc, err := nats.Connect(n.URL(), nats.NoReconnect(), nats.UserInfo("gateway", pw["broadcast"])); err == nil {
		nc.Close()
		t.Fatal("connected as gateway with broadcast's password")
	}

	// Before the gateway made the stream, the others wait for it: they
	// may not create it.
	if _, err := stream.Ensure(refusal(), bc.js, 1); err == nil {
		t.Error("broadcast created the stream")
	}
	if _, err := stream.Ensure(refusal(), ar.js, 1); err == nil {
		t.Error("archiver created the stream")
	}
	if _, err := gw.js.Stream(ctx, stream.Name); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Fatalf("stream after the others tried to create it: %v, want %v", err, jetstream.ErrStreamNotFound)
	}
	for _, uc := range []*userConn{bc, ar} {
		testenv.WaitFor(t, 10*time.Second, "the refusal", uc.refusedTo("$JS.API.STREAM."))
		uc.mu.Lock()
		uc.errs = nil // from here on, only what the service does
		uc.mu.Unlock()
	}

	// The gateway: manages the stream and the ITEMS bucket, publishes
	// events, follows the live feed, restores an item from its events.
	var live sync.Map
	feed, err := gw.nc.Subscribe(stream.Subjects, func(m *nats.Msg) { live.Store(m.Subject, true) })
	if err != nil {
		t.Fatal(err)
	}
	defer feed.Unsubscribe()
	if _, err := stream.Ensure(ctx, gw.js, 1); err != nil {
		t.Fatalf("gateway creates the stream: %v", err)
	}
	if _, err := stream.Ensure(ctx, gw.js, 1); err != nil {
		t.Fatalf("gateway updates the stream: %v", err)
	}
	kvConfig := jetstream.KeyValueConfig{Bucket: "ITEMS", History: 1, Storage: jetstream.FileStorage, Replicas: 1}
	kv, err := gw.js.CreateOrUpdateKeyValue(ctx, kvConfig)
	if err != nil {
		t.Fatalf("gateway creates the ITEMS bucket: %v", err)
	}
	if _, err := gw.js.CreateOrUpdateKeyValue(ctx, kvConfig); err != nil {
		t.Fatalf("gateway updates the ITEMS bucket: %v", err)
	}
	if _, err := kv.Create(ctx, "item_1", []byte(`{"id":"item_1"}`)); err != nil {
		t.Fatalf("gateway records an item: %v", err)
	}
	if _, err := kv.Create(ctx, "item_1", []byte(`{}`)); !errors.Is(err, jetstream.ErrKeyExists) {
		t.Errorf("recording an item twice: %v, want %v", err, jetstream.ErrKeyExists)
	}
	if e, err := kv.Get(ctx, "item_1"); err != nil || string(e.Value()) != `{"id":"item_1"}` {
		t.Errorf("gateway reads an item record: %v", err)
	}
	keys, err := kv.ListKeys(ctx)
	if err != nil {
		t.Fatalf("gateway lists the items: %v", err)
	}
	var ids []string
	for k := range keys.Keys() {
		ids = append(ids, k)
	}
	if len(ids) != 1 || ids[0] != "item_1" {
		t.Errorf("listed items %v, want [item_1]", ids)
	}
	for seq := uint64(1); seq <= 3; seq++ {
		publishEvent(t, gw.js, "item_1", seq)
	}
	testenv.WaitFor(t, 10*time.Second, "the gateway's live feed", func() error {
		if _, ok := live.Load(stream.Subject("item_1")); !ok {
			return errors.New("nothing received")
		}
		return nil
	})
	restoreLastEvent(t, ctx, gw.js, "item_1")

	// The broadcast service: live events, viewer counts, history reads.
	bids, err := bc.nc.SubscribeSync(stream.Subject("item_2"))
	if err != nil {
		t.Fatal(err)
	}
	viewers, err := bc.nc.SubscribeSync("broadcast.viewers.item_2")
	if err != nil {
		t.Fatal(err)
	}
	if err := bc.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	publishEvent(t, gw.js, "item_2", 1)
	if _, err := bids.NextMsg(10 * time.Second); err != nil {
		t.Errorf("broadcast receives a live event: %v", err)
	}
	if err := bc.nc.Publish("broadcast.viewers.item_2", []byte(`{"count":1}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := viewers.NextMsg(10 * time.Second); err != nil {
		t.Errorf("broadcast receives viewer counts: %v", err)
	}
	s, err := bc.js.Stream(ctx, stream.Name)
	if err != nil {
		t.Fatalf("broadcast binds to the stream: %v", err)
	}
	last, err := s.GetLastMsgForSubject(ctx, stream.Subject("item_1"))
	if err != nil {
		t.Fatalf("broadcast reads an item's last event: %v", err)
	}
	if _, err := s.GetMsg(ctx, 1, jetstream.WithGetMsgSubject(stream.Subject("item_1"))); err != nil {
		t.Errorf("broadcast reads an item's history: %v", err)
	}
	// Personal channels: every item's events through an ordered consumer.
	ordered, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy})
	if err != nil {
		t.Fatal(err)
	}
	if m, err := ordered.Next(jetstream.FetchMaxWait(10 * time.Second)); err != nil {
		t.Errorf("broadcast follows every item's events: %v", err)
	} else if m.Subject() != stream.Subject("item_1") {
		t.Errorf("broadcast's first followed event is on %s, want %s", m.Subject(), stream.Subject("item_1"))
	}

	// The archival worker: its durable consumer, acknowledgements, purges.
	s, err = ar.js.Stream(ctx, stream.Name)
	if err != nil {
		t.Fatalf("archiver binds to the stream: %v", err)
	}
	cons, err := s.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable: archiverDurable, DeliverPolicy: jetstream.DeliverAllPolicy, AckPolicy: jetstream.AckExplicitPolicy,
		AckWait: 30 * time.Second, MaxDeliver: -1, MaxAckPending: 4000, MaxWaiting: 512,
	})
	if err != nil {
		t.Fatalf("archiver creates its consumer: %v", err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(16))
	if err != nil {
		t.Fatalf("archiver pulls: %v", err)
	}
	for range 4 {
		m, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			t.Fatalf("archiver pulls: %v", err)
		}
		if err := m.InProgress(); err != nil {
			t.Fatal(err)
		}
		if err := m.DoubleAck(ctx); err != nil {
			t.Fatalf("archiver acknowledges: %v", err)
		}
	}
	it.Stop()
	info, err := cons.Info(ctx)
	if err != nil {
		t.Fatalf("archiver reads its consumer's state: %v", err)
	}
	if info.AckFloor.Stream != 4 {
		t.Errorf("ack floor %d, want 4", info.AckFloor.Stream)
	}
	if err := s.Purge(ctx, jetstream.WithPurgeSubject(stream.Subject("item_1")), jetstream.WithPurgeSequence(last.Sequence)); err != nil {
		t.Errorf("archiver purges an archived item: %v", err)
	}
	if _, err := s.GetMsg(ctx, 1, jetstream.WithGetMsgSubject(stream.Subject("item_1"))); err != nil {
		t.Errorf("archiver reads an item's history: %v", err)
	}
	for name, uc := range map[string]*userConn{"gateway": gw, "broadcast": bc, "archiver": ar} {
		uc.mu.Lock()
		for _, err := range uc.errs {
			if errors.Is(err, nats.ErrPermissionViolation) {
				t.Errorf("%s was refused something it does: %v", name, err)
			}
		}
		uc.mu.Unlock()
	}
	before := streamMsgs(t, gw.js)
	if before != 2 {
		t.Fatalf("stream holds %d messages after the purge, want 2 (item_1's last, item_2's)", before)
	}

	// What nobody but the gateway may do to the stream.
	for name, uc := range map[string]*userConn{"broadcast": bc, "archiver": ar} {
		t.Run(name+" refused", func(t *testing.T) {
			if _, err := uc.js.Publish(refusal(), stream.Subject("item_1"), eventJSON(t, "item_1", 99)); err == nil {
				t.Error("published an event")
			}
			testenv.WaitFor(t, 10*time.Second, "the refusal", uc.refusedTo("bids.item_1"))
			changed := stream.Config(1)
			changed.MaxMsgs = 10
			if _, err := uc.js.UpdateStream(refusal(), changed); err == nil {
				t.Error("changed the stream's limits")
			}
			if err := uc.js.DeleteStream(refusal(), stream.Name); err == nil {
				t.Error("deleted the stream")
			}
			if err := uc.js.DeleteKeyValue(refusal(), "ITEMS"); err == nil {
				t.Error("deleted the ITEMS bucket")
			}
			if _, err := uc.nc.Subscribe("_INBOX.gateway.>", func(*nats.Msg) {}); err == nil {
				testenv.WaitFor(t, 10*time.Second, "the refusal", uc.refusedTo("_INBOX.gateway.>"))
			}
		})
	}
	t.Run("broadcast refused the archive", func(t *testing.T) {
		if err := bc.js.DeleteConsumer(refusal(), stream.Name, archiverDurable); err == nil {
			t.Error("deleted the archive's consumer")
		}
		if _, err := bc.js.CreateOrUpdateConsumer(refusal(), stream.Name, jetstream.ConsumerConfig{Durable: archiverDurable}); err == nil {
			t.Error("took over the archive's consumer")
		}
		if _, err := bc.js.CreateOrUpdateConsumer(refusal(), stream.Name, jetstream.ConsumerConfig{Durable: archiverDurable, FilterSubject: stream.Subjects}); err == nil {
			t.Error("took over the archive's consumer with a filter")
		}
		// Pulling the archive's messages would hide them from it until
		// they are redelivered.
		if err := bc.nc.PublishRequest("$JS.API.CONSUMER.MSG.NEXT.BIDS."+archiverDurable, "_INBOX.broadcast.pull", []byte(`{"batch":1}`)); err != nil {
			t.Fatal(err)
		}
		testenv.WaitFor(t, 10*time.Second, "the refusal", bc.refusedTo("$JS.API.CONSUMER.MSG.NEXT.BIDS."+archiverDurable))
		bs, err := bc.js.Stream(ctx, stream.Name)
		if err != nil {
			t.Fatal(err)
		}
		if err := bs.Purge(refusal()); err == nil {
			t.Error("purged the stream")
		}
	})
	t.Run("archiver refused", func(t *testing.T) {
		if _, err := s.CreateOrUpdateConsumer(refusal(), jetstream.ConsumerConfig{Durable: "another"}); err == nil {
			t.Error("created another consumer")
		}
		if _, err := ar.nc.Subscribe(stream.Subjects, func(*nats.Msg) {}); err == nil {
			testenv.WaitFor(t, 10*time.Second, "the refusal", ar.refusedTo(stream.Subjects))
		}
		if _, err := ar.js.KeyValue(refusal(), "ITEMS"); err == nil {
			t.Error("opened the ITEMS bucket")
		}
	})
	t.Run("gateway refused", func(t *testing.T) {
		if err := gw.js.DeleteStream(refusal(), stream.Name); err == nil {
			t.Error("deleted the stream")
		}
		if err := gw.js.DeleteKeyValue(refusal(), "ITEMS"); err == nil {
			t.Error("deleted the ITEMS bucket")
		}
		gs, err := gw.js.Stream(ctx, stream.Name)
		if err != nil {
			t.Fatal(err)
		}
		if err := gs.Purge(refusal()); err == nil {
			t.Error("purged the stream")
		}
		if err := gw.nc.Publish("broadcast.viewers.item_2", []byte(`{"count":1000}`)); err != nil {
			t.Fatal(err)
		}
		testenv.WaitFor(t, 10*time.Second, "the refusal", gw.refusedTo("broadcast.viewers.item_2"))
	})
	if after := streamMsgs(t, gw.js); after != before {
		t.Errorf("stream holds %d messages after the refused calls, want %d", after, before)
	}
	if info, err := gw.js.Stream(ctx, stream.Name); err != nil || info.CachedInfo().Config.MaxMsgs != stream.Config(1).MaxMsgs {
		t.Errorf("stream after the refused calls: %v", err)
	}
	if _, err := gw.js.KeyValue(ctx, "ITEMS"); err != nil {
		t.Errorf("ITEMS bucket after the refused calls: %v", err)
	}
}

// publishEvent publishes a bid event as the gateway does: JetStream, with
// the event id as Nats-Msg-Id.
func publishEvent(t *testing.T, js jetstream.JetStream, item string, seq uint64) {
	t.Helper()
	msg := &nats.Msg{Subject: stream.Subject(item), Data: eventJSON(t, item, seq), Header: nats.Header{}}
	msg.Header.Set(jetstream.MsgIDHeader, fmt.Sprintf("evt_%s_%d", item, seq))
	f, err := js.PublishMsgAsync(msg)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-f.Ok():
	case err := <-f.Err():
		t.Fatalf("gateway publishes %s/%d: %v", item, seq, err)
	case <-time.After(30 * time.Second):
		t.Fatal("no acknowledgement")
	}
}

func eventJSON(t *testing.T, item string, seq uint64) []byte {
	t.Helper()
	b, err := json.Marshal(models.Event{
		Type: models.EventBid, EventID: fmt.Sprintf("evt_%s_%d", item, seq), ItemID: item, BidID: models.NewBidID(),
		UserID: "user_1", Amount: models.Money(100 * (seq + 1)), PreviousBid: models.Money(100 * seq), Timestamp: time.Now().UTC(), Seq: seq,
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// restoreLastEvent reads an item's last event and the ones stored just
// before it as the gateway's restore does (api-gateway/internal/nats
// LastEvent): a short-lived consumer of the item's subject.
func restoreLastEvent(t *testing.T, ctx context.Context, js jetstream.JetStream, item string) {
	t.Helper()
	s, err := js.Stream(ctx, stream.Name)
	if err != nil {
		t.Fatalf("gateway looks the stream up: %v", err)
	}
	m, err := s.GetLastMsgForSubject(ctx, stream.Subject(item))
	if err != nil {
		t.Fatalf("gateway reads an item's last event: %v", err)
	}
	start := m.Time.Add(-3 * time.Minute)
	cons, err := s.CreateConsumer(ctx, jetstream.ConsumerConfig{
		FilterSubject: stream.Subject(item), DeliverPolicy: jetstream.DeliverByStartTimePolicy, OptStartTime: &start,
		AckPolicy: jetstream.AckNonePolicy, InactiveThreshold: time.Minute, Replicas: 1, MemoryStorage: true,
	})
	if err != nil {
		t.Fatalf("gateway reads an item's recent events: %v", err)
	}
	batch, err := cons.Fetch(16, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatalf("gateway fetches an item's recent events: %v", err)
	}
	n := 0
	for range batch.Messages() {
		n++
	}
	if err := batch.Error(); err != nil || n != 3 {
		t.Errorf("gateway fetched %d recent events (%v), want 3", n, err)
	}
	if err := s.DeleteConsumer(ctx, cons.CachedInfo().Name); err != nil {
		t.Errorf("gateway deletes its restore consumer: %v", err)
	}
}

func streamMsgs(t *testing.T, js jetstream.JetStream) uint64 {
	t.Helper()
	s, err := js.Stream(ctxFor(t, 10*time.Second), stream.Name)
	if err != nil {
		t.Fatal(err)
	}
	return s.CachedInfo().State.Msgs
}
