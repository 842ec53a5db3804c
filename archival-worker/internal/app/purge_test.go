package app_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/bidding-platform/archival-worker/internal/app"
	"github.com/bidding-platform/shared/config"
	"github.com/bidding-platform/shared/models"
	"github.com/bidding-platform/shared/natsconn"
	"github.com/bidding-platform/shared/stream"
	"github.com/bidding-platform/shared/testenv"
)

// With ARCHIVE_PURGE_AFTER set, the running worker purges a closed item's
// subject down to its auction_closed event once it archived the item, and
// leaves an open item's history whole.
func TestWorkerPurgesClosedItemsItArchived(t *testing.T) {
	t.Parallel()
	checkPurges(t, testenv.NATS(t), natsconn.Auth{})
}

// TestWorkerAsItsNATSUser: the worker does all of it (waits for the stream
// the gateway creates, creates its consumer, pulls, acknowledges, purges)
// as its own user of the NATS users the deployments ship, which may do no
// more.
func TestWorkerAsItsNATSUser(t *testing.T) {
	t.Parallel()
	ns, passwords := testenv.NATSWithShippedUsers(t)
	checkPurges(t, ns, natsconn.Auth{User: "archiver", Password: config.Secret(passwords["archiver"])})
}

// checkPurges runs the worker as auth, then has the gateway (ns's own
// identity) create the stream and publish two items' events, one of them
// closed, and checks what is archived and what is purged.
func checkPurges(t *testing.T, ns *testenv.NATSServer, auth natsconn.Auth) {
	t.Helper()
	pgURL := testenv.PostgresDB(t)
	js := ns.JetStream()
	w := startWorkerWith(t, ns.URL(), pgURL, func(c *app.Config) { c.PurgeAfter, c.NATSAuth = time.Second, auth })
	ensureStream(t, js)

	evs := history(2, 5) // item_000 and item_001, seq 1..5
	var closing models.Event
	for _, e := range evs {
		if e.ItemID == "item_000" && e.Seq == 5 {
			closing = models.Event{Type: models.EventAuctionClosed, EventID: models.NewEventID(), ItemID: e.ItemID,
				Amount: e.Amount, Seq: 6, WinnerID: e.UserID, Timestamp: e.Timestamp, BidCount: 5}
		}
	}
	publish(t, js, append(evs, closing))

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := js.Stream(ctx, stream.Name)
	if err != nil {
		t.Fatal(err)
	}
	count := func(item string) (uint64, error) {
		info, err := s.Info(ctx, jetstream.WithSubjectFilter(stream.Subject(item)))
		if err != nil {
			return 0, err
		}
		return info.State.Subjects[stream.Subject(item)], nil
	}
	testenv.WaitFor(t, time.Minute, "closed item purged down to its close", func() error {
		n, err := count("item_000")
		if err == nil && n != 1 {
			err = fmt.Errorf("%d messages on item_000", n)
		}
		return err
	})
	last, err := s.GetLastMsgForSubject(ctx, stream.Subject("item_000"))
	if err != nil {
		t.Fatal(err)
	}
	if e, err := stream.Decode(last.Subject, last.Data); err != nil || e.EventID != closing.EventID {
		t.Errorf("item_000 keeps %+v (%v), want its auction_closed %s", e, err, closing.EventID)
	}
	if n, err := count("item_001"); err != nil || n != 5 {
		t.Errorf("open item_001 has %d messages (%v), want all 5", n, err)
	}
	if n, err := countBids(t, pgURL); err != nil || n != len(evs) {
		t.Errorf("archived bids = %d (%v), want %d: a purge removes nothing unarchived", n, err, len(evs))
	}
	_, body, err := get(w.addr, "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	if want := `archival_stream_purges_total{result="purged"} 1`; !strings.Contains(body, want+"\n") {
		t.Errorf("/metrics lacks %q", want)
	}
}
