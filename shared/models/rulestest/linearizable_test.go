package rulestest

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/bidding-platform/shared/models"
)

// recorder keeps what the checker reports instead of failing the test.
type recorder struct {
	testing.TB
	errs []string
}

func (r *recorder) Helper() {}

func (r *recorder) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

func TestCheckLinearizable(t *testing.T) {
	t.Parallel()
	t0 := time.Now()
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	// Two accepted bids, 5.00 then 7.00, one after the other.
	a1 := Op{UserID: "a", Amount: 500, Start: at(0), End: at(10), Status: 200, Current: 500, EventID: "e1"}
	a2 := Op{UserID: "b", Amount: 700, Start: at(20), End: at(30), Status: 200, Current: 700, EventID: "e2"}
	e1 := models.Event{Type: models.EventBid, EventID: "e1", Seq: 1, Amount: 500, UserID: "a"}
	e2 := models.Event{Type: models.EventBid, EventID: "e2", Seq: 2, Amount: 700, PreviousBid: 500, UserID: "b", PreviousBidderID: "a"}
	// Rejections during a2's request may name either price; after it,
	// only 7.00.
	during := Op{UserID: "c", Amount: 550, Start: at(15), End: at(25), Status: 409, Current: 500}
	stale := Op{UserID: "c", Amount: 550, Start: at(40), End: at(50), Status: 409, Current: 500}
	late := Op{UserID: "c", Amount: 600, Start: at(40), End: at(50), Status: 409, Current: 700}
	// A bid whose outcome was unknown, and one answered 503 outright.
	maybe := Op{UserID: "d", Amount: 900, Start: at(40), End: at(60), Status: 503, MaybeApplied: true}
	e3 := models.Event{Type: models.EventBid, EventID: "e3", Seq: 3, Amount: 900, PreviousBid: 700, UserID: "d", PreviousBidderID: "b"}
	refused := Op{UserID: "f", Amount: 1000, Start: at(70), End: at(80), Status: 503}
	// a's maximum of 9.00 answers b's 5.00 at once.
	amax := Op{UserID: "a", Amount: 900, Max: true, Start: at(0), End: at(10), Status: 200, Current: 100, EventID: "m1"}
	b5 := Op{UserID: "b", Amount: 500, Start: at(20), End: at(30), Status: 200, Current: 600, EventID: "m2"}
	m1 := models.Event{Type: models.EventBid, EventID: "m1", Seq: 1, Amount: 100, UserID: "a"}
	m2 := models.Event{Type: models.EventBid, EventID: "m2", Seq: 2, Amount: 500, PreviousBid: 100, UserID: "b", PreviousBidderID: "a", AutoAnswered: true}
	m3 := models.Event{Type: models.EventBid, EventID: "m2-auto", Seq: 3, Amount: 600, PreviousBid: 500, UserID: "a", PreviousBidderID: "b", Auto: true}
	unanswered, misnamed := m2, m3
	unanswered.AutoAnswered = false
	misnamed.PreviousBidderID = "a"
	e3refused := models.Event{Type: models.EventBid, EventID: "e3", Seq: 3, Amount: 1000, PreviousBid: 700, UserID: "f", PreviousBidderID: "b"}

	for _, c := range []struct {
		name   string
		h      History
		want   Result
		errors []string // substrings, one per expected error; none: passes
	}{
		{name: "linearizable", h: History{Ops: []Op{a1, during, a2, late}, Events: []models.Event{e1, e2}},
			want: Result{Accepted: 2, Rejected: 2}},
		{name: "stale rejection", h: History{Ops: []Op{a1, a2, stale}, Events: []models.Event{e1, e2}},
			errors: []string{"named current_bid 5.00, which was not current"}},
		{name: "stale rejection across gateways", h: History{Ops: []Op{a1, a2, stale}, Events: []models.Event{e1, e2}, StaleRejections: true},
			want: Result{Accepted: 2, Rejected: 1, Stale: 1}},
		{name: "rejection of a bid that would win", h: History{Ops: []Op{a1, a2, {UserID: "c", Amount: 800, Start: at(40), End: at(50), Status: 409, Current: 700}},
			Events: []models.Event{e1, e2}, StaleRejections: true},
			errors: []string{"rejection of 8.00"}},
		{name: "unknown outcome applied", h: History{Ops: []Op{a1, a2, maybe}, Events: []models.Event{e1, e2, e3}},
			want: Result{Accepted: 2, Applied: 1}},
		{name: "unknown outcome not applied", h: History{Ops: []Op{a1, a2, maybe}, Events: []models.Event{e1, e2}},
			want: Result{Accepted: 2, Unavailable: 1}},
		{name: "503 applied", h: History{Ops: []Op{a1, a2, refused}, Events: []models.Event{e1, e2, e3refused}},
			errors: []string{"was answered 503, which promises it was not applied"}},
		{name: "accepted bid lost", h: History{Ops: []Op{a1, a2}, Events: []models.Event{e1}},
			errors: []string{"its event is not in the log"}},
		{name: "event nobody was told of", h: History{Ops: []Op{a1}, Events: []models.Event{e1, e2}},
			errors: []string{"never answered as accepted"}},
		{name: "seq gap", h: History{Ops: []Op{a1, a2}, Events: []models.Event{e1, {Type: models.EventBid, EventID: "e2", Seq: 3, Amount: 700, PreviousBid: 500, UserID: "b", PreviousBidderID: "a"}}},
			errors: []string{"has seq 3"}},
		{name: "event twice", h: History{Ops: []Op{a1}, Events: []models.Event{e1, {Type: models.EventBid, EventID: "e1", Seq: 2, Amount: 500, UserID: "a", PreviousBidderID: "a"}}},
			errors: []string{"twice in the log", "rise of at least"}},
		{name: "price rewound", h: History{Ops: []Op{a1, a2, {UserID: "g", Amount: 600, Start: at(40), End: at(50), Status: 200, EventID: "e3"}},
			Events: []models.Event{e1, e2, {Type: models.EventBid, EventID: "e3", Seq: 3, Amount: 600, PreviousBid: 500, UserID: "g", PreviousBidderID: "b"}}},
			errors: []string{"6.00 after 7.00"}},
		{name: "automatic answer", h: History{Ops: []Op{amax, b5}, Events: []models.Event{m1, m2, m3}},
			want: Result{Accepted: 2}},
		{name: "answered bid not marked", h: History{Ops: []Op{amax, b5}, Events: []models.Event{m1, unanswered, m3}},
			errors: []string{"seq 2: auto_answered false, want true"}},
		{name: "wrong previous bidder", h: History{Ops: []Op{amax, b5}, Events: []models.Event{m1, m2, misnamed}},
			errors: []string{`seq 3: previous_bidder_id "a", want "b"`}},
		{name: "answer other than 200, 409 or 503", h: History{Ops: []Op{a1, {UserID: "h", Amount: 600, Start: at(40), End: at(50), Status: 500}}, Events: []models.Event{e1}},
			errors: []string{"answered 500"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			c.h.StartingPrice, c.h.MinIncrement = 100, 100
			r := &recorder{TB: t}
			got := CheckLinearizable(r, c.h)
			if len(r.errs) != len(c.errors) {
				t.Fatalf("errors %q, want %d matching %q", r.errs, len(c.errors), c.errors)
			}
			for i, want := range c.errors {
				if !strings.Contains(r.errs[i], want) {
					t.Errorf("error %d = %q, want it to contain %q", i, r.errs[i], want)
				}
			}
			if len(c.errors) == 0 && got != c.want {
				t.Errorf("result %+v, want %+v", got, c.want)
			}
		})
	}
}

// Final derives the leader and price from placed bids' values alone.
func TestFinal(t *testing.T) {
	t.Parallel()
	ev := func(id string, seq uint64) models.Event { return models.Event{EventID: id, Seq: seq} }
	placed := func(user string, amount models.Money, max bool, eventID string) Op {
		return Op{UserID: user, Amount: amount, Max: max, Status: http.StatusOK, EventID: eventID}
	}
	tests := []struct {
		name   string
		ops    []Op
		events []models.Event
		leader string
		price  models.Money
		ok     bool
	}{
		{"nothing placed", []Op{{UserID: "a", Amount: 500, Status: http.StatusConflict}}, nil, "", 0, false},
		{"plain bids: the highest at its amount", []Op{placed("a", 500, false, "e1"), placed("b", 700, false, "e2")}, []models.Event{ev("e1", 1), ev("e2", 2)}, "b", 700, true},
		{"a lone maximum: the starting price", []Op{placed("a", 900, true, "e1")}, []models.Event{ev("e1", 1)}, "a", 100, true},
		{"a maximum over a plain bid: one increment above it", []Op{placed("a", 900, true, "e1"), placed("b", 500, false, "e2")}, []models.Event{ev("e1", 1), ev("e2", 2)}, "a", 600, true},
		{"equal maxima: the earlier", []Op{placed("b", 900, true, "e2"), placed("a", 900, true, "e1")}, []models.Event{ev("e1", 1), ev("e2", 2)}, "a", 900, true},
		{"the leader's own plain bid above the cap", []Op{placed("a", 900, true, "e1"), placed("b", 300, false, "e2"), placed("a", 800, false, "e4")}, []models.Event{ev("e1", 1), ev("e2", 2), ev("e4", 4)}, "a", 800, true},
		{"a raise in place loses a tie to an earlier event", []Op{placed("a", 900, true, ""), placed("b", 900, true, "e1")}, []models.Event{ev("e1", 1)}, "b", 900, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			leader, price, ok := Final(tc.ops, tc.events, 100, 100)
			if leader != tc.leader || price != tc.price || ok != tc.ok {
				t.Errorf("Final = %s at %v (%v), want %s at %v (%v)", leader, price, ok, tc.leader, tc.price, tc.ok)
			}
		})
	}
}
