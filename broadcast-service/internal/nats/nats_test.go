package nats_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	gonats "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/bidding-platform/broadcast-service/internal/nats"
	"github.com/bidding-platform/shared/models"
	"github.com/bidding-platform/shared/stream"
	"github.com/bidding-platform/shared/testenv"
)

// TestAfter reads one item's history out of a stream shared with other
// items, from any starting point.
func TestAfter(t *testing.T) {
	n, c, ctx := connect(t)
	js := n.JetStream()
	if _, err := stream.Ensure(ctx, js, 1); err != nil {
		t.Fatal(err)
	}
	// Three items interleaved, so stream and item sequences differ.
	items := []string{"a_item", "b_item", "c_item"}
	for seq := uint64(1); seq <= 60; seq++ {
		for _, id := range items {
			publish(t, ctx, js, bid(id, seq))
		}
	}
	seqs := func(from, to uint64) []uint64 {
		var out []uint64
		for s := from; s <= to; s++ {
			out = append(out, s)
		}
		return out
	}
	tests := []struct {
		name        string
		after, upTo uint64
		want        []uint64
	}{
		{"everything", 0, 0, seqs(1, 60)},
		{"from the middle", 37, 0, seqs(38, 60)},
		{"a window", 10, 20, seqs(11, 20)},
		{"nothing newer", 60, 0, nil},
		{"first only", 0, 1, []uint64{1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []uint64
			oldest, err := c.After(ctx, "b_item", tt.after, tt.upTo, func(ev models.Event) error {
				if ev.ItemID != "b_item" {
					t.Errorf("got an event of %s", ev.ItemID)
				}
				got = append(got, ev.Seq)
				return nil
			})
			if err != nil {
				t.Fatalf("After(%d, %d): %v", tt.after, tt.upTo, err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("After(%d, %d) = %v, want %v", tt.after, tt.upTo, got, tt.want)
			}
			if oldest != 1 {
				t.Errorf("oldest = %d, want 1", oldest)
			}
		})
	}

	last, ok, err := c.Last(ctx, "c_item")
	if err != nil || !ok || last.Seq != 60 {
		t.Fatalf("Last(c_item) = %d, %v, %v; want 60, true, nil", last.Seq, ok, err)
	}
	if _, ok, err := c.Last(ctx, "nobody"); ok || err != nil {
		t.Fatalf("Last of an item without events: ok=%v err=%v, want false, nil", ok, err)
	}

	s, err := js.Stream(ctx, stream.Name)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Purge(ctx, jetstream.WithPurgeSubject(stream.Subject("a_item")), jetstream.WithPurgeKeep(10)); err != nil {
		t.Fatal(err)
	}
	var got []uint64
	oldest, err := c.After(ctx, "a_item", 5, 0, func(ev models.Event) error { got = append(got, ev.Seq); return nil })
	if err != nil {
		t.Fatal(err)
	}
	if oldest != 51 || !slices.Equal(got, seqs(51, 60)) {
		t.Errorf("after purge: oldest %d, events %v; want 51 and 51..60", oldest, got)
	}
}

// TestInvalidStoredEventsArePassedOver: history reads skip what the shared
// decoder refuses, and Last falls back to the newest valid event, so one
// bad message keeps no viewer from an item.
func TestInvalidStoredEventsArePassedOver(t *testing.T) {
	n, c, ctx := connect(t)
	js := n.JetStream()
	if _, err := stream.Ensure(ctx, js, 1); err != nil {
		t.Fatal(err)
	}
	const item = "bad_item"
	// A newer producer's event type, and one that is not JSON.
	unknown := []byte(`{"type":"auction_extended","event_id":"evt_new","item_id":"bad_item","seq":3}`)
	publish(t, ctx, js, bid(item, 1))
	publish(t, ctx, js, bid(item, 2))
	publishRaw(t, ctx, js, stream.Subject(item), unknown)
	publish(t, ctx, js, bid(item, 4))
	publishRaw(t, ctx, js, stream.Subject(item), []byte(`{"type":`))

	var got []uint64
	oldest, err := c.After(ctx, item, 0, 0, func(ev models.Event) error { got = append(got, ev.Seq); return nil })
	if err != nil {
		t.Fatalf("After over invalid events: %v", err)
	}
	if want := []uint64{1, 2, 4}; !slices.Equal(got, want) || oldest != 1 {
		t.Errorf("After = %v, oldest %d; want %v, oldest 1", got, oldest, want)
	}
	got = nil
	if _, err := c.After(ctx, item, 2, 0, func(ev models.Event) error { got = append(got, ev.Seq); return nil }); err != nil || !slices.Equal(got, []uint64{4}) {
		t.Errorf("After(2) = %v, %v; want [4], nil (the binary search lands past the invalid event)", got, err)
	}
	last, ok, err := c.Last(ctx, item)
	if err != nil || !ok || last.Seq != 4 {
		t.Errorf("Last with an invalid newest message = seq %d, %v, %v; want 4, true, nil", last.Seq, ok, err)
	}

	// Nothing valid at all: no event, not an error.
	publishRaw(t, ctx, js, stream.Subject("only_bad"), unknown)
	if _, ok, err := c.Last(ctx, "only_bad"); ok || err != nil {
		t.Errorf("Last of an item with only an invalid event: ok=%v err=%v, want false, nil", ok, err)
	}
}

// TestSubscribeMore: more is true exactly while further messages are
// already waiting, so the hub can send them together.
func TestSubscribeMore(t *testing.T) {
	n, c, ctx := connect(t)
	const item = "more_item"
	type call struct {
		data string
		more bool
	}
	calls := make(chan call, 10)
	started, release := make(chan struct{}), make(chan struct{})
	unsub, err := c.Subscribe(item, func(data []byte, more bool) {
		if string(data) == "0" {
			return // subscriptions not yet known to be in place
		}
		calls <- call{string(data), more}
		if string(data) == "1" {
			close(started)
			<-release
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer unsub()
	// A second subscription on the same connection shows when messages
	// have reached the client: NATS delivers them to it in publish order.
	seen := make(chan string, 10)
	unsubSeen, err := c.Subscribe(item, func(data []byte, _ bool) { seen <- string(data) })
	if err != nil {
		t.Fatal(err)
	}
	defer unsubSeen()

	nc, err := gonats.Connect(n.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	publish := func(s string) {
		t.Helper()
		if err := nc.Publish(stream.Subject(item), []byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	waitSeen := func(want string) {
		t.Helper()
		for {
			select {
			case got := <-seen:
				if got == want {
					return
				}
			case <-ctx.Done():
				t.Fatalf("message %s never arrived", want)
			}
		}
	}
	// Subscriptions reach the server asynchronously, in order: once the
	// second one gets a message, both are in place.
	for ready := false; !ready; {
		publish("0")
		select {
		case <-seen:
			ready = true
		case <-time.After(100 * time.Millisecond):
		case <-ctx.Done():
			t.Fatal("subscriptions never got a message")
		}
	}
	publish("1")
	select {
	case <-started:
	case <-ctx.Done():
		t.Fatal("first message never arrived")
	}
	publish("2")
	publish("3")
	publish("4")
	// Once the other subscription has 4, this one holds 2 and 3 at
	// least; whether 4 is there yet when 3 is handled is not known.
	waitSeen("4")
	close(release)
	// 1 was handled before anything else was published.
	want := []call{{"1", false}, {"2", true}, {"3", false}, {"4", false}}
	for i, w := range want {
		select {
		case got := <-calls:
			if got.data != w.data || (i != 2 && got.more != w.more) {
				t.Errorf("got message %s with more=%v, want %s with more=%v", got.data, got.more, w.data, w.more)
			}
		case <-ctx.Done():
			t.Fatalf("message %s not delivered", w.data)
		}
	}
}

// connect starts a NATS server and connects a client to it, both closed at
// the end of the test, and returns a context bounding the test.
// TestStreamCreatedByTheGateway: the service never creates the stream.
// Before the gateway has, an item has no history; once it has, the
// service reads it without reconnecting.
func TestStreamCreatedByTheGateway(t *testing.T) {
	n, c, ctx := connect(t)
	js := n.JetStream()
	if _, ok, err := c.Last(ctx, "a_item"); ok || err != nil {
		t.Fatalf("Last before the stream exists = %v, %v; want none and no error", ok, err)
	}
	if _, err := js.Stream(ctx, stream.Name); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Fatalf("the stream after the service connected and read: %v, want %v (only the gateway creates it)", err, jetstream.ErrStreamNotFound)
	}
	if _, err := stream.Ensure(ctx, js, 1); err != nil {
		t.Fatal(err)
	}
	publish(t, ctx, js, bid("a_item", 1))
	ev, ok, err := c.Last(ctx, "a_item")
	if err != nil || !ok || ev.Seq != 1 {
		t.Errorf("Last once the gateway created the stream = seq %d, %v, %v; want seq 1", ev.Seq, ok, err)
	}
}

func connect(t *testing.T) (*testenv.NATSServer, *nats.Client, context.Context) {
	t.Helper()
	n := testenv.NATS(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	c, err := nats.Connect(ctx, n.URL(), nats.Options{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return n, c, ctx
}

// bid is a valid bid event of item at seq.
func bid(item string, seq uint64) models.Event {
	return models.Event{
		Type: models.EventBid, EventID: models.NewEventID(), ItemID: item, BidID: models.NewBidID(), UserID: "user_1",
		Amount: models.Money(100 * (seq + 1)), PreviousBid: models.Money(100 * seq), Timestamp: time.Now().UTC(), Seq: seq,
	}
}

func publish(t *testing.T, ctx context.Context, js jetstream.JetStream, ev models.Event) {
	t.Helper()
	data, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	publishRaw(t, ctx, js, stream.Subject(ev.ItemID), data)
}

func publishRaw(t *testing.T, ctx context.Context, js jetstream.JetStream, subject string, data []byte) {
	t.Helper()
	if _, err := js.Publish(ctx, subject, data); err != nil {
		t.Fatal(err)
	}
}
