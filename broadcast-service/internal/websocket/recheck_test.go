package websocket_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	gws "github.com/gorilla/websocket"
	gonats "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	bnats "github.com/bidding-platform/broadcast-service/internal/nats"
	"github.com/bidding-platform/broadcast-service/internal/websocket"
	"github.com/bidding-platform/shared/models"
	"github.com/bidding-platform/shared/stream"
	"github.com/bidding-platform/shared/testenv"
)

// lostSource is the real NATS source, losing one event the way a NATS
// cluster can while a new feed's subscription interest spreads to the other
// servers: the event is published just after the feed read its snapshot,
// and never reaches the feed's subscription.
type lostSource struct {
	*bnats.Client
	t    *testing.T
	js   jetstream.JetStream
	lost models.Event
	once sync.Once
}

func (s *lostSource) Subscribe(itemID string, fn func(data []byte, more bool)) (func() error, error) {
	return s.Client.Subscribe(itemID, func(data []byte, more bool) {
		if !bytes.Contains(data, []byte(s.lost.EventID)) {
			fn(data, more)
		}
	})
}

func (s *lostSource) Last(ctx context.Context, itemID string) (models.Event, bool, error) {
	ev, ok, err := s.Client.Last(ctx, itemID)
	s.once.Do(func() {
		data, _ := json.Marshal(s.lost)
		if _, err := s.js.Publish(ctx, stream.Subject(itemID), data); err != nil {
			s.t.Errorf("publish the lost event: %v", err)
		}
	})
	return ev, ok, err
}

// An item's last event, lost to a new feed's subscription and missing from
// its snapshot, still reaches the viewer: the feed reads the stream again
// a moment after it starts. No later event would reveal the hole.
func TestLastEventLostAtFeedStart(t *testing.T) {
	n := testenv.NATS(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	nc, err := gonats.Connect(n.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Ensure(ctx, js, 1); err != nil {
		t.Fatalf("ensure stream: %v", err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	client, err := bnats.Connect(ctx, n.URL(), bnats.Options{Name: "recheck-test"}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.Close)

	ends := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	lost := models.Event{Type: models.EventBid, EventID: models.NewEventID(), ItemID: "quiet_item", BidID: models.NewBidID(),
		UserID: "alice", Amount: 12000, Timestamp: time.Now().UTC(), Seq: 1, EndsAt: &ends, BidCount: 1}
	src := &lostSource{Client: client, t: t, js: js, lost: lost}
	hub := websocket.NewHub(websocket.Config{}, src, websocket.NewMetrics(prometheus.NewRegistry()), log)
	hubCtx, stopHub := context.WithCancel(context.Background())
	hubDone := make(chan error, 1)
	go func() { hubDone <- hub.Run(hubCtx) }()
	srv := httptest.NewServer(websocket.NewHandler(hub, log))
	t.Cleanup(func() {
		srv.Close()
		stopHub()
		<-hubDone
	})

	c, _, err := gws.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http")+"/ws?item_id=quiet_item", nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.Close()
	if err := c.SetReadDeadline(time.Now().Add(15 * time.Second)); err != nil {
		t.Fatal(err)
	}
	var first struct {
		Type string `json:"type"`
		Seq  uint64 `json:"seq"`
	}
	if err := c.ReadJSON(&first); err != nil || first.Type != websocket.TypeSnapshot || first.Seq != 0 {
		t.Fatalf("first message %+v, %v; want the snapshot before any event", first, err)
	}
	for {
		var m struct {
			Type   string       `json:"type"`
			Seq    uint64       `json:"seq"`
			Amount models.Money `json:"amount"`
		}
		if err := c.ReadJSON(&m); err != nil {
			t.Fatalf("waiting for the lost event: %v", err)
		}
		if m.Type == models.EventBid {
			if m.Seq != 1 || m.Amount != lost.Amount {
				t.Fatalf("event %+v, want the lost one (seq 1, 120.00)", m)
			}
			return
		}
	}
}
