package schema_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/bidding-platform/shared/models"
	"github.com/bidding-platform/shared/schema"
	"github.com/bidding-platform/shared/testenv"
)

// migrateTo applies the migrations up to version by hand, recording them as
// Migrate does, so that a test can put old data in place before the rest.
func migrateTo(ctx context.Context, t *testing.T, conn *pgx.Conn, version int) {
	t.Helper()
	ms, err := schema.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `CREATE TABLE schema_migrations (
		version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if m.Version > version {
			break
		}
		if _, err := conn.Exec(ctx, m.SQL); err != nil {
			t.Fatalf("apply %d: %v", m.Version, err)
		}
		if _, err := conn.Exec(ctx, "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", m.Version, m.Name); err != nil {
			t.Fatal(err)
		}
	}
}

// An archive from before the (item_id, seq) constraint may hold two events
// with one item and seq. Migrating keeps the first archived, moves the other
// to dead_letters with a reason and a payload the event decoder accepts, and
// from then on such a pair is refused by the constraint.
func TestItemSeqConstraintMovesOldDuplicatesToDeadLetters(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, testenv.PostgresDB(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	migrateTo(ctx, t, conn, 2)

	t0 := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, r := range []struct {
		event, item string
		seq         int
		archived    time.Duration
	}{
		{"evt_first", "lot", 1, 0},
		{"evt_second", "lot", 1, time.Second}, // same seq, archived later
		{"evt_next", "lot", 2, 2 * time.Second},
		{"evt_other", "lot_b", 1, 0},
	} {
		if _, err := conn.Exec(ctx, `INSERT INTO bids (event_id, bid_id, item_id, user_id, amount_cents, previous_cents, seq, bid_time, archived_at)
			VALUES ($1, 'bid_'||$1, $2, 'user_1', 1000 * $3, 0, $3, $4, $5)`, r.event, r.item, r.seq, t0, t0.Add(r.archived)); err != nil {
			t.Fatal(err)
		}
	}
	if err := schema.Migrate(ctx, conn); err != nil {
		t.Fatalf("migrate over duplicates: %v", err)
	}

	rows, err := conn.Query(ctx, "SELECT event_id FROM bids ORDER BY event_id")
	if err != nil {
		t.Fatal(err)
	}
	kept, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(kept, ","), "evt_first,evt_next,evt_other"; got != want {
		t.Errorf("bids after migrating = %s, want %s", got, want)
	}
	var subject, reason string
	var payload []byte
	if err := conn.QueryRow(ctx, "SELECT subject, reason, payload FROM dead_letters").Scan(&subject, &reason, &payload); err != nil {
		t.Fatalf("the moved duplicate's dead letter: %v", err)
	}
	if subject != "bids.lot" || !strings.Contains(reason, "evt_first") || !strings.Contains(reason, "evt_second") || !strings.Contains(reason, "seq 1") {
		t.Errorf("dead letter on %s with reason %q, want bids.lot naming seq 1, the kept and the moved event", subject, reason)
	}
	e, err := models.DecodeEvent(payload)
	if err != nil {
		t.Fatalf("dead letter payload %s: %v", payload, err)
	}
	if e.EventID != "evt_second" || e.ItemID != "lot" || e.Seq != 1 || e.Amount != 1000 || !e.Timestamp.Equal(t0) {
		t.Errorf("dead letter payload = %+v, want evt_second of lot, seq 1, 10.00 at %v", e, t0)
	}

	// Migrating again changes nothing, and the constraint now refuses a new
	// pair while a repeat of an archived event is still skipped by its id.
	if err := schema.Migrate(ctx, conn); err != nil {
		t.Fatal(err)
	}
	tag, err := conn.Exec(ctx, `INSERT INTO bids (event_id, bid_id, item_id, user_id, amount_cents, previous_cents, seq, bid_time)
		VALUES ('evt_first', 'b', 'lot', 'u', 1000, 0, 1, now()) ON CONFLICT (event_id) DO NOTHING`)
	if err != nil || tag.RowsAffected() != 0 {
		t.Errorf("repeat of an archived event: %v rows, err %v; want skipped", tag.RowsAffected(), err)
	}
	_, err = conn.Exec(ctx, `INSERT INTO bids (event_id, bid_id, item_id, user_id, amount_cents, previous_cents, seq, bid_time)
		VALUES ('evt_third', 'b', 'lot', 'u', 3000, 0, 2, now()) ON CONFLICT (event_id) DO NOTHING`)
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "23505" || pe.ConstraintName != "bids_item_seq_key" {
		t.Errorf("a second event for lot seq 2: err %v, want a unique violation of bids_item_seq_key", err)
	}
}
