package app

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bidding-platform/shared/config"
	"github.com/bidding-platform/shared/schema"
	"github.com/bidding-platform/shared/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// archiveDB is a migrated database of its own, and a connection for
// writing rows the way the archival worker would.
func archiveDB(t *testing.T) (string, *pgx.Conn) {
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
	return url, conn
}

// Bid history pages through the archive newest first; bad limits and
// cursors are 400s; without PostgreSQL it is a clear 503 while bids work.
func TestBidHistory(t *testing.T) {
	t.Parallel()
	url, conn := archiveDB(t)
	ctx := context.Background()
	for seq := 1; seq <= 5; seq++ {
		_, err := conn.Exec(ctx, `INSERT INTO bids
			(event_id, bid_id, item_id, user_id, amount_cents, previous_cents, seq, bid_time)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
			fmt.Sprintf("evt_%d", seq), fmt.Sprintf("bid_%d", seq), "lot", "user_1", int64(seq*1000), int64((seq-1)*1000), seq, time.Unix(1700000000+int64(seq), 0))
		if err != nil {
			t.Fatal(err)
		}
	}
	e := newEnv(t, func(c *Config) { c.PostgresURL = config.Secret(url) })
	g := e.gw

	first := do(t, "GET", g.url+"/api/v1/items/lot/bids?limit=2", "")
	if first.Status != 200 || !strings.Contains(string(first.Body), `"seq":5`) || !strings.Contains(string(first.Body), `"seq":4`) || first.str("next_cursor") == "" {
		t.Fatalf("first page = %d %s", first.Status, first.Body)
	}
	second := do(t, "GET", g.url+"/api/v1/items/lot/bids?limit=2&cursor="+first.str("next_cursor"), "")
	if second.Status != 200 || !strings.Contains(string(second.Body), `"seq":3`) || !strings.Contains(string(second.Body), `"amount":30.00`) {
		t.Errorf("second page = %d %s", second.Status, second.Body)
	}
	for _, q := range []string{"limit=0", "limit=501", "limit=x", "cursor=bogus"} {
		if a := do(t, "GET", g.url+"/api/v1/items/lot/bids?"+q, ""); a.Status != 400 {
			t.Errorf("?%s = %d %s, want 400", q, a.Status, a.Body)
		}
	}

	// A gateway whose PostgreSQL is unreachable starts, bids, and says so.
	down := startGateway(t, func() Config {
		c := g.cfg
		c.PostgresURL = "postgres://nobody@127.0.0.1:1/none?sslmode=disable"
		return c
	}())
	a := do(t, "GET", down.url+"/api/v1/items/lot/bids", "")
	if a.Status != 503 || !strings.Contains(a.str("message"), "PostgreSQL") {
		t.Errorf("history without PostgreSQL = %d %s, want 503 naming PostgreSQL", a.Status, a.Body)
	}
	if r := do(t, "GET", down.url+"/ready", ""); r.Status != 200 || !strings.Contains(string(r.Body), `"postgres":"degraded`) {
		t.Errorf("/ready without PostgreSQL = %d %s, want 200 with postgres degraded", r.Status, r.Body)
	}
	down.createItem(t, "fresh", "1.00", "1.00")
	if b := down.bid(t, "fresh", "alice", "2.00"); b.Status != 200 {
		t.Errorf("bid without PostgreSQL = %d %s", b.Status, b.Body)
	}
}

// TestLongClosedItemFromTheArchive: an item that closed long ago has left
// Redis (CLOSED_ITEM_RETENTION) and is answered from the archive, as the
// archival worker stored it from its auction_closed event: GET shows it
// closed, a bid on it is refused as on a closed auction, its id cannot be
// taken again, and auto-create does not revive it.
func TestLongClosedItemFromTheArchive(t *testing.T) {
	t.Parallel()
	url, conn := archiveDB(t)
	ctx := context.Background()
	_, err := conn.Exec(ctx, `INSERT INTO items
		(item_id, seq, status, current_cents, highest_bidder_id, bid_count, ends_at, winner_id, closed_at,
		 name, starting_cents, min_increment_cents, reserve_cents, starts_at)
		VALUES ('old_lot', 3, 'closed', 2500, 'user_2', 2, $1, 'user_2', $1, 'Brass Telescope', 1000, 500, 0, $2)`,
		time.Date(2026, 10, 2, 9, 0, 0, 0, time.UTC), time.Date(2026, 10, 1, 9, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	g := newEnv(t, func(c *Config) { c.PostgresURL, c.AutoCreate = config.Secret(url), true }).gw

	it := do(t, "GET", g.url+"/api/v1/items/old_lot", "")
	if it.Status != 200 || it.str("status") != "closed" || it.str("name") != "Brass Telescope" ||
		!strings.Contains(string(it.Body), `"current_bid":25.00`) || it.str("highest_bidder_id") != "user_2" {
		t.Errorf("GET of an archived item = %d %s, want it closed as archived", it.Status, it.Body)
	}
	bid := do(t, "POST", g.url+"/api/v1/items/old_lot/bid", `{"user_id":"user_9","amount":100.00}`)
	if bid.Status != 409 || !strings.Contains(bid.str("message"), "not active") {
		t.Errorf("bid on an archived item = %d %s, want 409 not active", bid.Status, bid.Body)
	}
	create := do(t, "POST", g.url+"/api/v1/items", `{"id":"old_lot","name":"Another","starting_price":1.00}`)
	if create.Status != 409 {
		t.Errorf("creating an archived id = %d %s, want 409", create.Status, create.Body)
	}
	if again := do(t, "GET", g.url+"/api/v1/items/old_lot", ""); again.str("status") != "closed" {
		t.Errorf("archived item after the attempts = %s, want still closed", again.Body)
	}
	if fresh := do(t, "GET", g.url+"/api/v1/items/new_lot", ""); fresh.Status != 200 || fresh.str("status") != "active" {
		t.Errorf("auto-created item = %d %s, want a new active item", fresh.Status, fresh.Body)
	}
}
