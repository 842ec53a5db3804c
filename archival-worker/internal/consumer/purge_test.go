package consumer_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/bidding-platform/archival-worker/internal/consumer"
	"github.com/bidding-platform/archival-worker/internal/database"
	"github.com/bidding-platform/shared/models"
	"github.com/bidding-platform/shared/stream"
	"github.com/bidding-platform/shared/testenv"
)

// subject returns the item's events as the stream holds them, in stream
// order, read the way viewers' catch-up reads them: direct gets of the
// next message on the subject.
func (a *archive) subject(t *testing.T, item string) []models.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := a.js.Stream(ctx, stream.Name)
	if err != nil {
		t.Fatal(err)
	}
	var out []models.Event
	for seq := uint64(1); ; {
		m, err := s.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(stream.Subject(item)))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		e, err := stream.Decode(m.Subject, m.Data)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
		seq = m.Sequence + 1
	}
}

func ids(evs []models.Event) string {
	s := make([]string, len(evs))
	for i, e := range evs {
		s[i] = e.EventID
	}
	return strings.Join(s, ",")
}

func closeAt(item string, seq int, at time.Time) models.Event {
	return models.Event{
		Type: models.EventAuctionClosed, EventID: fmt.Sprintf("evt_%s_close", item), ItemID: item,
		Amount: models.Money(900 + 100*seq), Seq: uint64(seq), WinnerID: "user_1", Timestamp: at, BidCount: int64(seq - 1),
		Name: "Lot " + item, StartingPrice: 500, MinIncrement: 100,
	}
}

// gated holds every write until open is closed, like a worker whose batch
// is still on its way to PostgreSQL.
type gated struct {
	consumer.Store
	open chan struct{}
}

func (g *gated) Write(ctx context.Context, events []models.Event, dead []database.DeadLetter) (database.Result, error) {
	select {
	case <-g.open:
	case <-ctx.Done():
		return database.Result{}, ctx.Err()
	}
	return g.Store.Write(ctx, events, dead)
}

// A closed item's subject is purged down to its auction_closed event once
// the close and everything before it are archived and the retention delay
// has passed; never earlier, and never an open item's. Viewers and the
// gateway's restore then read the close as the item's last event.
func TestPurgeKeepsOnlyTheCloseOfArchivedClosedItems(t *testing.T) {
	t.Parallel()
	a := newArchive(t)
	ctx := context.Background()
	old := time.Now().UTC().Add(-time.Hour)
	closed := []models.Event{bidAt("closed", 1, old), bidAt("closed", 2, old), bidAt("closed", 3, old), closeAt("closed", 4, old)}
	open := []models.Event{bidAt("open", 1, old), bidAt("open", 2, old)}
	recent := []models.Event{bidAt("recent", 1, time.Now().UTC()), closeAt("recent", 2, time.Now().UTC())}
	// A republished bid stored after the close: the purge keeps what
	// follows the close, and the close itself.
	late := []models.Event{bidAt("late", 1, old), closeAt("late", 3, old), bidAt("late", 2, old)}
	for _, evs := range [][]models.Event{closed, open, recent, late} {
		a.publish(t, evs...)
	}
	p := consumer.NewPurger(consumer.PurgeConfig{After: time.Minute}, a.js, a.store, a.log, a.m)

	if n, err := p.Pass(ctx); n != 0 || err != nil {
		t.Fatalf("pass before anything is archived = %d, %v; want 0, nil", n, err)
	}
	// Another worker committed the closes, but the batches before them
	// are not acknowledged yet: the ack floor holds the purge back.
	if _, err := a.store.Write(ctx, []models.Event{closed[3], late[1]}, nil); err != nil {
		t.Fatal(err)
	}
	g := &gated{Store: a.store, open: make(chan struct{})}
	a.run(t, g)
	testenv.WaitFor(t, 30*time.Second, "durable consumer", func() error {
		_, err := a.js.Consumer(ctx, stream.Name, consumer.Durable)
		return err
	})
	if n, err := p.Pass(ctx); n != 0 || err != nil {
		t.Fatalf("pass while the close is above the ack floor = %d, %v; want 0, nil", n, err)
	}
	if got := ids(a.subject(t, "closed")); got != ids(closed) {
		t.Fatalf("closed item's subject before its history is archived = %s, want it whole: %s", got, ids(closed))
	}

	close(g.open)
	testenv.WaitFor(t, time.Minute, "archive drained", a.drained)
	if n, err := p.Pass(ctx); n != 2 || err != nil {
		t.Fatalf("pass after archiving = %d, %v; want 2 (closed and late), nil", n, err)
	}
	want := map[string][]models.Event{
		"closed": closed[3:],
		"open":   open,
		"recent": recent, // closed, but less than a minute ago
		"late":   late[1:],
	}
	for item, evs := range want {
		if got := ids(a.subject(t, item)); got != ids(evs) {
			t.Errorf("subject of %s after the purge = %s, want %s", item, got, ids(evs))
		}
	}
	s, err := a.js.Stream(ctx, stream.Name)
	if err != nil {
		t.Fatal(err)
	}
	last, err := s.GetLastMsgForSubject(ctx, stream.Subject("closed"))
	if err != nil {
		t.Fatal(err)
	}
	if e, err := stream.Decode(last.Subject, last.Data); err != nil || e.EventID != closed[3].EventID || e.Name != "Lot closed" {
		t.Errorf("last event of the purged item = %+v (%v), want its auction_closed with the item's description", e, err)
	}

	// Purged items are done; a repeated pass changes nothing.
	if n, err := p.Pass(ctx); n != 0 || err != nil {
		t.Errorf("second pass = %d, %v; want 0, nil", n, err)
	}
	if got := ids(a.subject(t, "closed")); got != ids(closed[3:]) {
		t.Errorf("subject of closed after a second pass = %s", got)
	}
	if got := counter(t, a.reg, "archival_stream_purges_total", "purged"); got != 2 {
		t.Errorf("archival_stream_purges_total{result=purged} = %v, want 2", got)
	}
	var purged []string
	a.query(t, "SELECT item_id FROM items WHERE stream_purged_at IS NOT NULL ORDER BY item_id", func(rows pgx.Rows) error {
		var err error
		purged, err = pgx.CollectRows(rows, pgx.RowTo[string])
		return err
	})
	if got := strings.Join(purged, ","); got != "closed,late" {
		t.Errorf("items marked purged = %s, want closed,late", got)
	}
}

// A purger whose retention is 0 never purges.
func TestPurgeAfterZeroNeverPurges(t *testing.T) {
	t.Parallel()
	a := newArchive(t)
	old := time.Now().UTC().Add(-time.Hour)
	evs := []models.Event{bidAt("lot", 1, old), closeAt("lot", 2, old)}
	a.publish(t, evs...)
	a.run(t, a.store)
	testenv.WaitFor(t, time.Minute, "archive drained", a.drained)
	p := consumer.NewPurger(consumer.PurgeConfig{Every: time.Millisecond}, a.js, a.store, a.log, a.m)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Run(ctx); err != nil || ctx.Err() != nil {
		t.Fatalf("Run with After 0 = %v (ctx %v), want an immediate nil", err, ctx.Err())
	}
	if got := ids(a.subject(t, "lot")); got != ids(evs) {
		t.Errorf("subject after a purger with After 0 = %s, want %s", got, ids(evs))
	}
}
