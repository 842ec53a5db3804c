package database_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/bidding-platform/archival-worker/internal/database"
	"github.com/bidding-platform/shared/models"
	"github.com/bidding-platform/shared/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func open(t *testing.T, strategy database.Strategy) (*database.Store, string) {
	t.Helper()
	url := testenv.PostgresDB(t)
	ctx := context.Background()
	s, err := database.Open(ctx, database.Config{URL: url, Strategy: strategy})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return s, url
}

func bid(item string, seq int, cents int64) models.Event {
	ends := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	return models.Event{
		Type: models.EventBid, EventID: fmt.Sprintf("evt_%s_%05d", item, seq), ItemID: item,
		BidID: fmt.Sprintf("bid_%s_%05d", item, seq), UserID: fmt.Sprintf("user_%d", seq%7),
		Amount: models.Money(cents), PreviousBid: models.Money(cents - 100), Seq: uint64(seq),
		Timestamp: time.Now().UTC(), EndsAt: &ends, BidCount: int64(seq),
	}
}

// Every strategy must insert each event once, count repeats as duplicates,
// and move item state only forward.
func TestWriteIsIdempotentAndMonotonic(t *testing.T) {
	t.Parallel()
	for _, strategy := range database.Strategies {
		t.Run(string(strategy), func(t *testing.T) {
			t.Parallel()
			s, _ := open(t, strategy)
			ctx := context.Background()
			var first []models.Event
			for i := 1; i <= 20; i++ {
				if i != 10 { // arrives late, below
					first = append(first, bid("a", i, int64(1000+i*100)))
				}
			}
			first = append(first, first[3], first[4]) // repeated inside the batch
			res, err := s.Write(ctx, first, nil)
			if err != nil {
				t.Fatal(err)
			}
			if res.Inserted != 19 || res.Duplicates != 2 {
				t.Errorf("first batch: inserted %d dup %d, want 19 and 2", res.Inserted, res.Duplicates)
			}
			// Older events arrive late, with one new one.
			late := []models.Event{bid("a", 5, 1500), bid("a", 2, 1200), bid("a", 21, 3100)}
			res, err = s.Write(ctx, late, nil)
			if err != nil {
				t.Fatal(err)
			}
			if res.Inserted != 1 || res.Duplicates != 2 {
				t.Errorf("late batch: inserted %d dup %d, want 1 and 2", res.Inserted, res.Duplicates)
			}
			// A new row, but older than the item's state.
			if res, err := s.Write(ctx, []models.Event{bid("a", 10, 2000)}, nil); err != nil || res.Inserted != 1 {
				t.Fatalf("late seq 10: inserted %d, err %v; want 1", res.Inserted, err)
			}
			st := itemState(t, s, "a")
			if st.seq != 21 || st.cents != 3100 || st.status != "active" {
				t.Errorf("item a = %+v, want seq 21, 3100 cents, active", st)
			}
		})
	}
}

// A different event with an item and seq already archived is refused, in
// one batch or in a later one, with an error SeqTaken recognises; the batch
// commits nothing, and a repeat of the archived event is still a duplicate.
func TestSeqTakenByAnotherEventIsRefused(t *testing.T) {
	t.Parallel()
	for _, strategy := range database.Strategies {
		t.Run(string(strategy), func(t *testing.T) {
			t.Parallel()
			s, _ := open(t, strategy)
			ctx := context.Background()
			if _, err := s.Write(ctx, []models.Event{bid("e", 1, 1000), bid("e", 2, 1100)}, nil); err != nil {
				t.Fatal(err)
			}
			other := bid("e", 2, 1200)
			other.EventID = "evt_e_rewound"
			_, err := s.Write(ctx, []models.Event{bid("e", 3, 1300), other}, nil)
			if !database.SeqTaken(err) || !database.Permanent(err) {
				t.Fatalf("a second event at seq 2: err %v, want one SeqTaken and Permanent", err)
			}
			if n := count(t, s, "SELECT count(*) FROM bids WHERE item_id = 'e'"); n != 2 {
				t.Errorf("bids of e after the refused batch = %d, want 2 (nothing of it committed)", n)
			}
			holder, err := s.SeqHolder(ctx, "e", 2)
			if err != nil || holder != "evt_e_00002" {
				t.Errorf("SeqHolder(e, 2) = %q, %v; want evt_e_00002", holder, err)
			}
			if holder, err := s.SeqHolder(ctx, "e", 9); err != nil || holder != "" {
				t.Errorf("SeqHolder(e, 9) = %q, %v; want none", holder, err)
			}
			twin := bid("e", 4, 1400)
			_, err = s.Write(ctx, []models.Event{withID(twin, "evt_e_4a"), withID(twin, "evt_e_4b")}, nil)
			if !database.SeqTaken(err) {
				t.Errorf("two new events sharing seq 4 in one batch: err %v, want SeqTaken", err)
			}
			res, err := s.Write(ctx, []models.Event{bid("e", 2, 1100), bid("e", 3, 1300)}, nil)
			if err != nil || res.Inserted != 1 || res.Duplicates != 1 {
				t.Errorf("repeat of seq 2 with seq 3: inserted %d dup %d err %v, want 1, 1, nil", res.Inserted, res.Duplicates, err)
			}
		})
	}
}

func withID(e models.Event, id string) models.Event {
	e.EventID = id
	return e
}

func TestCloseIsStickyAndNamesWinner(t *testing.T) {
	t.Parallel()
	s, _ := open(t, database.Copy)
	ctx := context.Background()
	closed := models.Event{Type: models.EventAuctionClosed, EventID: "evt_close_b", ItemID: "b",
		Amount: 1300, Seq: 4, WinnerID: "user_3", Timestamp: time.Now().UTC(), BidCount: 3}
	// The close overtakes the bids it follows.
	if _, err := s.Write(ctx, []models.Event{bid("b", 1, 1100), closed}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Write(ctx, []models.Event{bid("b", 3, 1300), bid("b", 2, 1200)}, nil); err != nil {
		t.Fatal(err)
	}
	st := itemState(t, s, "b")
	if st.status != "closed" || st.winner != "user_3" || st.seq != 4 || st.cents != 1300 {
		t.Errorf("item b = %+v, want closed, winner user_3, seq 4, 1300 cents", st)
	}
	if n := count(t, s, "SELECT count(*) FROM bids WHERE item_id = 'b'"); n != 3 {
		t.Errorf("bids of b = %d, want 3", n)
	}
}

// TestCloseKeepsTheItemsDescription: the close event describes the item,
// and the archive keeps that, also through a redelivery.
func TestCloseKeepsTheItemsDescription(t *testing.T) {
	t.Parallel()
	s, _ := open(t, database.Unnest)
	ctx := context.Background()
	starts := time.Date(2026, 11, 1, 9, 30, 0, 0, time.UTC)
	closed := models.Event{Type: models.EventAuctionClosed, EventID: "evt_close_d", ItemID: "d",
		Amount: 1500, Seq: 2, WinnerID: "user_1", Timestamp: time.Now().UTC(), BidCount: 1,
		Name: "Brass Telescope", StartingPrice: 1000, MinIncrement: 250, ReservePrice: 1200, StartsAt: &starts}
	for range 2 {
		if _, err := s.Write(ctx, []models.Event{bid("d", 1, 1500), closed}, nil); err != nil {
			t.Fatal(err)
		}
	}
	var (
		name         string
		sp, inc, res int64
		startsAt     time.Time
	)
	err := database.QueryRow(ctx, s, "SELECT name, starting_cents, min_increment_cents, reserve_cents, starts_at FROM items WHERE item_id = 'd'").
		Scan(&name, &sp, &inc, &res, &startsAt)
	if err != nil {
		t.Fatal(err)
	}
	if name != closed.Name || sp != 1000 || inc != 250 || res != 1200 || !startsAt.Equal(starts) {
		t.Errorf("item d archived as %q %d+%d reserve %d from %v, want the close's description", name, sp, inc, res, startsAt)
	}
}

func TestDeadLettersAreStoredOnce(t *testing.T) {
	t.Parallel()
	s, _ := open(t, database.Copy)
	ctx := context.Background()
	dl := []database.DeadLetter{{StreamSeq: 7, Subject: "bids.x", Reason: "bad json", Payload: []byte("{oops")}}
	for range 2 {
		if _, err := s.Write(ctx, []models.Event{bid("c", 1, 100)}, dl); err != nil {
			t.Fatal(err)
		}
	}
	if n := count(t, s, "SELECT count(*) FROM dead_letters WHERE reason = 'bad json'"); n != 1 {
		t.Errorf("dead letters = %d, want 1", n)
	}
}

type state struct {
	seq    int64
	cents  int64
	status string
	winner string
}

func itemState(t *testing.T, s *database.Store, item string) state {
	t.Helper()
	var st state
	var winner *string
	err := database.QueryRow(context.Background(), s,
		"SELECT seq, current_cents, status, winner_id FROM items WHERE item_id = $1", item).
		Scan(&st.seq, &st.cents, &st.status, &winner)
	if err != nil {
		t.Fatal(err)
	}
	if winner != nil {
		st.winner = *winner
	}
	return st
}

func count(t *testing.T, s *database.Store, sql string) int {
	t.Helper()
	var n int
	if err := database.QueryRow(context.Background(), s, sql).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// A cancellation is archived like a close: the item is final, cancelled,
// without a winner, with its seller and description; a later close of the
// same item (none can exist, but a forged or stale one) cannot reopen it, and
// it is due for purging like a closed item.
func TestCancelIsArchivedAsFinal(t *testing.T) {
	t.Parallel()
	for _, strategy := range []database.Strategy{database.Copy, database.Unnest} {
		s, _ := open(t, strategy)
		ctx := context.Background()
		starts := time.Date(2026, 11, 1, 9, 30, 0, 0, time.UTC)
		cancelled := models.Event{Type: models.EventAuctionCancelled, EventID: "evt_cancel_c", ItemID: "c", UserID: "admin_1",
			Amount: 1100, Seq: 2, Timestamp: time.Now().UTC().Add(-time.Hour), BidCount: 1,
			Name: "Tin Drum", StartingPrice: 1000, MinIncrement: 100, ReservePrice: 5000, StartsAt: &starts, SellerID: "seller_9"}
		if _, err := s.Write(ctx, []models.Event{bid("c", 1, 1100), cancelled}, nil); err != nil {
			t.Fatal(err)
		}
		stale := models.Event{Type: models.EventAuctionClosed, EventID: "evt_close_c", ItemID: "c", Amount: 1100, Seq: 2,
			WinnerID: "user_1", Timestamp: time.Now().UTC(), BidCount: 1}
		if _, err := s.Write(ctx, []models.Event{stale}, nil); err != nil {
			t.Fatal(err)
		}
		st := itemState(t, s, "c")
		if st.status != "cancelled" || st.winner != "" || st.seq != 2 {
			t.Errorf("%v: item c = %+v, want cancelled at seq 2 without a winner", strategy, st)
		}
		var seller, name string
		if err := database.QueryRow(ctx, s, "SELECT seller_id, name FROM items WHERE item_id = 'c'").Scan(&seller, &name); err != nil {
			t.Fatal(err)
		}
		if seller != "seller_9" || name != "Tin Drum" {
			t.Errorf("%v: item c archived with seller %q, name %q; want seller_9, Tin Drum", strategy, seller, name)
		}
		due, err := s.PurgeDue(ctx, time.Now(), 10)
		if err != nil || len(due) != 1 || due[0] != "c" {
			t.Errorf("%v: PurgeDue = %v, %v; want the cancelled item", strategy, due, err)
		}
	}
}

// An automatic bid is archived as its bidder's bid and stays marked as
// automatic, a tie with the bid it answers included, by every strategy.
func TestAutomaticBidsAreArchivedMarked(t *testing.T) {
	t.Parallel()
	for _, strategy := range database.Strategies {
		t.Run(string(strategy), func(t *testing.T) {
			t.Parallel()
			s, _ := open(t, strategy)
			ctx := context.Background()
			placed := bid("m", 1, 1000)
			answer := bid("m", 2, 1000)
			answer.PreviousBid, answer.Auto, answer.UserID = 1000, true, "leader"
			if err := answer.Validate(); err != nil {
				t.Fatalf("the tie's automatic bid is not a valid event: %v", err)
			}
			if res, err := s.Write(ctx, []models.Event{placed, answer}, nil); err != nil || res.Inserted != 2 {
				t.Fatalf("write: inserted %d, err %v; want 2", res.Inserted, err)
			}
			for _, e := range []models.Event{placed, answer} {
				var auto bool
				var user string
				if err := database.QueryRow(ctx, s, "SELECT auto, user_id FROM bids WHERE event_id = $1", e.EventID).Scan(&auto, &user); err != nil {
					t.Fatal(err)
				}
				if auto != e.Auto || user != e.UserID {
					t.Errorf("seq %d archived as auto=%v by %s, want auto=%v by %s", e.Seq, auto, user, e.Auto, e.UserID)
				}
			}
		})
	}
}
