package smoke

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/bidding-platform/shared/models"
	"github.com/bidding-platform/shared/testenv"
)

// TestUnpublishedEventReachesViewersInOrder: a gateway that accepted a bid
// but could not publish it, as when it dies right after the Redis write,
// leaves the event in the item's outbox, and another gateway's relay
// publishes it seconds later, after the events that came behind it. Viewers
// must get it in its place, and never a "missed" message.
func TestUnpublishedEventReachesViewersInOrder(t *testing.T) {
	gatewayBin := buildService(t, "api-gateway")
	broadcastBin := buildService(t, "broadcast-service")
	rd := testenv.Redis(t)
	nt := testenv.NATS(t)
	env := []string{"REDIS_ADDR=" + rd.Addr(), "AUTO_CREATE_ITEMS=true", "AUTH_DISABLED=true", "RATE_LIMIT_PER_USER=0", "RATE_LIMIT_PER_IP=0", noPostgres}
	live := "http://" + startService(t, gatewayBin, append(env, "NATS_URL="+nt.URL())...)
	// Nothing listens there: this gateway's events stay in the outbox.
	cut := "http://" + startService(t, gatewayBin, append(env, "NATS_URL=nats://"+freeAddr(t))...)
	broadcastAddr := startService(t, broadcastBin, "NATS_URL="+nt.URL(), "AUTH_DISABLED=true")

	const itemID = "relay_smoke"
	it := getItem(t, live, itemID)
	viewer, _, err := websocket.DefaultDialer.Dial("ws://"+broadcastAddr+"/ws?item_id="+itemID, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer viewer.Close()
	if m := readMessage(t, viewer); m.Type != "snapshot" {
		t.Fatalf("first message %+v, want the snapshot", m)
	}

	price := it.CurrentBid
	var eventIDs []string
	for i, gateway := range []string{cut, live, live} {
		price += it.MinIncrement
		eventIDs = append(eventIDs, placeBid(t, gateway, itemID, fmt.Sprintf("user_%d", i), price))
	}
	for seq := uint64(1); seq <= uint64(len(eventIDs)); {
		m := readMessage(t, viewer)
		switch m.Type {
		case "viewers":
			continue
		case "bid":
			if m.Seq != seq || m.EventID != eventIDs[seq-1] {
				t.Fatalf("got bid seq %d (%s), want seq %d (%s)", m.Seq, m.EventID, seq, eventIDs[seq-1])
			}
			seq++
		default:
			t.Fatalf("got %+v while waiting for bid seq %d", m, seq)
		}
	}
}

type viewerMessage struct {
	Type    string `json:"type"`
	Seq     uint64 `json:"seq"`
	EventID string `json:"event_id"`
}

func readMessage(t *testing.T, c *websocket.Conn) viewerMessage {
	t.Helper()
	// The relayed event takes up to about 3 s; the rest comes at once.
	if err := c.SetReadDeadline(time.Now().Add(15 * time.Second)); err != nil {
		t.Fatal(err)
	}
	var m viewerMessage
	if err := c.ReadJSON(&m); err != nil {
		t.Fatalf("read viewer message: %v", err)
	}
	return m
}

// placeBid places an accepted bid and returns its event id.
func placeBid(t *testing.T, gateway, itemID, user string, amount models.Money) string {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"user_id": user, "amount": amount})
	resp, err := http.Post(gateway+"/api/v1/items/"+itemID+"/bid", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var answer struct {
		EventID string `json:"event_id"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&answer); err != nil || resp.StatusCode != http.StatusOK || answer.EventID == "" {
		t.Fatalf("bid %s by %s on %s: status %d, event %q, %v; want it accepted", amount, user, gateway, resp.StatusCode, answer.EventID, err)
	}
	return answer.EventID
}
