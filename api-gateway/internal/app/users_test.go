package app

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	goredis "github.com/redis/go-redis/v9"

	"github.com/bidding-platform/shared/config"
	"github.com/bidding-platform/shared/schema"
	"github.com/bidding-platform/shared/testenv"
)

// archiveBid stores a bid as the archival worker would.
func archiveBid(t *testing.T, conn *pgx.Conn, event, item, user string, cents int64, seq int, at time.Time) {
	t.Helper()
	_, err := conn.Exec(context.Background(), `INSERT INTO bids
		(event_id, bid_id, item_id, user_id, amount_cents, previous_cents, seq, bid_time)
		VALUES ($1, $2, $3, $4, $5, 0, $6, $7)`, event, "bid_"+event, item, user, cents, seq, at)
	if err != nil {
		t.Fatal(err)
	}
}

// list pages through url (which has a query) limit by limit and returns
// the values of field of every entry under key, failing on a repeat.
func list(t *testing.T, url, key, field string, headers ...string) []string {
	t.Helper()
	var out []string
	cursor := ""
	for range 20 {
		a := do(t, "GET", url+"&cursor="+cursor, "", headers...)
		if a.Status != http.StatusOK {
			t.Fatalf("GET %s&cursor=%s = %d %s", url, cursor, a.Status, a.Body)
		}
		entries, _ := a.JSON[key].([]any)
		for _, e := range entries {
			v := fmt.Sprint(e.(map[string]any)[field])
			if slices.Contains(out, v) {
				t.Fatalf("%s listed twice in %s", v, url)
			}
			out = append(out, v)
		}
		if cursor = a.str("next_cursor"); cursor == "" {
			return out
		}
	}
	t.Fatalf("%s: more than 20 pages", url)
	return nil
}

func TestUserBidsAndItems(t *testing.T) {
	t.Parallel()
	url, conn := archiveDB(t)
	ctx := context.Background()
	g := newEnv(t, func(c *Config) { c.PostgresURL, c.AutoCreate = config.Secret(url), false; withAuth(c) }).gw
	alice := g.as(t, "alice")

	for _, id := range []string{"lot_a", "lot_b", "lot_c"} {
		g.createItem(t, id, "1.00", "1.00")
	}
	for _, b := range []struct{ item, user, amount string }{{"lot_a", "alice", "2.00"}, {"lot_a", "bob", "3.00"}, {"lot_b", "alice", "2.00"}} {
		if a := g.bid(t, b.item, b.user, b.amount); a.Status != 200 {
			t.Fatalf("bid %+v = %d %s", b, a.Status, a.Body)
		}
	}
	t0 := time.Now().Add(-time.Hour).Truncate(time.Microsecond)
	archiveBid(t, conn, "e1", "lot_a", "alice", 200, 1, t0.Add(1*time.Second))
	archiveBid(t, conn, "e2", "lot_a", "bob", 300, 2, t0.Add(2*time.Second))
	archiveBid(t, conn, "e3", "lot_b", "alice", 200, 1, t0.Add(3*time.Second))
	// A lot alice won long ago, and one seller_1 sold, both only in the
	// archive.
	archiveBid(t, conn, "e0", "old_won", "alice", 4500, 1, t0.Add(-time.Minute))
	for _, row := range []struct{ id, winner, seller string }{{"old_won", "alice", "other"}, {"old_sold", "carol", testSeller}} {
		_, err := conn.Exec(ctx, `INSERT INTO items (item_id, seq, status, current_cents, highest_bidder_id, bid_count, ends_at, winner_id,
				closed_at, name, starting_cents, min_increment_cents, reserve_cents, starts_at, seller_id)
			VALUES ($1, 2, 'closed', 4500, $2, 1, $3, $2, $3, 'Old ' || $1, 100, 100, 0, $4, $5)`,
			row.id, row.winner, t0.Add(-30*time.Minute), t0.Add(-2*time.Hour), row.seller)
		if err != nil {
			t.Fatal(err)
		}
	}

	t.Run("bids", func(t *testing.T) {
		a := do(t, "GET", g.url+"/api/v1/users/alice/bids", "", alice...)
		if a.Status != 200 {
			t.Fatalf("bids = %d %s", a.Status, a.Body)
		}
		bids := a.JSON["bids"].([]any)
		var got []string
		for _, b := range bids {
			m := b.(map[string]any)
			got = append(got, fmt.Sprintf("%s %s %s %s leading=%v won=%v", m["event_id"], m["item_id"], m["item_name"], m["item_status"], m["leading"], m["won"]))
		}
		want := []string{
			"e3 lot_b Lot lot_b active leading=true won=false",
			"e1 lot_a Lot lot_a active leading=false won=false",
			"e0 old_won Old old_won closed leading=false won=true",
		}
		if !slices.Equal(got, want) {
			t.Errorf("alice's bids:\n got %q\nwant %q", got, want)
		}

		// A page boundary stays put while newer bids are archived.
		first := do(t, "GET", g.url+"/api/v1/users/alice/bids?limit=2", "", alice...)
		archiveBid(t, conn, "e4", "lot_c", "alice", 100, 1, time.Now())
		second := do(t, "GET", g.url+"/api/v1/users/alice/bids?limit=2&cursor="+first.str("next_cursor"), "", alice...)
		if first.Status != 200 || second.Status != 200 || !strings.Contains(string(second.Body), `"e0"`) ||
			strings.Contains(string(second.Body), `"e4"`) || second.str("next_cursor") != "" {
			t.Errorf("pages = %d %s / %d %s, want e0 alone on the last page", first.Status, first.Body, second.Status, second.Body)
		}
		if got := list(t, g.url+"/api/v1/users/alice/bids?limit=1", "bids", "event_id", alice...); !slices.Equal(got, []string{"e4", "e3", "e1", "e0"}) {
			t.Errorf("paging by one = %q", got)
		}
	})

	t.Run("items", func(t *testing.T) {
		a := do(t, "GET", g.url+"/api/v1/users/alice/items?role=bidding", "", alice...)
		if a.Status != 200 {
			t.Fatalf("bidding = %d %s", a.Status, a.Body)
		}
		items := a.JSON["items"].([]any)
		var got []string
		for _, it := range items {
			m := it.(map[string]any)
			got = append(got, fmt.Sprintf("%s %s leading=%v your_bid=%v", m["id"], m["status"], m["leading"], m["your_bid"]))
		}
		if want := []string{"lot_c active leading=false your_bid=1.00", "lot_b active leading=true your_bid=2.00", "lot_a active leading=false your_bid=2.00"}; !slices.Equal(got, want) {
			t.Errorf("bidding:\n got %q\nwant %q", got, want)
		}
		if got := list(t, g.url+"/api/v1/users/alice/items?role=bidding&limit=1", "items", "id", alice...); !slices.Equal(got, []string{"lot_c", "lot_b", "lot_a"}) {
			t.Errorf("bidding by one = %q", got)
		}
		won := do(t, "GET", g.url+"/api/v1/users/alice/items?role=won", "", alice...)
		if won.Status != 200 || !strings.Contains(string(won.Body), `"id":"old_won"`) || !strings.Contains(string(won.Body), `"your_bid":45.00`) ||
			strings.Contains(string(won.Body), "lot_") {
			t.Errorf("won = %d %s, want old_won alone with your_bid 45.00", won.Status, won.Body)
		}
		seller := g.as(t, testSeller, "seller")
		if got := list(t, g.url+"/api/v1/users/"+testSeller+"/items?role=selling&limit=2", "items", "id", seller...); !slices.Equal(got, []string{"lot_c", "lot_b", "lot_a", "old_sold"}) {
			t.Errorf("selling = %q, want the live lots newest first, then the archived one", got)
		}
		sold := do(t, "GET", g.url+"/api/v1/users/"+testSeller+"/items?role=selling", "", seller...)
		if strings.Contains(string(sold.Body), "your_bid") {
			t.Errorf("selling shows your_bid: %s", sold.Body)
		}
	})

	t.Run("auth and input", func(t *testing.T) {
		for _, c := range []struct {
			path    string
			headers []string
			status  int
		}{
			{"/api/v1/users/alice/bids", nil, 401},
			{"/api/v1/users/alice/items?role=won", nil, 401},
			{"/api/v1/users/alice/bids", g.as(t, "bob"), 403},
			{"/api/v1/users/alice/items?role=bidding", g.as(t, "bob", "seller"), 403},
			{"/api/v1/users/alice/bids", g.as(t, "root", "admin"), 200},
			{"/api/v1/users/alice/items?role=selling", g.as(t, "root", "admin"), 200},
			{"/api/v1/users/alice/items", alice, 400},
			{"/api/v1/users/alice/items?role=buying", alice, 400},
			{"/api/v1/users/alice/bids?limit=0", alice, 400},
			{"/api/v1/users/alice/bids?limit=101", alice, 400},
			{"/api/v1/users/alice/items?role=won&limit=x", alice, 400},
			{"/api/v1/users/alice/bids?cursor=bogus", alice, 400},
			{"/api/v1/users/a.b/bids", g.as(t, "root", "admin"), 400},
		} {
			if a := do(t, "GET", g.url+c.path, "", c.headers...); a.Status != c.status {
				t.Errorf("GET %s = %d %s, want %d", c.path, a.Status, a.Body, c.status)
			}
		}
		// A cursor of one list is not one of another's.
		first := do(t, "GET", g.url+"/api/v1/users/alice/bids?limit=1", "", alice...)
		if a := do(t, "GET", g.url+"/api/v1/users/alice/items?role=bidding&cursor="+first.str("next_cursor"), "", alice...); a.Status != 400 {
			t.Errorf("a bids cursor on the bidding list = %d %s, want 400", a.Status, a.Body)
		}
	})

	// Without PostgreSQL the lists are a clear 503; bidding goes on.
	down := startGateway(t, func() Config {
		c := g.cfg
		c.PostgresURL = "postgres://nobody@127.0.0.1:1/none?sslmode=disable"
		return c
	}())
	if a := do(t, "GET", down.url+"/api/v1/users/alice/bids", "", alice...); a.Status != 503 || !strings.Contains(a.str("message"), "PostgreSQL") {
		t.Errorf("bids without PostgreSQL = %d %s, want 503", a.Status, a.Body)
	}
	if a := down.bid(t, "lot_b", "bob", "5.00"); a.Status != 200 {
		t.Errorf("bid without PostgreSQL = %d %s", a.Status, a.Body)
	}
}

// With authentication disabled anyone reads anyone's lists.
func TestUserListsWithoutAuth(t *testing.T) {
	t.Parallel()
	url, conn := archiveDB(t)
	g := newEnv(t, func(c *Config) { c.PostgresURL = config.Secret(url) }).gw
	g.createItem(t, "lot", "1.00", "1.00")
	if a := g.bid(t, "lot", "dave", "2.00"); a.Status != 200 {
		t.Fatalf("bid = %d %s", a.Status, a.Body)
	}
	archiveBid(t, conn, "e1", "lot", "dave", 200, 1, time.Now())
	a := do(t, "GET", g.url+"/api/v1/users/dave/items?role=bidding", "")
	if a.Status != 200 || !strings.Contains(string(a.Body), `"leading":true`) || !strings.Contains(string(a.Body), `"id":"lot"`) {
		t.Errorf("bidding without auth = %d %s, want lot, leading", a.Status, a.Body)
	}
}

// redisState is each of keys serialized, "" for a key that does not exist.
func redisState(t *testing.T, r *goredis.Client, keys ...string) map[string]string {
	t.Helper()
	state := make(map[string]string, len(keys))
	for _, k := range keys {
		v, err := r.Dump(context.Background(), k).Result()
		if err != nil && !errors.Is(err, goredis.Nil) {
			t.Fatalf("dump %s: %v", k, err)
		}
		state[k] = v
	}
	return state
}

// A selling read that cannot reach PostgreSQL answers 503 and leaves Redis
// as it was: the seller's index keeps even an entry a successful read
// drops (its item gone from Redis long ago), and no item is written.
func TestSellingWithoutPostgreSQLChangesNothing(t *testing.T) {
	t.Parallel()
	pg := testenv.Postgres(t)
	url := pg.CreateDB(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	err = schema.Migrate(ctx, conn)
	conn.Close(ctx)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(c *Config) { c.PostgresURL, c.AutoCreate = config.Secret(url), false; withAuth(c) })
	g, r := e.gw, e.redis.Client()
	seller := g.as(t, testSeller, "seller")
	g.createItem(t, "lot_a", "1.00", "1.00")
	g.createItem(t, "lot_b", "1.00", "1.00")
	index := g.cfg.RedisKeyPrefix + "seller:" + testSeller + ":items"
	gone := goredis.Z{Score: float64(time.Now().Add(-time.Hour).UnixMilli()), Member: "lot_gone"}
	if err := r.ZAdd(ctx, index, gone).Err(); err != nil {
		t.Fatal(err)
	}
	// The outbox keys are left out: the relay deletes them once JetStream
	// has the events, whatever the read does.
	keys := []string{index}
	for _, id := range []string{"lot_a", "lot_b", "lot_gone"} {
		keys = append(keys, g.cfg.RedisKeyPrefix+"item:{"+id+"}")
	}
	before := redisState(t, r, keys...)
	if n, err := r.ZCard(ctx, index).Result(); err != nil || n != 3 {
		t.Fatalf("seller index %s holds %d entries (%v), want lot_a, lot_b and lot_gone", index, n, err)
	}

	pg.Stop()
	selling := g.url + "/api/v1/users/" + testSeller + "/items?role=selling"
	if a := do(t, "GET", selling, "", seller...); a.Status != 503 || !strings.Contains(a.str("message"), "PostgreSQL") {
		t.Errorf("selling without PostgreSQL = %d %s, want 503", a.Status, a.Body)
	}
	after := redisState(t, r, keys...)
	for _, k := range keys {
		if before[k] != after[k] {
			t.Errorf("%s changed by a read that answered 503 (existed before: %v, after: %v)", k, before[k] != "", after[k] != "")
		}
	}

	// With PostgreSQL back the same read lists the lots and drops the
	// entry, which is what the 503 must not have done.
	pg.Start()
	testenv.WaitFor(t, 10*time.Second, "selling with PostgreSQL back", func() error {
		if a := do(t, "GET", selling, "", seller...); a.Status != 200 || !strings.Contains(string(a.Body), `"id":"lot_b"`) {
			return fmt.Errorf("selling = %d %s", a.Status, a.Body)
		}
		return nil
	})
	if err := r.ZScore(ctx, index, "lot_gone").Err(); !errors.Is(err, goredis.Nil) {
		t.Errorf("lot_gone still indexed after a selling read that succeeded (ZSCORE err %v)", err)
	}
}

// Items Redis has let go are read from the archive in one query, not
// restored from the event log one by one: a user's lists write nothing
// into Redis for them, and answer with NATS down. An item neither Redis nor
// the archive holds as final, which only the log could answer for, is left
// out of the item lists and its bids are shown without the item.
func TestUserListsReadLetGoItemsFromTheArchive(t *testing.T) {
	t.Parallel()
	url, conn := archiveDB(t)
	ctx := context.Background()
	e := newEnv(t, func(c *Config) {
		c.PostgresURL, c.AutoCreate = config.Secret(url), false
		withAuth(c)
		// The closer's first tick sweeps every item the log records back
		// into Redis, which would race the deletion below.
		c.CloseEvery = time.Hour
	})
	g, r := e.gw, e.redis.Client()
	alice := g.as(t, "alice")
	g.createItem(t, "lot_live", "1.00", "1.00")
	g.createItem(t, "lot_gone", "1.00", "1.00")
	for _, id := range []string{"lot_live", "lot_gone"} {
		if a := g.bid(t, id, "alice", "2.00"); a.Status != 200 {
			t.Fatalf("bid on %s = %d %s", id, a.Status, a.Body)
		}
	}
	if a := do(t, "POST", g.url+"/api/v1/items/lot_gone/cancel", "", g.as(t, "root", "admin")...); a.Status != 200 {
		t.Fatalf("cancel lot_gone = %d %s", a.Status, a.Body)
	}
	// The log holds lot_gone whole, so checking it would restore it.
	waitEvents(t, e.nats.JetStream(), "lot_gone", 2)

	t0 := time.Now().Add(-time.Hour).Truncate(time.Microsecond)
	archiveBid(t, conn, "e1", "lot_gone", "alice", 200, 1, t0)
	archiveBid(t, conn, "e2", "lot_live", "alice", 200, 1, t0.Add(time.Second))
	archiveBid(t, conn, "e3", "lot_lost", "alice", 300, 1, t0.Add(2*time.Second))
	_, err := conn.Exec(ctx, `INSERT INTO items (item_id, seq, status, current_cents, highest_bidder_id, bid_count, ends_at,
			closed_at, name, starting_cents, min_increment_cents, reserve_cents, starts_at, seller_id)
		VALUES ('lot_gone', 2, 'cancelled', 200, 'alice', 1, $1, $2, 'Lot lot_gone', 100, 100, 0, $3, $4)`,
		t0.Add(24*time.Hour), t0.Add(time.Minute), t0.Add(-time.Minute), testSeller)
	if err != nil {
		t.Fatal(err)
	}
	// Redis lets it go, as CLOSED_ITEM_RETENTION after its end would.
	gone := g.cfg.RedisKeyPrefix + "item:{lot_gone}"
	if err := r.Del(ctx, gone).Err(); err != nil {
		t.Fatal(err)
	}

	check := func(when string) {
		t.Helper()
		a := do(t, "GET", g.url+"/api/v1/users/alice/bids", "", alice...)
		if a.Status != 200 {
			t.Fatalf("bids %s = %d %s, want 200", when, a.Status, a.Body)
		}
		var got []string
		for _, b := range a.JSON["bids"].([]any) {
			m := b.(map[string]any)
			got = append(got, fmt.Sprintf("%s %s %q %q leading=%v", m["event_id"], m["item_id"], m["item_name"], m["item_status"], m["leading"]))
		}
		want := []string{
			`e3 lot_lost "" "" leading=false`,
			`e2 lot_live "Lot lot_live" "active" leading=true`,
			`e1 lot_gone "Lot lot_gone" "cancelled" leading=false`,
		}
		if !slices.Equal(got, want) {
			t.Errorf("bids %s:\n got %q\nwant %q", when, got, want)
		}
		if got := list(t, g.url+"/api/v1/users/alice/items?role=bidding&limit=1", "items", "id", alice...); !slices.Equal(got, []string{"lot_live"}) {
			t.Errorf("bidding %s = %q, want lot_live alone", when, got)
		}
		if n, err := r.Exists(ctx, gone).Result(); err != nil || n != 0 {
			t.Errorf("%s: %s exists (%d, %v): a list restored the item the archive holds", when, gone, n, err)
		}
	}
	check("with NATS up")
	e.nats.Kill()
	check("with NATS down")
}

// A bidding page looks at no more than 10 archive rows per item asked for:
// behind a run of items the archive still holds as active but Redis has
// ended, it comes back short with a cursor, and the walk goes on from
// there without skipping or repeating anything.
func TestBiddingPageScansBoundedRows(t *testing.T) {
	t.Parallel()
	url, conn := archiveDB(t)
	g := newEnv(t, func(c *Config) { c.PostgresURL, c.AutoCreate = config.Secret(url), false; withAuth(c) }).gw
	alice, admin := g.as(t, "alice"), g.as(t, "root", "admin")
	t0 := time.Now().Add(-time.Hour).Truncate(time.Microsecond)
	g.createItem(t, "lot_open", "1.00", "1.00")
	archiveBid(t, conn, "e_open", "lot_open", "alice", 200, 1, t0)
	const ended = 15
	for i := range ended {
		id := fmt.Sprintf("lot_%02d", i)
		g.createItem(t, id, "1.00", "1.00")
		if a := do(t, "POST", g.url+"/api/v1/items/"+id+"/cancel", "", admin...); a.Status != 200 {
			t.Fatalf("cancel %s = %d %s", id, a.Status, a.Body)
		}
		// Newer than the open lot's bid, so the walk meets them first.
		archiveBid(t, conn, "e_"+id, id, "alice", 200, 1, t0.Add(time.Duration(i+1)*time.Second))
	}

	first := do(t, "GET", g.url+"/api/v1/users/alice/items?role=bidding&limit=1", "", alice...)
	if items, _ := first.JSON["items"].([]any); first.Status != 200 || len(items) != 0 || first.str("next_cursor") == "" {
		t.Errorf("first page = %d %s, want no items and a cursor: its 10 rows are all ended", first.Status, first.Body)
	}
	if got := list(t, g.url+"/api/v1/users/alice/items?role=bidding&limit=1", "items", "id", alice...); !slices.Equal(got, []string{"lot_open"}) {
		t.Errorf("bidding walked by one = %q, want lot_open", got)
	}
	if got := list(t, g.url+"/api/v1/users/alice/items?role=bidding&limit=20", "items", "id", alice...); !slices.Equal(got, []string{"lot_open"}) {
		t.Errorf("bidding by 20 = %q, want lot_open", got)
	}
}
