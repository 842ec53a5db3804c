package models_test

import (
	"errors"
	"testing"

	"github.com/bidding-platform/shared/models"
	"github.com/bidding-platform/shared/stream"
)

func TestDecodeEvent(t *testing.T) {
	t.Parallel()
	const good = `{"type":"bid","event_id":"evt_1","item_id":"i1","bid_id":"bid_1","user_id":"u1","amount":200.50,"previous_bid":0,"timestamp":"2024-01-01T00:00:00Z","seq":1}`
	tests := []struct {
		name, subject, data string
		want                error // nil: valid
	}{
		{"bid", "bids.i1", good, nil},
		{"unknown fields are kept compatible", "bids.i1", `{"type":"bid","event_id":"evt_1","item_id":"i1","bid_id":"b","user_id":"u1","amount":2,"previous_bid":1,"timestamp":"2024-01-01T00:00:00Z","seq":3,"added_later":true}`, nil},
		{"an automatic bid ties the bid it answers", "bids.i1", `{"type":"bid","event_id":"e","item_id":"i1","bid_id":"b","user_id":"u","amount":5,"previous_bid":5,"auto":true,"seq":2,"timestamp":"2024-01-01T00:00:00Z"}`, nil},
		{"an automatic bid below the bid it answers", "bids.i1", `{"type":"bid","event_id":"e","item_id":"i1","bid_id":"b","user_id":"u","amount":4,"previous_bid":5,"auto":true,"seq":2,"timestamp":"2024-01-01T00:00:00Z"}`, models.ErrInvalidEvent},
		{"close", "bids.i1", `{"type":"auction_closed","event_id":"evt_2","item_id":"i1","amount":200.50,"seq":2,"winner_id":"u1","timestamp":"2024-01-01T00:00:00Z"}`, nil},
		{"close without winner", "bids.i1", `{"type":"auction_closed","event_id":"evt_2","item_id":"i1","amount":0,"seq":1}`, nil},
		{"not json", "bids.i1", `{"type":`, models.ErrInvalidEvent},
		{"float amount", "bids.i1", `{"type":"bid","event_id":"e","item_id":"i1","bid_id":"b","user_id":"u","amount":1.005,"seq":1,"timestamp":"2024-01-01T00:00:00Z"}`, models.ErrInvalidEvent},
		{"no event id", "bids.i1", `{"type":"bid","item_id":"i1","bid_id":"b","user_id":"u","amount":1,"seq":1,"timestamp":"2024-01-01T00:00:00Z"}`, models.ErrInvalidEvent},
		{"wrong subject", "bids.i2", good, models.ErrInvalidEvent},
		{"no seq", "bids.i1", `{"type":"bid","event_id":"e","item_id":"i1","bid_id":"b","user_id":"u","amount":1,"timestamp":"2024-01-01T00:00:00Z"}`, models.ErrInvalidEvent},
		{"zero amount", "bids.i1", `{"type":"bid","event_id":"e","item_id":"i1","bid_id":"b","user_id":"u","amount":0,"seq":1,"timestamp":"2024-01-01T00:00:00Z"}`, models.ErrInvalidEvent},
		{"amount not above previous", "bids.i1", `{"type":"bid","event_id":"e","item_id":"i1","bid_id":"b","user_id":"u","amount":5,"previous_bid":5,"seq":1,"timestamp":"2024-01-01T00:00:00Z"}`, models.ErrInvalidEvent},
		{"unknown type", "bids.i1", `{"type":"refund","event_id":"e","item_id":"i1","seq":1}`, models.ErrUnknownEventType},
		{"no type", "bids.i1", `{"event_id":"e","item_id":"i1","seq":1}`, models.ErrInvalidEvent},
		{"no bidder", "bids.i1", `{"type":"bid","event_id":"e","item_id":"i1","bid_id":"b","amount":1,"seq":1,"timestamp":"2024-01-01T00:00:00Z"}`, models.ErrInvalidEvent},
		{"bidder not an id", "bids.i1", `{"type":"bid","event_id":"e","item_id":"i1","bid_id":"b","user_id":"a.b","amount":1,"seq":1,"timestamp":"2024-01-01T00:00:00Z"}`, models.ErrInvalidEvent},
		{"previous bidder named", "bids.i1", `{"type":"bid","event_id":"e","item_id":"i1","bid_id":"b","user_id":"u","amount":6,"previous_bid":5,"previous_bidder_id":"v","auto_answered":true,"seq":2,"timestamp":"2024-01-01T00:00:00Z"}`, nil},
		{"previous bidder not an id", "bids.i1", `{"type":"bid","event_id":"e","item_id":"i1","bid_id":"b","user_id":"u","amount":6,"previous_bid":5,"previous_bidder_id":"v w","seq":2,"timestamp":"2024-01-01T00:00:00Z"}`, models.ErrInvalidEvent},
		{"an automatic bid answered", "bids.i1", `{"type":"bid","event_id":"e","item_id":"i1","bid_id":"b","user_id":"u","amount":6,"previous_bid":5,"auto":true,"auto_answered":true,"seq":2,"timestamp":"2024-01-01T00:00:00Z"}`, models.ErrInvalidEvent},
		{"item not an id", "bids.*", `{"type":"auction_closed","event_id":"e","item_id":"*","seq":1}`, models.ErrInvalidEvent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := stream.Decode(tc.subject, []byte(tc.data))
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("Decode(%s, %s) = %v, want %v", tc.subject, tc.data, err, tc.want)
			}
			if err != nil && !errors.Is(err, models.ErrInvalidEvent) {
				t.Errorf("Decode(%s, %s) = %v, which does not match ErrInvalidEvent", tc.subject, tc.data, err)
			}
		})
	}
}

func TestErrorKind(t *testing.T) {
	t.Parallel()
	cause := errors.New("dial tcp: refused")
	tests := []struct {
		err     error
		kind    models.Kind
		message string
		cause   error // what errors.Is must still find through the domain error
	}{
		{models.Errorf(models.KindInvalid, "amount: %w", models.ErrMoneyPrecision), models.KindInvalid, "amount: " + models.ErrMoneyPrecision.Error(), models.ErrMoneyPrecision},
		{models.Wrap(models.KindUnavailable, "redis unreachable", cause), models.KindUnavailable, "redis unreachable", cause},
		{models.Wrap(models.KindInternal, "script failed", cause), models.KindInternal, "internal error", cause},
		{cause, models.KindInternal, "internal error", cause},
	}
	for _, tc := range tests {
		if got := models.ErrorKind(tc.err); got != tc.kind {
			t.Errorf("ErrorKind(%v) = %q, want %q", tc.err, got, tc.kind)
		}
		if got := models.ErrorMessage(tc.err); got != tc.message {
			t.Errorf("ErrorMessage(%v) = %q, want %q", tc.err, got, tc.message)
		}
		if !errors.Is(tc.err, tc.cause) {
			t.Errorf("%v lost its cause %v", tc.err, tc.cause)
		}
	}
	if got := models.ErrorKind(nil); got != "" {
		t.Errorf("ErrorKind(nil) = %q, want empty", got)
	}
}
