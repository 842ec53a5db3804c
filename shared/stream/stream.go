// Package stream defines the JetStream stream that carries every item's
// events, so the gateway (which publishes), the broadcast service (which
// replays for catch-up) and the archival worker (which consumes) agree on it.
package stream

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/bidding-platform/shared/config"
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
	// MaxReplicas is the most copies JetStream keeps of a stream.
	MaxReplicas = 5
	// LeaderMaxHeader carries, beside a bid event, the leader's maximum
	// bid (in cents) once the event happened, when it is above the price.
	// It is what an item restored from the stream needs and must never be
	// shown: consumers pass on an event's data, never its headers.
	LeaderMaxHeader = "Auction-Leader-Max"
)

// ReadReplicas reads a stream replica count from the environment into dst
// and checks it. Only odd counts are accepted: a raft group of n needs a
// majority, so 2 and 4 replicas survive no more node failures than 1 and 3
// while waiting for one more copy on every publish.
func ReadReplicas(e *config.Env, key string, dst *int) {
	e.Int(key, dst)
	e.Check(*dst >= 1 && *dst <= MaxReplicas && *dst%2 == 1,
		"%s=%d: want 1, 3 or 5 (the stream's copies on a cluster of at least that many NATS servers)", key, *dst)
}

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

// Config is the stream's configuration with the given number of replicas.
// History is kept by limits, not as a work queue, so the archiver's durable
// consumer and viewers' catch-up read the same messages. With 3 replicas a
// publish is acknowledged once a majority of the cluster has stored it, so
// an acknowledged event survives the loss of any one server.
//
// The stream never discards an event on its own, because it may not be
// archived yet: there is no age limit and no per-subject limit (each would
// delete an item's oldest events whether or not PostgreSQL has them), and
// at its message limit the discard policy is DiscardNew, so a full stream
// refuses new publishes instead of deleting history. The gateway then keeps
// the refused events in its Redis outbox, reports the stream as full
// (gateway_stream_full) and publishes them, in order, once there is room.
// Room is made by the archival worker: after it has archived an item's
// auction_closed event and everything before it, and ARCHIVE_PURGE_AFTER
// has passed, it purges the item's subject down to that event, which
// describes the item's outcome for viewers and for restoring the item.
// What stays is every open item's history and one event per closed item.
//
// The backstop is a message count, not bytes: nats-server 2.9 checks a new
// message against MaxBytes by its payload but stores it with its subject,
// headers and framing, so near the limit it accepts the message and then
// deletes the oldest one to get back under, DiscardNew or not. The count
// is checked exactly. Bytes stay bounded by it (events are a few hundred
// bytes; 16 million of them take about 6 GiB) and by the server's own
// storage limit, which refuses rather than deletes.
//
// Lowering MaxMsgs below what the stream holds makes JetStream delete the
// oldest events, and Ensure applies Config on every start: raise it, never
// lower it below the stream's size.
func Config(replicas int) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:              Name,
		Description:       "Every accepted bid and auction event, one subject per item",
		Subjects:          []string{Subjects},
		Retention:         jetstream.LimitsPolicy,
		Storage:           jetstream.FileStorage,
		MaxAge:            0, // kept until archived and purged
		MaxMsgs:           16_000_000,
		MaxBytes:          -1,
		MaxMsgsPerSubject: -1, // an item's events all stay until its close is archived
		Discard:           jetstream.DiscardNew,
		Duplicates:        DuplicateWindow,
		// No direct gets: any replica answers those, including one that
		// is behind, and around a leader change it said "not found" for
		// acknowledged events, which made viewers' catch-up skip them.
		// History reads go through the stream's leader instead.
		AllowDirect: false,
		Replicas:    replicas,
	}
}

// Ensure creates the stream, or updates it to Config(replicas), and returns
// it. The API gateway is the one service that calls it, at startup and after
// reconnecting, so that a stream lost with NATS's storage is recreated; the
// broadcast service and the archival worker only look the stream up, and
// their NATS users may not create or change it.
func Ensure(ctx context.Context, js jetstream.JetStream, replicas int) (jetstream.Stream, error) {
	s, err := js.CreateOrUpdateStream(ctx, Config(replicas))
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
