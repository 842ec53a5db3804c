package chaos

import (
	"fmt"
	"strings"
	"time"

	"github.com/bidding-platform/shared/models"
	"github.com/bidding-platform/shared/models/rulestest"
)

// Phase is one row of the report: a fault from the kill to the end of the
// steady load after its recovery, or the baseline before the first fault.
type Phase struct {
	Name string
	// Start and End bound the phase; a bid belongs to the phase its
	// answer (or transport error) came in, so that bids in flight at a
	// kill count with the fault. FaultStart (the kill) and FaultEnd (every
	// component healthy again) bound the fault itself.
	Start, FaultStart, FaultEnd, End time.Time

	Bids, OK, Rejected, Unavailable int
	// NoAnswer bids got a transport error instead of an answer.
	NoAnswer int
	// Unknown bids had an outcome their client could not know (a 503
	// saying it may have been accepted, or no answer from a gateway being
	// killed); Applied of them turned out to be in the log.
	Unknown, Applied int
	// Lost bids were answered 200 and are missing from JetStream or the
	// archive; Duplicated ones are there twice, or share their seq with
	// another event.
	Lost, Duplicated int
	// Other answers are wrong whatever the fault: a status other than 200,
	// 409 or 503, or no answer from a gateway nobody killed.
	Other int
	// Longest is the slowest answer among bids in flight during the fault
	// (during the whole phase for the baseline).
	Longest time.Duration
}

// ItemResult is one item's state at the end.
type ItemResult struct {
	ID string
	// Events is the number of seqs the log and the archive hold, Final
	// the last event's amount, Highest the highest accepted amount.
	Events          int
	Final, Highest  models.Money
	Archived        int
	ViewersCaughtUp int
	// Reordered events were stored in JetStream after one with a higher
	// seq, at most MaxLag seqs behind it.
	Reordered int
	MaxLag    uint64
}

// Report is what one run found.
type Report struct {
	Started, Finished time.Time
	Config            Config
	Phases            []*Phase
	Items             []ItemResult
	// Stored counts distinct events in JetStream and rows in the
	// archive's bids table; DeadLetters the archive's dead letters.
	InStream, Archived, DeadLetters int
	Viewers, Reconnects, Missed     int
	Linearizability                 rulestest.Result
	// Problems are the broken promises; a run without any passes.
	Problems []string
	// Logs are the ends of the services' logs when something went wrong.
	Logs string
}

func (r *Report) problem(format string, args ...any) {
	r.Problems = append(r.Problems, fmt.Sprintf(format, args...))
}

// phaseOf is the phase that holds moment t.
func (r *Report) phaseOf(t time.Time) *Phase {
	for i := len(r.Phases) - 1; i >= 0; i-- {
		if !t.Before(r.Phases[i].Start) {
			return r.Phases[i]
		}
	}
	if len(r.Phases) > 0 {
		return r.Phases[0]
	}
	return nil
}

// Markdown is the report as printed and written to report.md.
func (r *Report) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "## Fault-and-reconcile run, %s (%s)\n\n", r.Started.UTC().Format("2006-01-02 15:04 MST"), r.Finished.Sub(r.Started).Round(time.Second))
	c := r.Config
	fmt.Fprintf(&b, "%d bidders, one bid per %v each at most, on %d items through two gateways; %d viewers (one per item on each of two broadcast nodes). "+
		"Steady load %v before the first fault and after each recovery; each component stays down %v.\n\n",
		c.Bidders, c.BidInterval, c.Items, r.Viewers, c.Steady, c.Down)
	b.WriteString("| fault | down for | bids | 200 | 409 | 503 | no answer | unknown outcome (applied) | lost | duplicated | other | longest answer during the fault |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	var t Phase
	for _, p := range r.Phases {
		window := "-"
		if !p.FaultStart.IsZero() {
			window = fmtDuration(p.FaultEnd.Sub(p.FaultStart))
		}
		fmt.Fprintf(&b, "| %s | %s | %d | %d | %d | %d | %d | %d (%d) | %d | %d | %d | %s |\n",
			p.Name, window, p.Bids, p.OK, p.Rejected, p.Unavailable, p.NoAnswer, p.Unknown, p.Applied, p.Lost, p.Duplicated, p.Other, fmtDuration(p.Longest))
		t.Bids += p.Bids
		t.OK += p.OK
		t.Rejected += p.Rejected
		t.Unavailable += p.Unavailable
		t.NoAnswer += p.NoAnswer
		t.Unknown += p.Unknown
		t.Applied += p.Applied
		t.Lost += p.Lost
		t.Duplicated += p.Duplicated
		t.Other += p.Other
		t.Longest = max(t.Longest, p.Longest)
	}
	fmt.Fprintf(&b, "| **total** | | %d | %d | %d | %d | %d | %d (%d) | %d | %d | %d | %s |\n\n",
		t.Bids, t.OK, t.Rejected, t.Unavailable, t.NoAnswer, t.Unknown, t.Applied, t.Lost, t.Duplicated, t.Other, fmtDuration(t.Longest))

	fmt.Fprintf(&b, "- Stores: %d distinct events in JetStream, %d rows in the archive's `bids`, %d dead letters.\n", r.InStream, r.Archived, r.DeadLetters)
	fmt.Fprintf(&b, "- Viewers: %d reconnections, %d `missed` announcements (each followed by a reconnection with `since_seq`).\n", r.Reconnects, r.Missed)
	fmt.Fprintf(&b, "- Linearizability: %s.\n", r.Linearizability)
	for _, it := range r.Items {
		fmt.Fprintf(&b, "- `%s`: seqs 1..%d, %d archived, final price %s (highest accepted %s), %d of 2 viewers caught up; "+
			"%d events stored in JetStream after a higher seq (at most %d behind).\n",
			it.ID, it.Events, it.Archived, it.Final, it.Highest, it.ViewersCaughtUp, it.Reordered, it.MaxLag)
	}
	b.WriteString("\n")
	if len(r.Problems) == 0 {
		b.WriteString("No problems: every bid answered 200 is in JetStream and the archive exactly once and was seen by the item's viewers, " +
			"each item's seqs run 1..N, no bid answered 503 or left unanswered was applied unless its outcome was announced as unknown, " +
			"and every history passed the linearizability checker.\n")
		return b.String()
	}
	fmt.Fprintf(&b, "### %d problems\n\n", len(r.Problems))
	for i, p := range r.Problems {
		if i == 50 {
			fmt.Fprintf(&b, "- ... and %d more\n", len(r.Problems)-i)
			break
		}
		fmt.Fprintf(&b, "- %s\n", p)
	}
	return b.String()
}

func fmtDuration(d time.Duration) string {
	switch {
	case d == 0:
		return "-"
	case d < time.Second:
		return fmt.Sprintf("%d ms", d.Milliseconds())
	default:
		return fmt.Sprintf("%.1f s", d.Seconds())
	}
}
