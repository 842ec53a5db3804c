package postgres_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/bidding-platform/api-gateway/internal/service"
	"github.com/bidding-platform/shared/models"
)

// FinalItems pages through closed items newest close first, ties by id
// descending, without the open, cancelled or incomplete rows; a close
// archived between pages is newer than any cursor and never repeats a row.
func TestFinalItems(t *testing.T) {
	t.Parallel()
	s, conn := setup(t)
	ctx := context.Background()
	at := time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC)
	insert := func(id, status string, closed time.Time, whole bool) {
		t.Helper()
		name := any("Lot " + id)
		if !whole {
			name = nil
		}
		_, err := conn.Exec(ctx, `INSERT INTO items
			(item_id, seq, status, current_cents, highest_bidder_id, bid_count, ends_at, closed_at,
			 name, starting_cents, min_increment_cents, reserve_cents, starts_at, seller_id)
			VALUES ($1, 3, $2, 2500, 'user_2', 2, $3, $3, $4, 1000, 100, 0, $5, 'sam')`,
			id, status, closed, name, at.Add(-24*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
	}
	var want []string
	for i := range 7 {
		// Two closes share each instant: the id breaks the tie.
		closed := at.Add(time.Duration(i/2) * time.Minute)
		insert(fmt.Sprintf("c%d", i), "closed", closed, true)
	}
	// Newest close first, and of two at one instant the greater id.
	for i := 6; i >= 0; i-- {
		want = append(want, fmt.Sprintf("c%d", i))
	}
	insert("x_cancelled", "cancelled", at.Add(time.Hour), true)
	insert("x_old", "closed", at.Add(time.Hour), false)

	var got []string
	after := service.FinalKey{}
	for pages := 0; ; pages++ {
		if pages > 10 {
			t.Fatal("paging does not end")
		}
		items, err := s.FinalItems(ctx, models.StatusClosed, after, 3)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range items {
			if f.Item.Status != models.StatusClosed || f.Item.Name != "Lot "+f.Item.ID || f.Item.SellerID != "sam" || f.Item.CurrentBid != 2500 {
				t.Errorf("item %+v: not as archived", f.Item)
			}
			got = append(got, f.Item.ID)
		}
		// A close archived meanwhile is newer than every cursor.
		insert(fmt.Sprintf("new%d", pages), "closed", at.Add(2*time.Hour), true)
		if len(items) < 3 {
			break
		}
		last := items[len(items)-1]
		after = service.FinalKey{At: last.At, ID: last.Item.ID}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("closed items = %v, want %v", got, want)
	}
	items, err := s.FinalItems(ctx, models.StatusCancelled, service.FinalKey{}, 10)
	if err != nil || len(items) != 1 || items[0].Item.ID != "x_cancelled" || !items[0].At.Equal(at.Add(time.Hour)) {
		t.Errorf("cancelled items = %+v, %v; want x_cancelled", items, err)
	}
}
