package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bidding-platform/api-gateway/internal/postgres"
	"github.com/bidding-platform/shared/models"
	"github.com/bidding-platform/shared/schema"
	"github.com/bidding-platform/shared/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// setup returns a store on a migrated database and a connection for
// inserting rows the way the archival worker would.
func setup(t *testing.T) (*postgres.Store, *pgx.Conn) {
	t.Helper()
	url := testenv.PostgresDB(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	if err := schema.Migrate(ctx, conn); err != nil {
		t.Fatal(err)
	}
	s, err := postgres.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s, conn
}

func insertBid(t *testing.T, conn *pgx.Conn, item string, seq int) {
	t.Helper()
	_, err := conn.Exec(context.Background(), `INSERT INTO bids
		(event_id, bid_id, item_id, user_id, amount_cents, previous_cents, seq, bid_time)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		fmt.Sprintf("evt_%s_%06d", item, seq), fmt.Sprintf("bid_%s_%06d", item, seq), item, "user_1",
		int64(10000+seq*101), int64(10000+(seq-1)*101), seq, time.Unix(1700000000+int64(seq), 0))
	if err != nil {
		t.Fatal(err)
	}
}

func TestPagesNeverSkipOrRepeatWhileBidsArrive(t *testing.T) {
	t.Parallel()
	s, conn := setup(t)
	ctx := context.Background()
	const initial = 230
	for seq := 1; seq <= initial; seq++ {
		insertBid(t, conn, "watch", seq)
		insertBid(t, conn, "other", seq)
	}
	seen := map[uint64]int{}
	var prev uint64
	cursor, next := "", initial+1
	for pages := 0; ; pages++ {
		if pages > 100 {
			t.Fatal("pagination does not end")
		}
		page, err := s.BidHistory(ctx, "watch", 17, cursor)
		if err != nil {
			t.Fatalf("page %d: %v", pages, err)
		}
		if page.ItemID != "watch" {
			t.Errorf("page item = %q, want watch", page.ItemID)
		}
		for _, b := range page.Bids {
			if b.ItemID != "watch" {
				t.Errorf("bid %s of item %s on watch's page", b.EventID, b.ItemID)
			}
			if prev != 0 && b.Seq >= prev {
				t.Errorf("seq %d after %d: not newest first", b.Seq, prev)
			}
			if want := models.Money(10000 + int64(b.Seq)*101); b.Amount != want {
				t.Errorf("bid seq %d amount %v, want %v", b.Seq, b.Amount, want)
			}
			prev = b.Seq
			seen[b.Seq]++
		}
		// New bids arrive between pages; they are newer than any cursor.
		for range 5 {
			insertBid(t, conn, "watch", next)
			next++
		}
		if page.NextCursor == "" {
			break
		}
		if len(page.Bids) != 17 {
			t.Errorf("a non-final page has %d bids, want 17", len(page.Bids))
		}
		cursor = page.NextCursor
	}
	for seq := uint64(1); seq <= initial; seq++ {
		if seen[seq] != 1 {
			t.Errorf("bid seq %d seen %d times, want once", seq, seen[seq])
		}
	}
	if len(seen) != initial {
		t.Errorf("saw %d bids, want the %d present when paging began", len(seen), initial)
	}
}

func TestLimitIsClamped(t *testing.T) {
	t.Parallel()
	s, conn := setup(t)
	for seq := 1; seq <= 520; seq++ {
		insertBid(t, conn, "big", seq)
	}
	for _, tc := range []struct{ limit, want int }{{0, 50}, {-3, 50}, {1, 1}, {500, 500}, {10000, 500}} {
		page, err := s.BidHistory(context.Background(), "big", tc.limit, "")
		if err != nil {
			t.Fatal(err)
		}
		if got := len(page.Bids); got != tc.want {
			t.Errorf("limit %d: got %d bids, want %d", tc.limit, got, tc.want)
		}
		if page.NextCursor == "" {
			t.Errorf("limit %d: no next cursor though more bids exist", tc.limit)
		}
	}
}

func TestEmptyHistoryAndLastPage(t *testing.T) {
	t.Parallel()
	s, conn := setup(t)
	page, err := s.BidHistory(context.Background(), "nobids", 10, "")
	if err != nil {
		t.Fatal(err)
	}
	if page.Bids == nil || len(page.Bids) != 0 || page.NextCursor != "" {
		t.Errorf("empty history = %+v, want no bids (non-nil) and no cursor", page)
	}
	for seq := 1; seq <= 10; seq++ {
		insertBid(t, conn, "ten", seq)
	}
	page, err = s.BidHistory(context.Background(), "ten", 10, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Bids) != 10 || page.NextCursor != "" {
		t.Errorf("exactly one full page: %d bids, cursor %q; want 10 and none", len(page.Bids), page.NextCursor)
	}
}

func TestForeignCursorsAreRejected(t *testing.T) {
	t.Parallel()
	s, conn := setup(t)
	for seq := 1; seq <= 5; seq++ {
		insertBid(t, conn, "a", seq)
	}
	page, err := s.BidHistory(context.Background(), "a", 2, "")
	if err != nil || page.NextCursor == "" {
		t.Fatalf("first page: %+v, %v", page, err)
	}
	for name, cursor := range map[string]string{
		"garbage":        "!!!not-base64",
		"plain base64":   "aGVsbG8",
		"other item":     page.NextCursor,
		"truncated":      page.NextCursor[:len(page.NextCursor)-3],
		"sql in cursor":  "JyBPUiAxPTE7LS0",
		"negative seq":   "aDEAYgAtMQBldnQ",
		"not our format": "djIAYgAxAGV2dA",
	} {
		item := "b"
		if name == "truncated" {
			item = "a"
		}
		_, err := s.BidHistory(context.Background(), item, 2, cursor)
		if !errors.Is(err, models.ErrBadCursor) {
			t.Errorf("%s cursor %q on item %s: err %v, want ErrBadCursor", name, cursor, item, err)
		}
	}
}

// With PostgreSQL unreachable, Open still succeeds and reads fail rather
// than hang: the gateway answers 503 and keeps bidding.
func TestDownOrHungPostgresFailsInsteadOfHanging(t *testing.T) {
	t.Parallel()
	pg := testenv.Postgres(t)
	url := pg.CreateDB(t)
	ctx := context.Background()
	s, err := postgres.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	pg.Pause() // a hung server: connections open, nothing answers
	if _, err := s.BidHistory(ctx, "x", 10, ""); err == nil {
		t.Error("history from a hung server: no error")
	}
	if err := s.Ping(ctx); err == nil {
		t.Error("ping of a hung server: no error")
	}
	pg.Resume()
	pg.Kill()
	if _, err := s.BidHistory(ctx, "x", 10, ""); err == nil || errors.Is(err, models.ErrBadCursor) {
		t.Errorf("history from a dead server: err %v, want a connection error", err)
	}

	down, err := postgres.Open(ctx, "postgres://nobody@127.0.0.1:1/none?sslmode=disable")
	if err != nil {
		t.Fatalf("open with the server down: %v", err)
	}
	down.Close()
}

func TestHistoryBeforeTheArchiveExistsIsEmpty(t *testing.T) {
	t.Parallel()
	s, err := postgres.Open(context.Background(), testenv.PostgresDB(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	page, err := s.BidHistory(context.Background(), "item_1", 10, "")
	if err != nil {
		t.Fatalf("BidHistory on a database the worker has not migrated: %v, want an empty page", err)
	}
	if len(page.Bids) != 0 || page.NextCursor != "" || page.ItemID != "item_1" {
		t.Errorf("page = %+v, want item_1 with no bids and no cursor", page)
	}
}

// archivedFixture stores items as the archival worker does: one closed with
// its description, one cancelled with it, one still open and one closed by
// a gateway that sent no description. It returns their start and end.
func archivedFixture(t *testing.T, conn *pgx.Conn) (starts, ends time.Time) {
	t.Helper()
	starts, ends = time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC), time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	_, err := conn.Exec(context.Background(), `INSERT INTO items
		(item_id, seq, status, current_cents, highest_bidder_id, bid_count, ends_at, winner_id, closed_at,
		 name, starting_cents, min_increment_cents, reserve_cents, starts_at)
		VALUES ('sold', 4, 'closed', 2500, 'user_2', 3, $1, 'user_2', $1, 'Brass Telescope', 1000, 250, 2000, $2),
		       ('withdrawn', 1, 'cancelled', 0, '', 0, $1, NULL, $2, 'Oak Desk', 1000, 250, 0, $2),
		       ('open', 2, 'active', 1500, 'user_1', 1, $1, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
		       ('old', 3, 'closed', 900, 'user_1', 2, $1, 'user_1', $1, NULL, NULL, NULL, NULL, NULL)`, ends, starts)
	if err != nil {
		t.Fatal(err)
	}
	return starts, ends
}

// TestArchivedItem reads closed items as the archival worker stores them:
// one with its description is found whole; one still open, one closed by
// a gateway that sent no description, and an unknown id are not.
func TestArchivedItem(t *testing.T) {
	t.Parallel()
	s, conn := setup(t)
	ctx := context.Background()
	starts, ends := archivedFixture(t, conn)
	it, found, err := s.ArchivedItem(ctx, "sold")
	want := models.Item{ID: "sold", Name: "Brass Telescope", Status: models.StatusClosed, StartingPrice: 1000, MinIncrement: 250,
		ReservePrice: 2000, StartsAt: starts, EndsAt: ends, CurrentBid: 2500, HighestBidderID: "user_2", BidCount: 3, Seq: 4}
	if err != nil || !found || it != want {
		t.Errorf("ArchivedItem(sold) = %+v, %v, %v; want %+v", it, found, err, want)
	}
	for _, id := range []string{"open", "old", "unknown"} {
		if it, found, err := s.ArchivedItem(ctx, id); err != nil || found {
			t.Errorf("ArchivedItem(%s) = %+v, %v, %v; want not found", id, it, found, err)
		}
	}
}
