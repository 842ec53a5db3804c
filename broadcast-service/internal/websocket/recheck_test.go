package websocket_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
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

// lossySource is the real NATS source, losing chosen events the way a NATS
// cluster can: never delivered to the feed's subscription, though stored.
type lossySource struct {
	*bnats.Client
	t  *testing.T
	js jetstream.JetStream

	mu    sync.Mutex
	lost  map[string]bool // event ids the subscription never sees
	lasts int             // reads of the newest stored event
	// atStart, when set, is published just after the feed read its
	// snapshot, as happens while a new subscription's interest spreads.
	atStart *models.Event
}

func (s *lossySource) Subscribe(itemID string, fn func(data []byte, more bool)) (func() error, error) {
	return s.Client.Subscribe(itemID, func(data []byte, more bool) {
		s.mu.Lock()
		defer s.mu.Unlock()
		for id := range s.lost {
			if bytes.Contains(data, []byte(id)) {
				return
			}
		}
		fn(data, more)
	})
}

func (s *lossySource) Last(ctx context.Context, itemID string) (models.Event, bool, error) {
	ev, ok, err := s.Client.Last(ctx, itemID)
	s.mu.Lock()
	s.lasts++
	start := s.atStart
	s.atStart = nil
	s.mu.Unlock()
	if start != nil {
		s.publish(ctx, *start)
	}
	return ev, ok, err
}

func (s *lossySource) lose(ev models.Event) {
	s.mu.Lock()
	s.lost[ev.EventID] = true
	s.mu.Unlock()
}

func (s *lossySource) publish(ctx context.Context, ev models.Event) {
	data, _ := json.Marshal(ev)
	if _, err := s.js.Publish(ctx, stream.Subject(ev.ItemID), data); err != nil {
		s.t.Errorf("publish seq %d: %v", ev.Seq, err)
	}
}

// lossyHub serves one hub on the real NATS behind a lossy source.
func lossyHub(t *testing.T) (*lossySource, string) {
	t.Helper()
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
	client, err := bnats.Connect(ctx, n.URL(), bnats.Options{Name: "lossy-test"}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.Close)
	src := &lossySource{Client: client, t: t, js: js, lost: make(map[string]bool)}
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
	return src, "ws" + strings.TrimPrefix(srv.URL, "http") + "/ws?item_id="
}

func bidEvent(item string, seq uint64) models.Event {
	ends := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	return models.Event{Type: models.EventBid, EventID: models.NewEventID(), ItemID: item, BidID: models.NewBidID(),
		UserID: "alice", Amount: models.Money(10000 + 100*seq), Timestamp: time.Now().UTC(), Seq: seq, EndsAt: &ends, BidCount: int64(seq)}
}

// readBids reads the viewer's messages until it has the bids from seq from
// up to upTo, in order (or a snapshot covering them), failing on any other
// bid.
func readBids(t *testing.T, c *gws.Conn, from, upTo uint64) {
	t.Helper()
	if err := c.SetReadDeadline(time.Now().Add(15 * time.Second)); err != nil {
		t.Fatal(err)
	}
	for want := from; want <= upTo; {
		var m struct {
			Type string `json:"type"`
			Seq  uint64 `json:"seq"`
		}
		if err := c.ReadJSON(&m); err != nil {
			t.Fatalf("waiting for seq %d: %v", want, err)
		}
		switch m.Type {
		case websocket.TypeSnapshot: // may already cover bids published since the dial
			want = max(want, m.Seq+1)
		case models.EventBid:
			if m.Seq != want {
				t.Fatalf("bid seq %d, want %d", m.Seq, want)
			}
			want++
		}
	}
}

// An item's last event, lost to a new feed's subscription and missing from
// its snapshot, still reaches the viewer: the feed reads the stream again
// once quiet. No later event would reveal the hole.
func TestLastEventLostAtFeedStart(t *testing.T) {
	src, url := lossyHub(t)
	lost := bidEvent("quiet_item", 1)
	src.atStart = &lost
	src.lose(lost)
	c, _, err := gws.DefaultDialer.Dial(url+"quiet_item", nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.Close()
	readBids(t, c, 1, 1)
}

// The same for a last event lost later, while the feed runs (a route
// between NATS servers dropped it).
func TestLastEventLostMidFeed(t *testing.T) {
	src, url := lossyHub(t)
	c, _, err := gws.DefaultDialer.Dial(url+"mid_item", nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Past the read a feed makes once quiet after it starts: from here
	// only the events themselves can bring another.
	testenv.WaitFor(t, 10*time.Second, "the feed's first quiet read", func() error {
		src.mu.Lock()
		defer src.mu.Unlock()
		if src.lasts < 2 {
			return fmt.Errorf("%d reads", src.lasts)
		}
		return nil
	})
	for seq := uint64(1); seq <= 3; seq++ {
		src.publish(ctx, bidEvent("mid_item", seq))
	}
	readBids(t, c, 1, 3)
	lost := bidEvent("mid_item", 4)
	src.lose(lost)
	src.publish(ctx, lost)
	readBids(t, c, 4, 4)
}
