package app

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/bidding-platform/shared/config"
	"github.com/bidding-platform/shared/testenv"
)

type browsePage struct {
	Items []struct {
		ID         string      `json:"id"`
		Status     string      `json:"status"`
		EndsAt     time.Time   `json:"ends_at"`
		ReserveMet *bool       `json:"reserve_met"`
		CurrentBid json.Number `json:"current_bid"`
		Name       string      `json:"name"`
	} `json:"items"`
	NextCursor string `json:"next_cursor"`
}

func (g *gateway) browse(t testing.TB, query string) browsePage {
	t.Helper()
	a := do(t, "GET", g.url+"/api/v1/items?"+query, "")
	if a.Status != http.StatusOK {
		t.Fatalf("GET /api/v1/items?%s = %d %s", query, a.Status, a.Body)
	}
	var p browsePage
	if err := json.Unmarshal(a.Body, &p); err != nil {
		t.Fatalf("page %s: %v", a.Body, err)
	}
	return p
}

// createEnding creates an item that ends at ends (and starts at starts
// unless zero).
func (g *gateway) createEnding(t testing.TB, id string, starts, ends time.Time) {
	t.Helper()
	body := fmt.Sprintf(`{"id":%q,"name":"Lot %s","starting_price":1.00,"reserve_price":5.00,"ends_at":%q`, id, id, ends.Format(time.RFC3339))
	if !starts.IsZero() {
		body += fmt.Sprintf(`,"starts_at":%q`, starts.Format(time.RFC3339))
	}
	if a := do(t, "POST", g.url+"/api/v1/items", body+"}"); a.Status != http.StatusCreated {
		t.Fatalf("create %s = %d %s", id, a.Status, a.Body)
	}
}

// Live auctions page by their end as created, soonest first, filtered by
// status: bids that extend an auction (soft close) and auctions created
// between pages neither repeat nor skip one present from the start.
func TestBrowseLiveItems(t *testing.T) {
	t.Parallel()
	r := testenv.Redis(t)
	c := testenv.Cluster(t)
	for _, top := range []struct {
		name    string
		addrs   []string
		cluster bool
	}{{"single", []string{r.Addr()}, false}, {"cluster", c.Addrs(), true}} {
		t.Run(top.name, func(t *testing.T) {
			t.Parallel()
			// A log of its own: it records item ids for good.
			cfg := testConfig(top.addrs, top.cluster, testenv.NATS(t).URL())
			cfg.SoftClose = 3 * time.Hour
			g := startGateway(t, cfg)
			base := time.Now().Add(time.Hour).Truncate(time.Second)
			const live = 23
			for i := range live {
				g.createEnding(t, fmt.Sprintf("live_%02d", i), time.Time{}, base.Add(time.Duration(live-i)*time.Minute))
			}
			for i := range 4 {
				g.createEnding(t, fmt.Sprintf("sched_%d", i), base.Add(-30*time.Minute), base.Add(time.Duration(i)*time.Second))
			}
			seen := map[string]int{}
			cursor := ""
			for pages := 0; ; pages++ {
				if pages > 30 {
					t.Fatal("paging does not end")
				}
				p := g.browse(t, "limit=5&cursor="+url.QueryEscape(cursor))
				for _, it := range p.Items {
					// new_a auctions end before every cursor: never listed.
					if it.Status != "active" || strings.HasPrefix(it.ID, "new_a") || strings.HasPrefix(it.ID, "sched_") {
						t.Errorf("active page lists %s (%s)", it.ID, it.Status)
					}
					if it.ReserveMet == nil {
						t.Errorf("item %s is not in the item shape (no reserve_met)", it.ID)
					}
					seen[it.ID]++
				}
				// Bids extend the next auctions past every other end, and
				// new auctions arrive, some before and some after the cursor.
				for i := range 2 {
					id := fmt.Sprintf("live_%02d", (pages*5+5+i)%live)
					if b := g.bid(t, id, "alice", fmt.Sprintf("%d.00", 2+pages)); b.Status != 200 {
						t.Fatalf("bid on %s = %d %s", id, b.Status, b.Body)
					}
				}
				g.createEnding(t, fmt.Sprintf("new_a%d", pages), time.Time{}, base.Add(-10*time.Minute))
				g.createEnding(t, fmt.Sprintf("new_b%d", pages), time.Time{}, base.Add(2*time.Hour))
				if p.NextCursor == "" {
					break
				}
				cursor = p.NextCursor
			}
			for i := range live {
				if id := fmt.Sprintf("live_%02d", i); seen[id] != 1 {
					t.Errorf("%s listed %d times, want once", id, seen[id])
				}
			}
			for id, n := range seen {
				if n != 1 {
					t.Errorf("%s listed %d times", id, n)
				}
			}
			if extended := g.item(t, "live_05"); !extended.EndsAt.After(base.Add(time.Duration(live) * time.Minute)) {
				t.Errorf("live_05 ends %v: the soft-close bids did not extend it, so the test proves nothing", extended.EndsAt)
			}

			sched := g.browse(t, "status=scheduled&limit=100")
			if len(sched.Items) != 4 || sched.NextCursor != "" || sched.Items[0].ID != "sched_0" || sched.Items[3].ID != "sched_3" {
				t.Errorf("scheduled = %+v, want sched_0..3 in end order, last page", sched)
			}

			// Cancelled auctions leave the live listing.
			if a := do(t, "POST", g.url+"/api/v1/items/sched_0/cancel", ""); a.Status != 200 {
				t.Fatalf("cancel = %d %s", a.Status, a.Body)
			}
			if s := g.browse(t, "status=scheduled"); len(s.Items) != 3 || s.Items[0].ID != "sched_1" {
				t.Errorf("scheduled after a cancel = %+v", s)
			}
		})
	}
}

// Bad status, limit and cursor are 400s in the gateway's error shape;
// closed and cancelled auctions come from the archive, which answers 503
// while PostgreSQL is down without touching the live listing.
func TestBrowseValidationAndArchive(t *testing.T) {
	t.Parallel()
	dbURL, conn := archiveDB(t)
	closedAt := time.Date(2026, 10, 2, 9, 0, 0, 0, time.UTC)
	for i, id := range []string{"gone_a", "gone_b", "gone_c"} {
		_, err := conn.Exec(context.Background(), `INSERT INTO items
			(item_id, seq, status, current_cents, highest_bidder_id, bid_count, ends_at, winner_id, closed_at,
			 name, starting_cents, min_increment_cents, reserve_cents, starts_at)
			VALUES ($1, 3, 'closed', 2500, 'user_2', 2, $2, 'user_2', $2, 'Brass Telescope', 1000, 500, 9000, $3)`,
			id, closedAt.Add(time.Duration(i)*time.Minute), closedAt.Add(-24*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
	}
	e := newEnv(t, func(c *Config) { c.PostgresURL = config.Secret(dbURL) })
	g := e.gw
	g.createEnding(t, "open_1", time.Time{}, time.Now().Add(time.Hour))
	g.createEnding(t, "open_2", time.Time{}, time.Now().Add(2*time.Hour))

	first := g.browse(t, "status=closed&limit=2")
	if len(first.Items) != 2 || first.Items[0].ID != "gone_c" || first.Items[1].ID != "gone_b" || first.NextCursor == "" ||
		first.Items[0].Name != "Brass Telescope" || first.Items[0].CurrentBid.String() != "25.00" || first.Items[0].ReserveMet == nil {
		t.Fatalf("first closed page = %+v", first)
	}
	second := g.browse(t, "status=closed&limit=2&cursor="+first.NextCursor)
	if len(second.Items) != 1 || second.Items[0].ID != "gone_a" || second.NextCursor != "" {
		t.Errorf("second closed page = %+v", second)
	}
	if p := g.browse(t, "status=cancelled"); len(p.Items) != 0 || p.NextCursor != "" {
		t.Errorf("cancelled = %+v, want none", p)
	}
	live := g.browse(t, "limit=1")
	if len(live.Items) != 1 || live.Items[0].ID != "open_1" || live.NextCursor == "" {
		t.Fatalf("first active page = %+v", live)
	}
	if p := g.browse(t, "status=active&limit=1&cursor="+live.NextCursor); len(p.Items) != 1 || p.Items[0].ID != "open_2" {
		t.Errorf("second active page = %+v", p)
	}

	// An item not checked against the event log on this Redis instance (as
	// after a restart) is checked, then listed.
	key := g.cfg.RedisKeyPrefix + "item:{open_2}"
	if err := e.redis.Client().HSet(context.Background(), key, "ep", "another-instance").Err(); err != nil {
		t.Fatal(err)
	}
	if p := g.browse(t, "limit=5"); len(p.Items) != 2 || p.Items[1].ID != "open_2" || p.Items[1].Status != "active" {
		t.Errorf("active with open_2 unchecked = %+v, want both", p)
	}
	if ep, err := e.redis.Client().HGet(context.Background(), key, "ep").Result(); err != nil || ep == "another-instance" {
		t.Errorf("open_2 listed without being checked (ep %q, %v)", ep, err)
	}

	for _, q := range []string{"status=open", "status=ACTIVE", "limit=0", "limit=-1", "limit=101", "limit=x",
		"cursor=bogus", "status=closed&cursor=" + live.NextCursor, "cursor=" + first.NextCursor,
		"cursor=" + live.NextCursor[:len(live.NextCursor)-2]} {
		a := do(t, "GET", g.url+"/api/v1/items?"+q, "")
		if a.Status != 400 || a.str("message") == "" || a.str("success") != "false" {
			t.Errorf("?%s = %d %s, want 400 with a message", q, a.Status, a.Body)
		}
	}

	down := startGateway(t, func() Config {
		c := g.cfg
		c.PostgresURL = "postgres://nobody@127.0.0.1:1/none?sslmode=disable"
		return c
	}())
	if a := do(t, "GET", down.url+"/api/v1/items?status=closed", ""); a.Status != 503 || !strings.Contains(a.str("message"), "PostgreSQL") {
		t.Errorf("closed without PostgreSQL = %d %s, want 503 naming PostgreSQL", a.Status, a.Body)
	}
	if p := down.browse(t, "status=active"); len(p.Items) != 2 {
		t.Errorf("active without PostgreSQL = %+v, want both open items", p)
	}
}
