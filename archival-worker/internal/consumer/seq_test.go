package consumer_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bidding-platform/shared/models"
	"github.com/bidding-platform/shared/testenv"
)

// Two different events with one item and seq: the archive keeps the first
// and dead-letters the other with a reason naming both, whether they meet in
// one batch or the second comes long after the first. A second copy of an
// archived event is still just a duplicate, and the rest of the stream
// flows.
func TestDifferentEventWithATakenSeqIsDeadLettered(t *testing.T) {
	t.Parallel()
	a := newArchive(t)
	at := time.Now().UTC()
	first := bidAt("lot", 1, at)
	rival := bidAt("lot", 1, at)
	rival.EventID, rival.BidID, rival.Amount = "evt_lot_rival1", "bid_rival1", 5000
	a.publish(t, first, rival, bidAt("lot", 2, at), first) // the last a republished copy
	a.run(t, a.store)
	testenv.WaitFor(t, time.Minute, "first events archived", a.drained)

	late := bidAt("lot", 2, at)
	late.EventID, late.BidID = "evt_lot_rival2", "bid_rival2"
	a.publish(t, late, bidAt("lot", 3, at))
	testenv.WaitFor(t, time.Minute, "later events archived", a.drained)

	var archived []string
	a.query(t, "SELECT event_id FROM bids ORDER BY seq", func(rows pgx.Rows) error {
		var err error
		archived, err = pgx.CollectRows(rows, pgx.RowTo[string])
		return err
	})
	if got, want := strings.Join(archived, ","), "evt_lot_1,evt_lot_2,evt_lot_3"; got != want {
		t.Errorf("archived bids = %s, want %s", got, want)
	}
	type letter struct{ subject, reason, payload string }
	var dead []letter
	a.query(t, "SELECT subject, reason, convert_from(payload, 'UTF8') FROM dead_letters ORDER BY stream_seq", func(rows pgx.Rows) error {
		for rows.Next() {
			var l letter
			if err := rows.Scan(&l.subject, &l.reason, &l.payload); err != nil {
				return err
			}
			dead = append(dead, l)
		}
		return rows.Err()
	})
	if len(dead) != 2 {
		t.Fatalf("dead letters = %+v, want the two rivals", dead)
	}
	for i, rv := range []models.Event{rival, late} {
		d := dead[i]
		e, err := models.DecodeEvent([]byte(d.payload))
		if err != nil || e.EventID != rv.EventID || d.subject != "bids.lot" {
			t.Errorf("dead letter %d holds %s on %s (%v), want %s on bids.lot", i, d.payload, d.subject, err, rv.EventID)
		}
		holder := fmt.Sprintf("evt_lot_%d", rv.Seq)
		for _, want := range []string{"duplicate seq", fmt.Sprintf("seq %d", rv.Seq), holder, rv.EventID} {
			if !strings.Contains(d.reason, want) {
				t.Errorf("dead letter %d reason %q does not say %q", i, d.reason, want)
			}
		}
	}
	for name, want := range map[string]float64{
		"archival_dead_letters_total":       2,
		"archival_duplicates_skipped_total": 1,
		"archival_rows_written_total":       3,
	} {
		if got := value(t, a, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
}
