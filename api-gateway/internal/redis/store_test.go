package redis

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/bidding-platform/api-gateway/internal/service"
	"github.com/bidding-platform/shared/models"
	"github.com/bidding-platform/shared/testenv"
)

// TestStore runs every behaviour for both strategies on a single Redis and
// on a three-master cluster.
func TestStore(t *testing.T) {
	tops := topologies(t)
	for _, tc := range []struct {
		name string
		f    func(t *testing.T, s *Store, top topology)
	}{
		{"CreateAndRead", testCreateAndRead},
		{"AcceptTooLowTie", testAcceptTooLowTie},
		{"ZeroIncrementTie", testZeroIncrementTie},
		{"Group", testGroup},
		{"NotFound", testNotFound},
		{"NotActive", testNotActive},
		{"SoftClose", testSoftClose},
		{"Idempotency", testIdempotency},
		{"Outbox", testOutbox},
		{"OrphanedOutbox", testOrphanedOutbox},
		{"CloseDue", testCloseDue},
		{"ScriptCacheFlushed", testScriptCacheFlushed},
		{"LostEndHint", testLostEndHint},
		{"ClosedRetention", testClosedRetention},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			forEach(t, tops, tc.f)
		})
	}
}

func testCreateAndRead(t *testing.T, s *Store, _ topology) {
	ends := time.Now().Add(time.Hour).Truncate(time.Millisecond).UTC()
	created := newItem(t, s, models.Item{Name: "Lamp", StartingPrice: 2550, MinIncrement: 50, ReservePrice: 9000, EndsAt: ends})
	if created.Status != models.StatusActive {
		t.Errorf("created status = %q, want active", created.Status)
	}
	if created.StartsAt.IsZero() || created.StartsAt.After(time.Now().Add(time.Minute)) {
		t.Errorf("created StartsAt = %v, want about now", created.StartsAt)
	}
	got := item(t, s, created.ID)
	want := models.Item{ID: created.ID, Name: "Lamp", Status: models.StatusActive, StartingPrice: 2550,
		MinIncrement: 50, ReservePrice: 9000, StartsAt: created.StartsAt, EndsAt: ends}
	if got != want {
		t.Errorf("Item = %+v\nwant %+v", got, want)
	}
	if _, err := s.CreateItem(ctxT(t), models.Item{ID: created.ID, Name: "again", StartingPrice: 1}); !errors.Is(err, service.ErrItemExists) {
		t.Errorf("second CreateItem(%s) error = %v, want ErrItemExists", created.ID, err)
	}
	if _, err := s.Item(ctxT(t), "missing_item"); !errors.Is(err, service.ErrItemNotFound) {
		t.Errorf("Item(missing) error = %v, want ErrItemNotFound", err)
	}
	sched := newItem(t, s, models.Item{StartsAt: time.Now().Add(time.Hour), EndsAt: time.Now().Add(2 * time.Hour)})
	if sched.Status != models.StatusScheduled {
		t.Errorf("future starts_at: status %q, want scheduled", sched.Status)
	}
	if got := item(t, s, sched.ID).Status; got != models.StatusScheduled {
		t.Errorf("read scheduled item: status %q, want scheduled", got)
	}
}

func testAcceptTooLowTie(t *testing.T, s *Store, _ topology) {
	it := newItem(t, s, models.Item{StartingPrice: 1000, MinIncrement: 100})
	wantOutcome(t, "below starting price", placeOne(t, s, bid(it.ID, "u1", 999)), models.OutcomeTooLow)

	first := bid(it.ID, "u1", 1000)
	r := placeOne(t, s, first)
	wantOutcome(t, "at starting price", r, models.OutcomeAccepted)
	if r.Item.CurrentBid != 1000 || r.Item.HighestBidderID != "u1" || r.Item.BidCount != 1 || r.Item.Seq != 1 {
		t.Errorf("after first bid: item %+v, want current 1000 by u1, count 1, seq 1", r.Item)
	}
	if r.Event == nil || len(r.Entries) != 1 || r.Entries[0].ID == "" {
		t.Fatalf("accepted without event or outbox id: %+v", r)
	}
	ev := *r.Event
	if ev.Type != models.EventBid || ev.EventID != first.EventID || ev.BidID != first.BidID || ev.ItemID != it.ID ||
		ev.UserID != "u1" || ev.Amount != 1000 || ev.PreviousBid != 0 || ev.Seq != 1 || ev.BidCount != 1 ||
		ev.EndsAt == nil || !ev.EndsAt.Equal(it.EndsAt) {
		t.Errorf("event = %+v, want the first bid of u1 at 10.00, seq 1, ends %v", ev, it.EndsAt)
	}
	if d := time.Since(ev.Timestamp); d < -time.Minute || d > time.Minute {
		t.Errorf("event timestamp %v is not about now", ev.Timestamp)
	}

	wantOutcome(t, "below increment", placeOne(t, s, bid(it.ID, "u2", 1099)), models.OutcomeTooLow)
	wantOutcome(t, "tie", placeOne(t, s, bid(it.ID, "u2", 1000)), models.OutcomeTooLow)
	r = placeOne(t, s, bid(it.ID, "u2", 1100))
	wantOutcome(t, "exactly the increment", r, models.OutcomeAccepted)
	if r.Event.PreviousBid != 1000 || r.Event.Seq != 2 {
		t.Errorf("second event = %+v, want previous 10.00, seq 2", *r.Event)
	}
	r = placeOne(t, s, bid(it.ID, "u3", 1100))
	wantOutcome(t, "tie with the second bid", r, models.OutcomeTooLow)
	if r.Item.CurrentBid != 1100 || r.Item.HighestBidderID != "u2" || r.Item.MinNextBid() != 1200 {
		t.Errorf("too low answer names item %+v, want current 11.00 by u2, min next 12.00", r.Item)
	}
	if r.Event != nil {
		t.Errorf("too low answer carries event %+v", r.Event)
	}
	got := item(t, s, it.ID)
	if got.CurrentBid != 1100 || got.HighestBidderID != "u2" || got.BidCount != 2 || got.Seq != 2 {
		t.Errorf("stored item %+v, want 11.00 by u2, 2 bids, seq 2", got)
	}
}

func testZeroIncrementTie(t *testing.T, s *Store, _ topology) {
	it := newItem(t, s, models.Item{StartingPrice: 500})
	if _, err := s.rdbHSetForTest(t, it.ID, "inc", "0"); err != nil {
		t.Fatal(err)
	}
	wantOutcome(t, "first", placeOne(t, s, bid(it.ID, "u1", 500)), models.OutcomeAccepted)
	wantOutcome(t, "tie with no increment", placeOne(t, s, bid(it.ID, "u2", 500)), models.OutcomeTooLow)
	wantOutcome(t, "one cent more", placeOne(t, s, bid(it.ID, "u2", 501)), models.OutcomeAccepted)
}

func testGroup(t *testing.T, s *Store, _ topology) {
	it := newItem(t, s, models.Item{StartingPrice: 1000, MinIncrement: 100})
	res := place(t, s, bid(it.ID, "u1", 1000), bid(it.ID, "u2", 1000), bid(it.ID, "u3", 1200), bid(it.ID, "u4", 1250))
	want := []models.Outcome{models.OutcomeAccepted, models.OutcomeTooLow, models.OutcomeAccepted, models.OutcomeTooLow}
	for i, r := range res {
		wantOutcome(t, fmt.Sprintf("bid %d of the group", i), r, want[i])
	}
	if res[2].Event.Seq != 2 || res[2].Event.PreviousBid != 1000 {
		t.Errorf("third bid's event %+v, want seq 2 after 10.00", *res[2].Event)
	}
	if res[3].Item.CurrentBid != 1200 || res[3].Item.HighestBidderID != "u3" {
		t.Errorf("last answer sees %+v, want 12.00 by u3", res[3].Item)
	}
}

func testNotFound(t *testing.T, s *Store, _ topology) {
	res := place(t, s, bid("no_such_item", "u1", 1000), bid("no_such_item", "u2", 2000))
	for i, r := range res {
		wantOutcome(t, fmt.Sprintf("bid %d on unknown item", i), r, models.OutcomeNotFound)
	}
}

func testNotActive(t *testing.T, s *Store, _ topology) {
	sched := newItem(t, s, models.Item{StartsAt: time.Now().Add(time.Hour), EndsAt: time.Now().Add(2 * time.Hour)})
	r := placeOne(t, s, bid(sched.ID, "u1", 5000))
	wantOutcome(t, "scheduled", r, models.OutcomeNotActive)
	if r.Item.Status != models.StatusScheduled {
		t.Errorf("scheduled item answered with status %q", r.Item.Status)
	}

	short := newItem(t, s, models.Item{EndsAt: time.Now().Add(300 * time.Millisecond)})
	testenv.WaitFor(t, 5*time.Second, "the short auction to read as closed", func() error {
		if st := item(t, s, short.ID).Status; st != models.StatusClosed {
			return fmt.Errorf("status %q", st)
		}
		return nil
	})
	r = placeOne(t, s, bid(short.ID, "u1", 5000))
	wantOutcome(t, "past end", r, models.OutcomeNotActive)
	if r.Item.Status != models.StatusClosed {
		t.Errorf("past-end item answered with status %q, want closed", r.Item.Status)
	}

	// Closed by CloseDue: the stored status, not just the clock.
	testenv.WaitFor(t, 5*time.Second, "CloseDue to close the short auction", func() error {
		if _, _, err := s.CloseDue(ctxT(t)); err != nil {
			return err
		}
		if seq := item(t, s, short.ID).Seq; seq != 1 {
			return fmt.Errorf("seq %d, want 1 after the close event", seq)
		}
		return nil
	})
	wantOutcome(t, "closed", placeOne(t, s, bid(short.ID, "u1", 6000)), models.OutcomeNotActive)
}

func testSoftClose(t *testing.T, s *Store, _ topology) {
	ends := time.Now().Add(5 * time.Second)
	it := newItem(t, s, models.Item{EndsAt: ends})
	req := bid(it.ID, "u1", 1000)
	req.SoftClose = time.Minute
	r := placeOne(t, s, req)
	wantOutcome(t, "bid in the soft close window", r, models.OutcomeAccepted)
	if !r.Item.EndsAt.After(ends.Add(50 * time.Second)) {
		t.Errorf("end %v not moved to about a minute from now (was %v)", r.Item.EndsAt, ends)
	}
	if r.Event.EndsAt == nil || !r.Event.EndsAt.Equal(r.Item.EndsAt) {
		t.Errorf("event ends_at %v, want the item's %v", r.Event.EndsAt, r.Item.EndsAt)
	}
	if got := item(t, s, it.ID).EndsAt; !got.Equal(r.Item.EndsAt) {
		t.Errorf("stored end %v, want %v", got, r.Item.EndsAt)
	}
	// Outside the window the end stays.
	far := newItem(t, s, models.Item{EndsAt: time.Now().Add(time.Hour)})
	req = bid(far.ID, "u1", 1000)
	req.SoftClose = time.Minute
	if r := placeOne(t, s, req); !r.Item.EndsAt.Equal(far.EndsAt) {
		t.Errorf("bid an hour before the end moved it from %v to %v", far.EndsAt, r.Item.EndsAt)
	}
	// CloseDue must not close an auction whose end soft close moved.
	if got, _, err := s.CloseDue(ctxT(t)); err != nil || len(got) != 0 {
		t.Errorf("CloseDue = %v, %v; want nothing to close", got, err)
	}
}

func testIdempotency(t *testing.T, s *Store, _ topology) {
	it := newItem(t, s, models.Item{StartingPrice: 1000, MinIncrement: 100})
	req := bid(it.ID, "u1", 1500)
	req.IdempotencyKey = "key-1"
	first := placeOne(t, s, req)
	wantOutcome(t, "first", first, models.OutcomeAccepted)
	if first.Replayed {
		t.Error("first answer marked replayed")
	}
	// Another bid moves the price; the retry must still get the first answer.
	wantOutcome(t, "other bidder", placeOne(t, s, bid(it.ID, "u2", 1600)), models.OutcomeAccepted)

	retry := req
	retry.BidID, retry.EventID = models.NewBidID(), models.NewEventID()
	again := placeOne(t, s, retry)
	wantOutcome(t, "retry", again, models.OutcomeAccepted)
	if !again.Replayed {
		t.Error("retry not marked replayed")
	}
	if again.Item != first.Item || len(again.Entries) != 0 || again.Event == nil || !sameJSON(t, *again.Event, *first.Event) {
		t.Errorf("retry answered %+v\nwant the first answer %+v", again, first)
	}
	if got := item(t, s, it.ID); got.BidCount != 2 || got.Seq != 2 || got.CurrentBid != 1600 {
		t.Errorf("after retry item %+v, want 2 bids, seq 2, 16.00", got)
	}

	conflict := bid(it.ID, "u1", 9000)
	conflict.IdempotencyKey = "key-1"
	r := placeOne(t, s, conflict)
	wantOutcome(t, "same key, other body", r, models.OutcomeIdempotencyConflict)
	if r.Replayed || r.Event != nil {
		t.Errorf("conflict answer %+v, want no replay and no event", r)
	}
	// The key is scoped per user.
	other := bid(it.ID, "u3", 1700)
	other.IdempotencyKey = "key-1"
	wantOutcome(t, "same key, other user", placeOne(t, s, other), models.OutcomeAccepted)

	// A rejection is remembered too, and a retry within one group replays.
	low := bid(it.ID, "u4", 1000)
	low.IdempotencyKey = "key-2"
	res := place(t, s, low, low)
	wantOutcome(t, "too low", res[0], models.OutcomeTooLow)
	wantOutcome(t, "too low, retried in the same group", res[1], models.OutcomeTooLow)
	if res[0].Replayed || !res[1].Replayed || res[1].Item != res[0].Item {
		t.Errorf("group answers %+v and %+v, want the second to replay the first", res[0], res[1])
	}
	// Braces in a client's key must not move the record off the item's
	// cluster slot (the first {...} of a key is its hash tag).
	odd := bid(it.ID, "u5", 1800)
	odd.IdempotencyKey = "{other}:key"
	wantOutcome(t, "key with braces", placeOne(t, s, odd), models.OutcomeAccepted)
	if r := placeOne(t, s, odd); !r.Replayed {
		t.Errorf("retry with a braced key answered %+v, want a replay", r)
	}
	if ttl := s.rdbTTLForTest(t, s.idemKey(it.ID, "u1", "key-1")); ttl < 23*time.Hour {
		t.Errorf("idempotency record kept %v, want at least a day", ttl)
	}
}

func testOutbox(t *testing.T, s *Store, _ topology) {
	ctx := ctxT(t)
	a := newItem(t, s, models.Item{})
	b := newItem(t, s, models.Item{})
	var want []string
	answered := map[string]*models.Event{}
	for i := 0; i < 5; i++ {
		for _, id := range []string{a.ID, b.ID} {
			req := bid(id, "u1", models.Money(1000+100*i))
			req.SoftClose = 2 * time.Hour // moves the end: ends_at must follow
			r := placeOne(t, s, req)
			wantOutcome(t, "bid", r, models.OutcomeAccepted)
			want = append(want, r.Event.EventID)
			answered[r.Event.EventID] = r.Event
		}
	}
	if n, err := s.Backlog(ctx); err != nil || n != 10 {
		t.Fatalf("Backlog = %d, %v; want 10", n, err)
	}
	if got, err := s.Pending(ctx, time.Hour, 100); err != nil || len(got) != 0 {
		t.Errorf("Pending(older than an hour) = %d entries, %v; want none", len(got), err)
	}
	got, err := s.Pending(ctx, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 10 {
		t.Fatalf("Pending = %d entries, want 10", len(got))
	}
	seqs := map[string]uint64{}
	ids := map[string]bool{}
	for i, e := range got {
		ids[e.Event.EventID] = true
		// The answer's event and the outbox's are built separately.
		if a := answered[e.Event.EventID]; a == nil || !sameJSON(t, *a, e.Event) {
			t.Errorf("outbox event %+v differs from the answer's %+v", e.Event, a)
		}
		if i > 0 && compareStreamIDs(got[i-1].ID, e.ID) > 0 {
			t.Errorf("entries not oldest first: %s then %s", got[i-1].ID, e.ID)
		}
		if e.Event.Seq != seqs[e.Event.ItemID]+1 {
			t.Errorf("item %s: seq %d after %d", e.Event.ItemID, e.Event.Seq, seqs[e.Event.ItemID])
		}
		seqs[e.Event.ItemID] = e.Event.Seq
	}
	for _, id := range want {
		if !ids[id] {
			t.Errorf("event %s missing from Pending", id)
		}
	}
	if limited, err := s.Pending(ctx, 0, 3); err != nil || len(limited) != 3 || limited[0].ID != got[0].ID {
		t.Errorf("Pending(max 3) = %v, %v; want the 3 oldest", limited, err)
	}

	if err := s.Ack(ctx, got[:4]...); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Backlog(ctx); err != nil || n != 6 {
		t.Errorf("Backlog after acking 4 = %d, %v; want 6", n, err)
	}
	rest, err := s.Pending(ctx, 0, 100)
	if err != nil || len(rest) != 6 || rest[0].ID != got[4].ID {
		t.Fatalf("Pending after ack = %d entries, %v; want the 6 newest", len(rest), err)
	}
	if err := s.Ack(ctx, rest...); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Backlog(ctx); err != nil || n != 0 {
		t.Errorf("Backlog after acking all = %d, %v; want 0", n, err)
	}
	if hints := s.rdbMembersForTest(t); len(hints) != 0 {
		t.Errorf("hint set still holds %v with every outbox empty", hints)
	}
	// A new bid brings its item back.
	r := placeOne(t, s, bid(a.ID, "u2", 5000))
	if got, err := s.Pending(ctx, 0, 100); err != nil || len(got) != 1 || got[0].Event.EventID != r.Event.EventID {
		t.Errorf("Pending after a new bid = %v, %v; want its event", got, err)
	}
}

func testOrphanedOutbox(t *testing.T, s *Store, top topology) {
	ctx := ctxT(t)
	it := newItem(t, s, models.Item{})
	r := placeOne(t, s, bid(it.ID, "u1", 1000))
	// As if the gateway died between the script and the hint update.
	if err := top.raw.Del(ctx, s.outboxesKey()).Err(); err != nil {
		t.Fatal(err)
	}
	fresh, err := New(s.cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	// An emptied outbox as older versions left it, a stream without entries.
	old := newItem(t, s, models.Item{})
	oid, err := top.raw.XAdd(ctx, &goredis.XAddArgs{Stream: s.outboxKey(old.ID), Values: []any{"e", "{}"}}).Result()
	if err != nil {
		t.Fatal(err)
	}
	if err := top.raw.XDel(ctx, s.outboxKey(old.ID), oid).Err(); err != nil {
		t.Fatal(err)
	}
	got, err := fresh.Pending(ctx, 0, 10)
	if err != nil || len(got) != 1 || got[0].Event.EventID != r.Event.EventID {
		t.Errorf("Pending on a new store = %v, %v; want the orphaned event %s", got, err, r.Event.EventID)
	}
	if n, err := top.raw.Exists(ctx, s.outboxKey(old.ID)).Result(); err != nil || n != 0 {
		t.Errorf("empty outbox still there after the scan (exists %d, %v)", n, err)
	}
	if hints := s.rdbMembersForTest(t); !slices.Equal(hints, []string{it.ID}) {
		t.Errorf("hint set = %v, want only %s", hints, it.ID)
	}
	if err := fresh.Ack(ctx, got...); err != nil {
		t.Fatal(err)
	}
	if n, err := top.raw.Exists(ctx, s.outboxKey(it.ID)).Result(); err != nil || n != 0 {
		t.Errorf("outbox still there after its last entry was acked (exists %d, %v)", n, err)
	}
}

func testCloseDue(t *testing.T, s *Store, _ topology) {
	ends := time.Now().Add(500 * time.Millisecond)
	sold := newItem(t, s, models.Item{ReservePrice: 1500, EndsAt: ends})
	unsold := newItem(t, s, models.Item{ReservePrice: 5000, EndsAt: ends})
	empty := newItem(t, s, models.Item{EndsAt: ends})
	open := newItem(t, s, models.Item{EndsAt: time.Now().Add(time.Hour)})
	placeOne(t, s, bid(sold.ID, "u1", 1000))
	placeOne(t, s, bid(sold.ID, "u2", 2000))
	placeOne(t, s, bid(unsold.ID, "u3", 1000))

	// Several gateways closing at once: each auction closes exactly once.
	var (
		mu     sync.Mutex
		closed []service.OutboxEntry
		wg     sync.WaitGroup
		errs   = make(chan error, 4)
	)
	deadline := time.Now().Add(10 * time.Second)
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				got, _, err := s.CloseDue(ctxT(t))
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				closed = append(closed, got...)
				n := len(closed)
				mu.Unlock()
				if n >= 3 && time.Now().After(ends.Add(time.Second)) {
					return
				}
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("CloseDue: %v", err)
	}
	byItem := map[string]service.OutboxEntry{}
	for _, e := range closed {
		if _, dup := byItem[e.Event.ItemID]; dup {
			t.Errorf("item %s closed twice", e.Event.ItemID)
		}
		byItem[e.Event.ItemID] = e
	}
	if len(byItem) != 3 {
		t.Fatalf("closed %d auctions, want 3: %+v", len(byItem), closed)
	}
	for _, tc := range []struct {
		id     string
		winner string
		amount models.Money
		seq    uint64
	}{
		{sold.ID, "u2", 2000, 3},
		{unsold.ID, "", 1000, 2},
		{empty.ID, "", 0, 1},
	} {
		ev := byItem[tc.id].Event
		if ev.Type != models.EventAuctionClosed || ev.WinnerID != tc.winner || ev.Amount != tc.amount || ev.Seq != tc.seq || ev.EventID == "" {
			t.Errorf("close event of %s = %+v, want winner %q at %v, seq %d", tc.id, ev, tc.winner, tc.amount, tc.seq)
		}
		it := item(t, s, tc.id)
		if it.Status != models.StatusClosed {
			t.Errorf("item %s status %q after close, want closed", tc.id, it.Status)
		}
		if ev.Name != it.Name || ev.StartingPrice != it.StartingPrice || ev.MinIncrement != it.MinIncrement ||
			ev.ReservePrice != it.ReservePrice || ev.StartsAt == nil || !ev.StartsAt.Equal(it.StartsAt) {
			t.Errorf("close event of %s describes %q %v+%v reserve %v from %v; the item is %+v",
				tc.id, ev.Name, ev.StartingPrice, ev.MinIncrement, ev.ReservePrice, ev.StartsAt, it)
		}
	}
	if st := item(t, s, open.ID).Status; st != models.StatusActive {
		t.Errorf("open item status %q, want active", st)
	}
	pending, err := s.Pending(ctxT(t), 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	var closeEvents int
	for _, e := range pending {
		if e.Event.Type == models.EventAuctionClosed {
			closeEvents++
		}
	}
	if closeEvents != 3 {
		t.Errorf("outbox holds %d auction_closed events, want 3", closeEvents)
	}
}

func sameJSON(t testing.TB, a, b any) bool {
	t.Helper()
	ja, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	jb, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return string(ja) == string(jb)
}

// TestStrategiesAgree runs the same history through both strategies, and
// lets one strategy replay what the other decided: gateways with different
// REDIS_STRATEGY can share one Redis.
func TestStrategiesAgree(t *testing.T) {
	for _, top := range topologies(t) {
		t.Run(top.name, func(t *testing.T) {
			t.Parallel()
			lua := newStore(t, top.cfg, StrategyLua)
			cfg := top.cfg
			cfg.Strategy, cfg.KeyPrefix = StrategyOptimistic, lua.cfg.KeyPrefix
			opt, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer opt.Close()

			ends := time.Now().Add(time.Hour)
			history := []struct {
				user   string
				amount models.Money
				key    string
			}{
				{"u1", 900, "a"}, {"u1", 1000, "b"}, {"u2", 1000, ""}, {"u2", 1050, "c"},
				{"u3", 1100, ""}, {"u1", 1000, "b"}, {"u4", 5000, "c"}, {"u4", 2000, "d"},
			}
			var answers [2][]service.BidResult
			for si, s := range []*Store{lua, opt} {
				it := newItem(t, s, models.Item{ID: fmt.Sprintf("agree_%d", si), StartingPrice: 1000, MinIncrement: 100, EndsAt: ends})
				for _, h := range history {
					req := bid(it.ID, h.user, h.amount)
					req.IdempotencyKey = h.key
					answers[si] = append(answers[si], placeOne(t, s, req))
				}
			}
			for i := range history {
				a, b := answers[0][i], answers[1][i]
				a.Item.ID, b.Item.ID = "", ""
				a.Item.StartsAt, b.Item.StartsAt = time.Time{}, time.Time{}
				if a.Outcome != b.Outcome || a.Replayed != b.Replayed || a.Item != b.Item || (a.Event == nil) != (b.Event == nil) {
					t.Errorf("step %d %+v: lua answered %s %+v, optimistic %s %+v", i, history[i],
						a.Outcome, a, b.Outcome, b)
				}
			}

			// Decided by one, replayed by the other.
			it := newItem(t, lua, models.Item{ID: "agree_cross", StartingPrice: 1000, MinIncrement: 100, EndsAt: ends})
			first := bid(it.ID, "u1", 1200)
			first.IdempotencyKey = "k1"
			r1 := placeOne(t, lua, first)
			r2 := placeOne(t, opt, first)
			if !r2.Replayed || r2.Outcome != r1.Outcome || r2.Item != r1.Item || len(r2.Entries) != 0 || !sameJSON(t, r1.Event, r2.Event) {
				t.Errorf("optimistic replay of a lua answer: %+v, want %+v", r2, r1)
			}
			second := bid(it.ID, "u2", 1500)
			second.IdempotencyKey = "k2"
			r3 := placeOne(t, opt, second)
			r4 := placeOne(t, lua, second)
			if !r4.Replayed || r4.Outcome != r3.Outcome || r4.Item != r3.Item || len(r4.Entries) != 0 || !sameJSON(t, r3.Event, r4.Event) {
				t.Errorf("lua replay of an optimistic answer: %+v, want %+v", r4, r3)
			}
			if got := item(t, lua, it.ID); got.Seq != 2 || got.CurrentBid != 1500 {
				t.Errorf("item after cross replays %+v, want seq 2 at 15.00", got)
			}
		})
	}
}

// testScriptCacheFlushed: a failover or restart empties the script cache,
// and the next calls must load the scripts again by themselves.
func testScriptCacheFlushed(t *testing.T, s *Store, top topology) {
	it := newItem(t, s, models.Item{})
	wantOutcome(t, "before", placeOne(t, s, bid(it.ID, "u1", 1000)), models.OutcomeAccepted)
	if err := top.raw.ScriptFlush(ctxT(t)).Err(); err != nil {
		t.Fatal(err)
	}
	wantOutcome(t, "after SCRIPT FLUSH", placeOne(t, s, bid(it.ID, "u2", 1100)), models.OutcomeAccepted)
	if got := item(t, s, it.ID); got.Seq != 2 {
		t.Errorf("seq %d after two bids, want 2", got.Seq)
	}
	if _, _, err := s.CloseDue(ctxT(t)); err != nil {
		t.Errorf("CloseDue after SCRIPT FLUSH: %v", err)
	}
	// The outbox's tidying script was never loaded before this Ack.
	if err := top.raw.ScriptFlush(ctxT(t)).Err(); err != nil {
		t.Fatal(err)
	}
	if err := s.Ack(ctxT(t), outboxOf(t, s, it.ID)...); err != nil {
		t.Errorf("Ack after SCRIPT FLUSH: %v", err)
	}
	if rest := outboxOf(t, s, it.ID); len(rest) != 0 {
		t.Errorf("%d outbox entries left after acking all", len(rest))
	}
}

// outboxOf is the entries waiting in the outbox of item id.
func outboxOf(t testing.TB, s *Store, id string) []service.OutboxEntry {
	t.Helper()
	msgs, err := s.rdb.XRange(ctxT(t), s.outboxKey(id), "-", "+").Result()
	if err != nil {
		t.Fatalf("XRANGE: %v", err)
	}
	entries := make([]service.OutboxEntry, len(msgs))
	for i, m := range msgs {
		if entries[i], err = decodeEntry(m); err != nil {
			t.Fatal(err)
		}
	}
	return entries
}

// testLostEndHint: the end-time hint is gone (its cluster node restarted
// without persistence); a store's first CloseDue finds the auction anyway.
func testLostEndHint(t *testing.T, s *Store, top topology) {
	ctx := ctxT(t)
	it := newItem(t, s, models.Item{EndsAt: time.Now().Add(200 * time.Millisecond)})
	placeOne(t, s, bid(it.ID, "u1", 1000))
	if err := top.raw.Del(ctx, s.endsKey()).Err(); err != nil {
		t.Fatal(err)
	}
	fresh, err := New(s.cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	var closed []service.OutboxEntry
	testenv.WaitFor(t, 5*time.Second, "the fresh store to close the auction", func() error {
		got, _, err := fresh.CloseDue(ctx)
		if err != nil {
			return err
		}
		closed = append(closed, got...)
		if len(closed) == 0 {
			return errors.New("nothing closed yet")
		}
		return nil
	})
	if len(closed) != 1 || closed[0].Event.ItemID != it.ID || closed[0].Event.WinnerID != "u1" {
		t.Errorf("CloseDue = %+v, want %s closed with winner u1", closed, it.ID)
	}
}

// testClosedRetention: a closed item stays in Redis for ClosedRetention,
// then expires (the archive answers for it); with 0 it stays.
func testClosedRetention(t *testing.T, s *Store, _ topology) {
	cfg := s.cfg
	cfg.ClosedRetention = time.Hour
	kept := newStore(t, cfg, cfg.Strategy)
	ends := time.Now().Add(300 * time.Millisecond)
	expiring, forever := newItem(t, kept, models.Item{EndsAt: ends}), newItem(t, s, models.Item{EndsAt: ends})
	for _, tc := range []struct {
		s   *Store
		id  string
		ttl func(time.Duration) bool
	}{
		{kept, expiring.ID, func(d time.Duration) bool { return d > 59*time.Minute && d <= time.Hour }},
		{s, forever.ID, func(d time.Duration) bool { return d == -1 }}, // PTTL's "no expiry"
	} {
		if d := tc.s.rdbTTLForTest(t, tc.s.itemKey(tc.id)); d != -1 {
			t.Errorf("open item %s expires in %v, want no expiry", tc.id, d)
		}
		testenv.WaitFor(t, 10*time.Second, "the closed item to leave redis", func() error {
			closed, _, err := tc.s.CloseDue(ctxT(t))
			if err != nil {
				return err
			}
			if !slices.ContainsFunc(closed, func(e service.OutboxEntry) bool { return e.Event.ItemID == tc.id }) {
				return fmt.Errorf("item %s not closed yet", tc.id)
			}
			return nil
		})
		if d := tc.s.rdbTTLForTest(t, tc.s.itemKey(tc.id)); !tc.ttl(d) {
			t.Errorf("closed item %s (retention %v) expires in %v", tc.id, tc.s.cfg.ClosedRetention, d)
		}
	}
}

// One user may open only so many idempotency records on an item: past the
// cap a bid with a new key is refused undecided and leaves no record, while
// retries of recorded keys and bids without a key are answered as before.
func TestIdempotencyKeysAreBoundedPerUser(t *testing.T) {
	t.Parallel()
	r := testenv.Redis(t)
	cfg := DefaultConfig()
	cfg.Addrs = []string{r.Addr()}
	for _, strategy := range strategies {
		t.Run(strategy, func(t *testing.T) {
			t.Parallel()
			s := newStore(t, cfg, strategy)
			newItem(t, s, models.Item{ID: "keys", Name: "Lot", StartingPrice: 1000, MinIncrement: 100, EndsAt: time.Now().Add(time.Hour)})
			keyed := func(user string, amount models.Money, key string) service.BidRequest {
				req := bid("keys", user, amount)
				req.IdempotencyKey, req.MaxIdempotencyKeys = key, 2
				return req
			}
			first := placeOne(t, s, keyed("u1", 1000, "a"))
			if first.Outcome != models.OutcomeAccepted || placeOne(t, s, keyed("u1", 1100, "b")).Outcome != models.OutcomeAccepted {
				t.Fatal("the first two keys were not taken")
			}
			if got := placeOne(t, s, keyed("u1", 1200, "c")); got.Outcome != models.OutcomeTooManyKeys || got.Item.Seq != 2 {
				t.Fatalf("a third key: %v at seq %d, want too many keys and nothing decided", got.Outcome, got.Item.Seq)
			}
			if n, err := s.rdb.Exists(ctxT(t), s.idemKey("keys", "u1", "c")).Result(); err != nil || n != 0 {
				t.Fatalf("the refused key left a record (%d, %v)", n, err)
			}
			if again := placeOne(t, s, keyed("u1", 1000, "a")); !again.Replayed || again.Outcome != models.OutcomeAccepted {
				t.Fatalf("a recorded key's retry: %+v", again)
			}
			if other := placeOne(t, s, keyed("u2", 1200, "c")); other.Outcome != models.OutcomeAccepted {
				t.Fatalf("another user's key: %v", other.Outcome)
			}
			if plain := placeOne(t, s, bid("keys", "u1", 1300)); plain.Outcome != models.OutcomeAccepted {
				t.Fatalf("a bid without a key: %v", plain.Outcome)
			}
		})
	}
}
