package redis

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/bidding-platform/api-gateway/internal/service"
	"github.com/bidding-platform/shared/models"
)

// The seller index lists a seller's items newest start first, pages
// strictly after a position, is rebuilt by the scan once lost, and is
// written again when an item is restored.
func TestSellerIndex(t *testing.T) {
	t.Parallel()
	forEach(t, topologies(t), func(t *testing.T, s *Store, top topology) {
		ctx := context.Background()
		start := time.Now().Add(time.Hour).Truncate(time.Millisecond)
		for i, id := range []string{"s_a", "s_b", "s_c"} {
			it := models.Item{ID: id, Name: id, StartingPrice: 100, MinIncrement: 100, SellerID: "sam",
				StartsAt: start.Add(time.Duration(i%2) * time.Minute), EndsAt: start.Add(2 * time.Hour)}
			if _, err := s.CreateItem(ctx, it); err != nil {
				t.Fatal(err)
			}
		}
		ids := func(after *service.ItemKey, n int) []string {
			t.Helper()
			keys, err := s.SellerItems(ctx, "sam", after, n)
			if err != nil {
				t.Fatal(err)
			}
			var out []string
			for _, k := range keys {
				out = append(out, k.ID)
			}
			return out
		}
		// s_b starts a minute later; s_c and s_a tie and go by id, descending.
		if got, want := ids(nil, 10), []string{"s_b", "s_c", "s_a"}; !slices.Equal(got, want) {
			t.Fatalf("index = %q, want %q", got, want)
		}
		if got, want := ids(&service.ItemKey{At: start, ID: "s_c"}, 10), []string{"s_a"}; !slices.Equal(got, want) {
			t.Errorf("after s_c = %q, want %q", got, want)
		}
		found, unchecked, err := s.Items(ctx, []string{"s_a", "s_b", "nope"})
		if err != nil || len(found) != 2 || found["s_b"].SellerID != "sam" || len(unchecked) != 0 {
			t.Errorf("Items = %v, %v, %v; want s_a and s_b", found, unchecked, err)
		}

		if err := top.raw.Del(ctx, s.sellerKey("sam")).Err(); err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.CloseDue(ctx); err != nil {
			t.Fatal(err)
		}
		if got, want := ids(nil, 10), []string{"s_b", "s_c", "s_a"}; !slices.Equal(got, want) {
			t.Errorf("index after the scan = %q, want %q", got, want)
		}

		if err := s.ForgetSellerItems(ctx, "sam", []string{"s_b", "s_c", "s_a"}); err != nil {
			t.Fatal(err)
		}
		rec := models.Item{ID: "s_d", Name: "s_d", StartingPrice: 100, MinIncrement: 100, SellerID: "sam", StartsAt: start, EndsAt: start.Add(time.Hour)}
		if err := s.Restore(ctx, rec, nil); err != nil {
			t.Fatal(err)
		}
		if got, want := ids(nil, 10), []string{"s_d"}; !slices.Equal(got, want) {
			t.Errorf("index after a restore = %q, want %q", got, want)
		}
	})
}
