package postgres_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bidding-platform/api-gateway/internal/service"
	"github.com/bidding-platform/shared/models"
)

// A seller's archived items of one start time come in byte order of their
// ids, paged without skips or repeats, even when item_id sorts otherwise in
// the database's collation (en_US on RDS; the test servers are C, so the
// column is given an ICU en-US collation here), and the query still walks
// the index instead of sorting.
func TestSoldItemsOrderIDsByteWise(t *testing.T) {
	t.Parallel()
	s, conn := setup(t)
	ctx := context.Background()
	const coll = "en-US-x-icu"
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_collation WHERE collname = $1`, coll).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Skipf("PostgreSQL has no %s collation (built without ICU)", coll)
	}
	if _, err := conn.Exec(ctx, `ALTER TABLE items ALTER COLUMN item_id TYPE text COLLATE "`+coll+`"`); err != nil {
		t.Fatal(err)
	}
	var enUS bool
	if err := conn.QueryRow(ctx, `SELECT 'Lot2' > 'lot1' COLLATE "`+coll+`"`).Scan(&enUS); err != nil || !enUS {
		t.Fatalf("'Lot2' > 'lot1' in %s = %v, %v; the test needs a collation that differs from byte order", coll, enUS, err)
	}
	starts := time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC)
	for _, id := range []string{"lot1", "Lot2", "lot3", "Lot0"} {
		_, err := conn.Exec(ctx, `INSERT INTO items (item_id, seq, status, ends_at, closed_at, name, starting_cents,
				min_increment_cents, starts_at, seller_id)
			VALUES ($1, 2, 'closed', $2, $2, 'Lot', 100, 100, $3, 'seller_1')`, id, starts.Add(time.Hour), starts)
		if err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"lot3", "lot1", "Lot2", "Lot0"} // byte order, descending

	rows, err := s.SoldItems(ctx, "seller_1", nil, 10)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range rows {
		got = append(got, r.Item.ID)
	}
	if !slices.Equal(got, want) {
		t.Errorf("SoldItems = %q, want %q", got, want)
	}

	got = nil
	var after *service.ItemKey
	for range len(want) + 1 {
		rows, err := s.SoldItems(ctx, "seller_1", after, 1)
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) == 0 {
			break
		}
		got = append(got, rows[0].Item.ID)
		after = &rows[0].Key
	}
	if !slices.Equal(got, want) {
		t.Errorf("SoldItems one at a time = %q, want %q", got, want)
	}

	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	for _, off := range []string{"enable_seqscan", "enable_bitmapscan"} {
		if _, err := tx.Exec(ctx, `SET LOCAL `+off+` = off`); err != nil {
			t.Fatal(err)
		}
	}
	var plan []string
	r, err := tx.Query(ctx, `EXPLAIN SELECT item_id FROM items i WHERE i.seller_id = 'seller_1'
		AND (i.starts_at, i.item_id COLLATE "C") < ($1, 'lot1') ORDER BY i.starts_at DESC, i.item_id COLLATE "C" DESC LIMIT 2`, starts)
	if err != nil {
		t.Fatal(err)
	}
	for r.Next() {
		var line string
		if err := r.Scan(&line); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, line)
	}
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	p := strings.Join(plan, "\n")
	if !strings.Contains(p, "items_seller_starts_bytewise") || strings.Contains(p, "Sort") {
		t.Errorf("the selling query does not walk items_seller_starts_bytewise in order:\n%s", p)
	}
}

// ArchivedItems answers for many ids at once with the final, complete ones.
func TestArchivedItems(t *testing.T) {
	t.Parallel()
	s, conn := setup(t)
	ctx := context.Background()
	starts, _ := archivedFixture(t, conn)
	got, err := s.ArchivedItems(ctx, []string{"sold", "withdrawn", "open", "old", "unknown"})
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, 0, len(got))
	for id, it := range got {
		if it.ID != id {
			t.Errorf("ArchivedItems[%s] holds item %s", id, it.ID)
		}
		ids = append(ids, id)
	}
	slices.Sort(ids)
	if want := []string{"sold", "withdrawn"}; !slices.Equal(ids, want) {
		t.Errorf("ArchivedItems = %q, want %q", ids, want)
	}
	if it := got["withdrawn"]; it.Status != models.StatusCancelled || it.Name != "Oak Desk" || it.StartsAt != starts {
		t.Errorf("ArchivedItems[withdrawn] = %+v, want the cancelled Oak Desk", it)
	}
	if got, err := s.ArchivedItems(ctx, nil); err != nil || len(got) != 0 {
		t.Errorf("ArchivedItems(nil) = %v, %v; want none", got, err)
	}
}
