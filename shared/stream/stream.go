// Package stream defines the JetStream stream that carries every item's
// events, so the gateway (which publishes), the broadcast service (which
// replays for catch-up) and the archival worker (which consumes) agree on it.
package stream

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/bidding-platform/shared/models"
)

const (
	// Name is the JetStream stream holding all item events.
	Name = "BIDS"
	// SubjectPrefix starts every item subject: bids.<item_id>.
	SubjectPrefix = "bids."
	// Subjects is the stream's subject filter.
	Subjects = SubjectPrefix + "*"
	// DuplicateWindow is how long JetStream remembers a Nats-Msg-Id. The
	// outbox relay republishes unacknowledged events within seconds, so ten
	// minutes covers a publish whose acknowledgement was lost many times over.
	DuplicateWindow = 10 * time.Minute
)

// Subject is the subject of one item's events. Item ids are validated
// against models.IDPattern, so they are always a single subject token.
func Subject(itemID string) string { return SubjectPrefix + itemID }

// ItemID is the inverse of Subject.
func ItemID(subject string) string {
	if len(subject) > len(SubjectPrefix) && subject[:len(SubjectPrefix)] == SubjectPrefix {
		return subject[len(SubjectPrefix):]
	}
	return ""
}

// Config is the stream's configuration. History is kept by limits, not as a
// work queue, so the archiver's durable consumer and viewers' catch-up read
// the same messages.
func Config() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:              Name,
		Description:       "Every accepted bid and auction event, one subject per item",
		Subjects:          []string{Subjects},
		Retention:         jetstream.LimitsPolicy,
		Storage:           jetstream.FileStorage,
		MaxAge:            7 * 24 * time.Hour,
		MaxBytes:          8 << 30,
		MaxMsgsPerSubject: 1_000_000,
		Discard:           jetstream.DiscardOld,
		Duplicates:        DuplicateWindow,
		AllowDirect:       true,
	}
}

// Ensure creates the stream, or updates it to Config, and returns it. Every
// service calls it at startup so that a stream lost with NATS's storage is
// recreated by whichever service reconnects first.
func Ensure(ctx context.Context, js jetstream.JetStream) (jetstream.Stream, error) {
	s, err := js.CreateOrUpdateStream(ctx, Config())
	if err != nil {
		return nil, fmt.Errorf("ensure stream %s: %w", Name, err)
	}
	return s, nil
}

// Decode is models.DecodeEvent for a message received on subject: the
// event must belong to the item the subject names.
func Decode(subject string, data []byte) (models.Event, error) {
	e, err := models.DecodeEvent(data)
	if err != nil {
		return e, err
	}
	if ItemID(subject) != e.ItemID {
		return models.Event{}, &models.EventError{EventID: e.EventID,
			Problem: fmt.Sprintf("event for item %q published on subject %q", e.ItemID, subject)}
	}
	return e, nil
}
