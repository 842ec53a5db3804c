package models

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestEventJSONShape(t *testing.T) {
	t.Parallel()
	ts := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	e := Event{Type: EventBid, EventID: "evt_abc123", ItemID: "item_123", BidID: "bid_xyz", UserID: "user_456",
		Amount: 20000, PreviousBid: 15050, Timestamp: ts, Seq: 7}
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	got := string(b)
	want := `{"type":"bid","event_id":"evt_abc123","item_id":"item_123","bid_id":"bid_xyz","user_id":"user_456","amount":200.00,"previous_bid":150.50,"timestamp":"2024-01-01T00:00:00Z","seq":7}`
	if got != want {
		t.Errorf("event JSON\n got %s\nwant %s", got, want)
	}
	var back Event
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back != e {
		t.Errorf("round trip = %+v, want %+v", back, e)
	}
}

func TestItemJSONShape(t *testing.T) {
	t.Parallel()
	b, err := json.Marshal(Item{ID: "item_123", Name: "Vintage Watch", CurrentBid: 15050, HighestBidderID: "user_456", Status: StatusActive})
	if err != nil {
		t.Fatal(err)
	}
	for _, field := range []string{`"id":"item_123"`, `"name":"Vintage Watch"`, `"current_bid":150.50`, `"highest_bidder_id":"user_456"`, `"status":"active"`} {
		if !strings.Contains(string(b), field) {
			t.Errorf("item JSON %s lacks %s", b, field)
		}
	}
}

func TestMinNextBid(t *testing.T) {
	t.Parallel()
	it := Item{StartingPrice: 1000, MinIncrement: 100}
	if got, want := it.MinNextBid(), Money(1000); got != want {
		t.Errorf("before any bid: MinNextBid = %v, want %v", got, want)
	}
	it.CurrentBid, it.HighestBidderID, it.BidCount = 1500, "u1", 1
	if got, want := it.MinNextBid(), Money(1600); got != want {
		t.Errorf("after a bid: MinNextBid = %v, want %v", got, want)
	}
}

func TestValidateID(t *testing.T) {
	t.Parallel()
	for _, ok := range []string{"item_123", "A-b_9", strings.Repeat("x", 64)} {
		if err := ValidateID(ok); err != nil {
			t.Errorf("ValidateID(%q) = %v, want nil", ok, err)
		}
	}
	for _, bad := range []string{"", strings.Repeat("x", 65), "a.b", "a b", "a*", "a>", "{tag}", "é"} {
		if err := ValidateID(bad); !errors.Is(err, ErrInvalidID) {
			t.Errorf("ValidateID(%q) = %v, want ErrInvalidID", bad, err)
		}
	}
}

func TestNewIDs(t *testing.T) {
	t.Parallel()
	seen := make(map[string]bool)
	prev := ""
	for i := 0; i < 1000; i++ {
		id := NewEventID()
		if !strings.HasPrefix(id, "evt_") || len(id) != 30 {
			t.Fatalf("NewEventID() = %q, want evt_ and 26 characters", id)
		}
		if seen[id] {
			t.Fatalf("NewEventID() repeated %q", id)
		}
		seen[id] = true
		// The first 9 characters after the prefix hold 45 of the 48 time bits.
		if id[:13] < prev[:min(13, len(prev))] {
			t.Fatalf("ids not time-ordered: %q after %q", id, prev)
		}
		prev = id
	}
	if id := NewBidID(); !strings.HasPrefix(id, "bid_") {
		t.Errorf("NewBidID() = %q, want prefix bid_", id)
	}
}
