package redis

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/bidding-platform/api-gateway/internal/service"
	"github.com/bidding-platform/shared/models"
	"github.com/bidding-platform/shared/testenv"
)

// walkOpen reads the whole open-auction index, n entries per step.
func walkOpen(t testing.TB, s *Store, n int) []service.OpenEntry {
	t.Helper()
	var (
		all   []service.OpenEntry
		after service.OpenKey
	)
	for steps := 0; ; steps++ {
		if steps > 100 {
			t.Fatal("the walk over the open-auction index does not end")
		}
		page, err := s.OpenItems(ctxT(t), after, n)
		if err != nil {
			t.Fatalf("OpenItems(%+v, %d): %v", after, n, err)
		}
		all = append(all, page.Entries...)
		if page.Done {
			return all
		}
		if page.Last == after {
			t.Fatalf("OpenItems(%+v, %d) did not move on", after, n)
		}
		after = page.Last
	}
}

func openIDs(entries []service.OpenEntry) []string {
	ids := make([]string, len(entries))
	for i, e := range entries {
		ids[i] = e.Key.ID
	}
	return ids
}

// listedEnd is id's score in the open-auction index; listed is false when
// it is not there.
func (s *Store) listedEnd(t testing.TB, id string) (end int64, listed bool) {
	t.Helper()
	score, err := s.rdb.ZScore(ctxT(t), s.openKey(), id).Result()
	if errors.Is(err, goredis.Nil) {
		return 0, false
	}
	if err != nil {
		t.Fatalf("ZSCORE %s: %v", id, err)
	}
	return int64(score), true
}

// The open-auction index lists every auction that is not final by its end
// as created, ties by id, auctions without an end last; soft close does
// not move an auction in it; closing, cancelling and losing the item take
// it out; a restore puts it back; the periodic scan rebuilds it whole.
func TestOpenIndex(t *testing.T) {
	t.Parallel()
	forEach(t, topologies(t), func(t *testing.T, s *Store, top topology) {
		ctx := ctxT(t)
		base := time.Now().Add(time.Hour).Truncate(time.Millisecond)
		for _, it := range []models.Item{
			{ID: "b_tie", EndsAt: base.Add(2 * time.Minute)},
			{ID: "a_tie", EndsAt: base.Add(2 * time.Minute)},
			{ID: "late", EndsAt: base.Add(3 * time.Minute)},
			{ID: "soon", EndsAt: base},
			{ID: "sched", StartsAt: base.Add(-time.Minute), EndsAt: base.Add(4 * time.Minute)},
		} {
			newItem(t, s, it)
		}
		if _, err := s.CreateItem(ctx, models.Item{ID: "forever", Name: "Endless", StartingPrice: 100, MinIncrement: 100}); err != nil {
			t.Fatal(err)
		}
		want := []string{"soon", "a_tie", "b_tie", "late", "sched", "forever"}
		for _, n := range []int{1, 2, 100} {
			entries := walkOpen(t, s, n)
			if got := openIDs(entries); !slices.Equal(got, want) {
				t.Fatalf("walk by %d = %v, want %v", n, got, want)
			}
			for _, e := range entries {
				wantStatus := models.StatusActive
				if e.Key.ID == "sched" {
					wantStatus = models.StatusScheduled
				}
				if e.Item.ID != e.Key.ID || e.Item.Status != wantStatus || e.Unchecked {
					t.Errorf("entry %+v: want item %s %s, checked", e, e.Key.ID, wantStatus)
				}
			}
			if last := entries[len(entries)-1].Key; last.End != service.NoEnd {
				t.Errorf("an auction without an end is listed at %d, want NoEnd", last.End)
			}
		}

		// A bid in a soft-close window of 3h moves soon's end past late's.
		req := bid("soon", "alice", 2000)
		req.SoftClose = 3 * time.Hour
		if res := placeOne(t, s, req); res.Outcome != models.OutcomeAccepted || !res.Item.EndsAt.After(base.Add(3*time.Minute)) {
			t.Fatalf("soft-close bid: %v, ends %v", res.Outcome, res.Item.EndsAt)
		}
		if got := openIDs(walkOpen(t, s, 2)); !slices.Equal(got, want) {
			t.Errorf("after a soft-close extension: %v, want %v", got, want)
		}
		if end, _ := s.listedEnd(t, "soon"); end != base.UnixMilli() {
			t.Errorf("soon is listed at %d, want its end as created %d", end, base.UnixMilli())
		}

		// The periodic scan rebuilds a lost index with the same places.
		before := walkOpen(t, s, 100)
		if err := top.raw.Del(ctx, s.openKey()).Err(); err != nil {
			t.Fatal(err)
		}
		if got := walkOpen(t, s, 100); len(got) != 0 {
			t.Fatalf("index deleted, yet the walk finds %v", openIDs(got))
		}
		s.scanMu.Lock()
		s.lastEndScan = time.Time{}
		s.scanMu.Unlock()
		if _, _, err := s.CloseDue(ctx); err != nil {
			t.Fatal(err)
		}
		after := walkOpen(t, s, 100)
		for i := range max(len(before), len(after)) {
			if i >= len(before) || i >= len(after) || before[i].Key != after[i].Key {
				t.Fatalf("rebuilt index:\n%+v\nwant\n%+v", after, before)
			}
		}

		if _, err := s.Cancel(ctx, "late", "root", true); err != nil {
			t.Fatal(err)
		}
		if _, listed := s.listedEnd(t, "late"); listed {
			t.Error("a cancelled auction is still listed")
		}
		// A stale entry of a final item is dropped by the walk; a restore
		// of a final item drops it too.
		if err := top.raw.ZAdd(ctx, s.openKey(), goredis.Z{Score: 1, Member: "late"}).Err(); err != nil {
			t.Fatal(err)
		}
		if got := openIDs(walkOpen(t, s, 100)); slices.Contains(got, "late") {
			t.Errorf("walk lists the cancelled auction: %v", got)
		}
		if _, listed := s.listedEnd(t, "late"); listed {
			t.Error("the walk left a cancelled auction listed")
		}

		// An item Redis no longer holds leaves the index when a walk meets
		// it; a restore lists it again, at its end as created.
		if err := top.raw.Del(ctx, s.itemKey("a_tie")).Err(); err != nil {
			t.Fatal(err)
		}
		if got := openIDs(walkOpen(t, s, 100)); !slices.Equal(got, []string{"soon", "b_tie", "sched", "forever"}) {
			t.Errorf("after a_tie was lost: %v", got)
		}
		if _, listed := s.listedEnd(t, "a_tie"); listed {
			t.Error("a lost item is still listed")
		}
		rec := models.Item{ID: "a_tie", Name: "Vintage Watch", StartingPrice: 1000, MinIncrement: 100,
			StartsAt: base.Add(-time.Hour), EndsAt: base.Add(2 * time.Minute)}
		if err := s.Restore(ctx, rec, nil); err != nil {
			t.Fatal(err)
		}
		if end, listed := s.listedEnd(t, "a_tie"); !listed || end != base.Add(2*time.Minute).UnixMilli() {
			t.Errorf("restored a_tie listed %v at %d, want at %d", listed, end, base.Add(2*time.Minute).UnixMilli())
		}
		if err := top.raw.ZAdd(ctx, s.openKey(), goredis.Z{Score: 1, Member: "late"}).Err(); err != nil {
			t.Fatal(err)
		}
		if err := s.Restore(ctx, models.Item{ID: "late"}, nil); err != nil {
			t.Fatal(err)
		}
		if _, listed := s.listedEnd(t, "late"); listed {
			t.Error("a restore left a cancelled auction listed")
		}

		// An auction that closes leaves the index.
		short := newItem(t, s, models.Item{ID: "short", EndsAt: time.Now().Add(300 * time.Millisecond)})
		if _, listed := s.listedEnd(t, short.ID); !listed {
			t.Fatal("a new auction is not listed")
		}
		testenv.WaitFor(t, 10*time.Second, "short closed", func() error {
			if _, _, err := s.CloseDue(ctx); err != nil {
				return err
			}
			// The stored status, not the one at the clock: closed by CloseDue.
			if st, err := s.rdb.HGet(ctx, s.itemKey(short.ID), "st").Result(); err != nil || st != string(models.StatusClosed) {
				return fmt.Errorf("stored status %q, %v", st, err)
			}
			return nil
		})
		if _, listed := s.listedEnd(t, short.ID); listed {
			t.Error("a closed auction is still listed")
		}
	})
}
