package consumer_test

import (
	"testing"

	"github.com/bidding-platform/archival-worker/internal/consumer"
	"github.com/bidding-platform/shared/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func TestDecode(t *testing.T) {
	t.Parallel()
	const good = `{"type":"bid","event_id":"evt_1","item_id":"i1","bid_id":"bid_1","user_id":"u1","amount":200.50,"previous_bid":0,"timestamp":"2024-01-01T00:00:00Z","seq":1}`
	tests := []struct {
		name, subject, data string
		ok                  bool
	}{
		{"bid", "bids.i1", good, true},
		{"close", "bids.i1", `{"type":"auction_closed","event_id":"evt_2","item_id":"i1","amount":200.50,"seq":2,"winner_id":"u1","timestamp":"2024-01-01T00:00:00Z"}`, true},
		{"close without winner", "bids.i1", `{"type":"auction_closed","event_id":"evt_2","item_id":"i1","amount":0,"seq":1}`, true},
		{"not json", "bids.i1", `{"type":`, false},
		{"float amount", "bids.i1", `{"type":"bid","event_id":"e","item_id":"i1","bid_id":"b","user_id":"u","amount":1.005,"seq":1,"timestamp":"2024-01-01T00:00:00Z"}`, false},
		{"no event id", "bids.i1", `{"type":"bid","item_id":"i1","bid_id":"b","user_id":"u","amount":1,"seq":1,"timestamp":"2024-01-01T00:00:00Z"}`, false},
		{"wrong subject", "bids.i2", good, false},
		{"no seq", "bids.i1", `{"type":"bid","event_id":"e","item_id":"i1","bid_id":"b","user_id":"u","amount":1,"timestamp":"2024-01-01T00:00:00Z"}`, false},
		{"zero amount", "bids.i1", `{"type":"bid","event_id":"e","item_id":"i1","bid_id":"b","user_id":"u","amount":0,"seq":1,"timestamp":"2024-01-01T00:00:00Z"}`, false},
		{"unknown type", "bids.i1", `{"type":"refund","event_id":"e","item_id":"i1","seq":1}`, false},
		{"no bidder", "bids.i1", `{"type":"bid","event_id":"e","item_id":"i1","bid_id":"b","amount":1,"seq":1,"timestamp":"2024-01-01T00:00:00Z"}`, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := consumer.Decode(tc.subject, []byte(tc.data))
			if got := err == nil; got != tc.ok {
				t.Errorf("Decode(%s, %s) err = %v, want ok=%v", tc.subject, tc.data, err, tc.ok)
			}
		})
	}
}
