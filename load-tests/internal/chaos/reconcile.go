package chaos

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bidding-platform/shared/models"
	"github.com/bidding-platform/shared/models/rulestest"
	"github.com/bidding-platform/shared/testenv"
)

// stored is an item's events as the stores hold them.
type stored struct {
	// stream is every message on the item's subject, in stream order,
	// repeats included; archive is the archive's rows by event id.
	stream  []models.Event
	archive map[string]models.Event
}

// reconcile waits for the system to settle after the load stopped, then
// checks every bid against the stores and the viewers, and fills the
// report's tallies.
func (r *run) reconcile(ctx context.Context, tb testing.TB) {
	tb.Helper()
	rep, cfg := r.rep, r.cfg
	bids := r.load.snapshot()

	// Accepted events still in a Redis outbox (the relay's work after a
	// fault) are not in JetStream yet.
	if err := waitFor(ctx, cfg.Deadline, r.outboxesEmpty); err != nil {
		rep.problem("the gateways' outboxes did not empty: %v", err)
	}
	r.logf("outboxes empty")
	data := map[string]*stored{}
	err := waitFor(ctx, cfg.Deadline, func() error {
		for _, item := range r.load.items {
			evs, err := testenv.StreamEvents(ctx, r.js, item)
			if err != nil {
				return fmt.Errorf("read %s from JetStream: %w", item, err)
			}
			data[item] = &stored{stream: evs}
		}
		return missing(bids, data, func(s *stored, id string) bool {
			return slices.ContainsFunc(s.stream, func(e models.Event) bool { return e.EventID == id })
		}, "JetStream")
	})
	if err != nil {
		rep.problem("%v", err)
	}
	r.logf("JetStream read")
	conn, err := pgx.Connect(ctx, r.st.archiveURL)
	if err != nil {
		tb.Fatalf("connect to the archive: %v", err)
	}
	defer conn.Close(context.Background())
	// The archive catches up with the stream: every event the stream
	// holds, and then every accepted one.
	err = waitFor(ctx, cfg.Deadline, func() error {
		rows, err := readArchive(ctx, conn)
		if err != nil {
			return err
		}
		for _, item := range r.load.items {
			data[item].archive = rows[item]
			for _, e := range data[item].stream {
				if _, ok := rows[item][e.EventID]; !ok {
					return fmt.Errorf("event %s (%s seq %d) not archived yet", e.EventID, item, e.Seq)
				}
			}
		}
		return missing(bids, data, func(s *stored, id string) bool { _, ok := s.archive[id]; return ok }, "the archive")
	})
	if err != nil {
		rep.problem("%v", err)
	}
	r.logf("archive read")
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM dead_letters").Scan(&rep.DeadLetters); err != nil {
		rep.problem("count dead letters: %v", err)
	}
	if rep.DeadLetters > 0 {
		rows, err := conn.Query(ctx, "SELECT reason FROM dead_letters ORDER BY id LIMIT 10")
		if err == nil {
			reasons, _ := pgx.CollectRows(rows, pgx.RowTo[string])
			rep.problem("%d dead letters in the archive: %s", rep.DeadLetters, strings.Join(reasons, "; "))
		}
	}
	err = waitFor(ctx, cfg.Deadline, func() error {
		for _, v := range r.viewers {
			if n := lastSeq(data[v.item]); v.lastSeq() < n {
				return fmt.Errorf("viewer of %s on %s holds seqs 1..%d of %d", v.item, v.node.name, v.lastSeq(), n)
			}
		}
		return nil
	})
	if err != nil {
		rep.problem("viewers did not catch up: %v", err)
	}
	r.logf("viewers caught up")

	for _, p := range rep.Phases {
		if p.End.IsZero() {
			p.End = time.Now()
		}
	}
	byItem := map[string][]*bid{}
	for _, b := range bids {
		byItem[b.item] = append(byItem[b.item], b)
		r.tally(b)
	}
	for _, item := range r.load.items {
		r.reconcileItem(ctx, tb, item, byItem[item], data[item])
	}
	for _, v := range r.viewers {
		v.mu.Lock()
		rep.Reconnects += v.connects - 1
		rep.Missed += v.missed
		rep.Problems = append(rep.Problems, v.problems...)
		if n := v.nproblems - len(v.problems); n > 0 {
			rep.problem("viewer of %s on %s: %d more problems like these", v.item, v.node.name, n)
		}
		v.mu.Unlock()
	}
	rep.Viewers = len(r.viewers)
}

// missing names the first bid answered 200 whose event is not in a store.
func missing(bids []*bid, data map[string]*stored, has func(*stored, string) bool, store string) error {
	n, first := 0, ""
	for _, b := range bids {
		if b.Status == http.StatusOK && !has(data[b.item], b.EventID) {
			if n == 0 {
				first = fmt.Sprintf("%s by %s on %s (event %s)", b.Amount, b.UserID, b.item, b.EventID)
			}
			n++
		}
	}
	if n > 0 {
		return fmt.Errorf("%d accepted bids not in %s, the first %s", n, store, first)
	}
	return nil
}

// tally counts a bid in its phase's answers.
func (r *run) tally(b *bid) {
	p := r.rep.phaseOf(b.answeredAt())
	if p == nil {
		return
	}
	p.Bids++
	switch {
	case b.Status == http.StatusOK:
		p.OK++
	case b.Status == http.StatusConflict:
		p.Rejected++
	case b.Status == http.StatusServiceUnavailable:
		p.Unavailable++
	case b.Status != 0:
		p.Other++
		r.rep.problem("%s: bid %s by %s on %s through %s answered %d: %s", p.Name, b.Amount, b.UserID, b.item, r.st.gateways[b.gateway].name, b.Status, b.message)
	case !r.inOutage(b):
		p.NoAnswer++
		p.Other++
		r.rep.problem("%s: bid %s by %s on %s through %s got no answer, and nobody killed that gateway: %s", p.Name, b.Amount, b.UserID, b.item, r.st.gateways[b.gateway].name, b.err)
	default:
		p.NoAnswer++
	}
	if b.MaybeApplied {
		p.Unknown++
	}
	if b.answered() && (p.FaultStart.IsZero() || (b.Start.Before(p.FaultEnd) && !b.answeredAt().Before(p.FaultStart))) {
		p.Longest = max(p.Longest, b.took)
	}
}

// inOutage says whether a bid was in flight to its gateway while that was
// being killed and restarted.
func (r *run) inOutage(b *bid) bool {
	end := b.answeredAt()
	for _, o := range r.outages[b.gateway] {
		if !end.Before(o[0]) && !b.Start.After(o[1]) {
			return true
		}
	}
	return false
}

// reconcileItem checks one item's bids against its stored events and its
// viewers, and runs the linearizability checker on its history.
func (r *run) reconcileItem(ctx context.Context, tb testing.TB, item string, bids []*bid, s *stored) {
	tb.Helper()
	rep := r.rep
	// Every event either store holds, by seq: one each, 1..N.
	bySeq := map[uint64][]models.Event{}
	add := func(e models.Event) {
		if !slices.ContainsFunc(bySeq[e.Seq], func(o models.Event) bool { return o.EventID == e.EventID }) {
			bySeq[e.Seq] = append(bySeq[e.Seq], e)
		}
	}
	inStream := map[string]int{}
	for _, e := range s.stream {
		inStream[e.EventID]++
		add(e)
	}
	for _, e := range s.archive {
		add(e)
	}
	n := lastSeq(s)
	var events []models.Event
	dupSeq := map[string]bool{}
	for seq := uint64(1); seq <= n; seq++ {
		evs := bySeq[seq]
		switch {
		case len(evs) == 0:
			rep.problem("%s: no event holds seq %d of 1..%d", item, seq, n)
		case len(evs) > 1:
			ids := make([]string, len(evs))
			for i, e := range evs {
				ids[i] = e.EventID
				dupSeq[e.EventID] = true
			}
			rep.problem("%s: seq %d was issued %d times: events %s", item, seq, len(evs), strings.Join(ids, ", "))
		}
		events = append(events, evs...)
	}
	for id, c := range inStream {
		if c > 1 {
			rep.problem("%s: event %s is %d times in JetStream", item, id, c)
		}
		if _, ok := s.archive[id]; !ok {
			rep.problem("%s: event %s is in JetStream but not in the archive", item, id)
		}
	}
	for id := range s.archive {
		if inStream[id] == 0 {
			rep.problem("%s: event %s is archived but not in JetStream", item, id)
		}
	}
	rep.InStream += len(inStream)
	rep.Archived += len(s.archive)

	// Each bid's fate, in its phase's row.
	type key struct {
		user   string
		amount models.Money
	}
	byBid := map[key]models.Event{}
	for _, evs := range bySeq {
		for _, e := range evs {
			byBid[key{e.UserID, e.Amount}] = e
		}
	}
	highest := models.Money(0)
	for _, b := range bids {
		p := rep.phaseOf(b.answeredAt())
		var id string
		switch {
		case b.Status == http.StatusOK:
			id = b.EventID
			highest = max(highest, b.Amount)
			if _, ok := s.archive[id]; inStream[id] == 0 || !ok {
				p.Lost++
				rep.problem("%s: bid %s by %s on %s was answered 200 (event %s) and is missing: %d times in JetStream, archived %v",
					p.Name, b.Amount, b.UserID, item, id, inStream[id], ok)
			}
		case b.MaybeApplied:
			e, ok := byBid[key{b.UserID, b.Amount}]
			if !ok {
				continue
			}
			id = e.EventID
			p.Applied++
			highest = max(highest, b.Amount)
		default:
			continue
		}
		if inStream[id] > 1 || dupSeq[id] {
			p.Duplicated++
		}
	}

	// What the viewers saw.
	res := ItemResult{ID: item, Events: int(n), Highest: highest, Archived: len(s.archive)}
	// How far out of seq order the stream stored the events: readers of
	// its history must cope with it.
	var top uint64
	for _, e := range s.stream {
		if e.Seq < top {
			res.Reordered++
			res.MaxLag = max(res.MaxLag, top-e.Seq)
		}
		top = max(top, e.Seq)
	}
	if len(events) > 0 {
		res.Final = events[len(events)-1].Amount
	}
	var vs []*viewer
	for _, v := range r.viewers {
		if v.item == item {
			vs = append(vs, v)
			if v.lastSeq() >= n {
				res.ViewersCaughtUp++
			}
		}
	}
	for seq := uint64(1); seq <= n; seq++ {
		if len(bySeq[seq]) != 1 {
			continue
		}
		id := bySeq[seq][0].EventID
		seen := 0
		for _, v := range vs {
			switch got := v.seen(seq); got {
			case id:
				seen++
			case "":
			default:
				rep.problem("%s: the viewer on %s got event %s as seq %d, which the stores hold as %s", item, v.node.name, got, seq, id)
			}
		}
		if seen == 0 {
			rep.problem("%s: no viewer saw seq %d (event %s)", item, seq, id)
		}
	}
	rep.Items = append(rep.Items, res)

	// The item as each gateway now answers for it.
	for _, g := range r.st.gateways {
		it, err := getItem(ctx, g, item)
		switch {
		case err != nil:
			rep.problem("%s: read it from %s: %v", item, g.name, err)
		case it.Seq != n || it.BidCount != int64(n) || it.CurrentBid != res.Final || it.CurrentBid != highest:
			rep.problem("%s: %s answers price %s, %d bids, seq %d; the stores hold %d events ending at %s, and the highest accepted bid is %s",
				item, g.name, it.CurrentBid, it.BidCount, it.Seq, n, res.Final, highest)
		}
	}

	h := rulestest.History{Events: events, StartingPrice: startingPrice, MinIncrement: minIncrement, StaleRejections: true}
	// A bid refused at connect has status 0 and is not MaybeApplied: the
	// gateway never saw it, so the checker holds it to a 503's promise.
	for _, b := range bids {
		h.Ops = append(h.Ops, b.Op)
	}
	rec := &recorder{TB: tb, prefix: item + ": linearizability: ", rep: rep}
	lr := rulestest.CheckLinearizable(rec, h)
	l := &rep.Linearizability
	l.Accepted += lr.Accepted
	l.Applied += lr.Applied
	l.Rejected += lr.Rejected
	l.Unavailable += lr.Unavailable
	l.Stale += lr.Stale
}

// recorder turns the checker's errors into the report's problems.
type recorder struct {
	testing.TB
	prefix string
	rep    *Report
}

func (r *recorder) Helper() {}

func (r *recorder) Errorf(format string, args ...any) {
	r.rep.problem("%s%s", r.prefix, fmt.Sprintf(format, args...))
}

func lastSeq(s *stored) uint64 {
	var n uint64
	if s == nil {
		return 0
	}
	for _, e := range s.stream {
		n = max(n, e.Seq)
	}
	for _, e := range s.archive {
		n = max(n, e.Seq)
	}
	return n
}

func (r *run) outboxesEmpty() error {
	for _, g := range r.st.gateways {
		v, err := metric(g, "gateway_outbox_backlog")
		if err != nil {
			return err
		}
		if v != 0 {
			return fmt.Errorf("%s: %v events in the outbox", g.name, v)
		}
	}
	return nil
}

// metric reads one unlabelled metric from a service's /metrics.
func metric(s *service, name string) (float64, error) {
	resp, err := probeClient.Get(s.url() + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			return strconv.ParseFloat(v, 64)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("%s: no %s in /metrics", s.name, name)
}

func getItem(ctx context.Context, g *service, id string) (models.Item, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, g.url()+"/api/v1/items/"+id, nil)
	if err != nil {
		return models.Item{}, err
	}
	resp, err := probeClient.Do(req)
	if err != nil {
		return models.Item{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return models.Item{}, fmt.Errorf("status %d", resp.StatusCode)
	}
	var it models.Item
	return it, json.NewDecoder(resp.Body).Decode(&it)
}

// readArchive reads the archive's bids by item and event id.
func readArchive(ctx context.Context, conn *pgx.Conn) (map[string]map[string]models.Event, error) {
	rows, err := conn.Query(ctx, "SELECT event_id, item_id, user_id, amount_cents, previous_cents, seq FROM bids")
	if err != nil {
		return nil, err
	}
	out := map[string]map[string]models.Event{}
	var e models.Event
	_, err = pgx.ForEachRow(rows, []any{&e.EventID, &e.ItemID, &e.UserID, &e.Amount, &e.PreviousBid, &e.Seq}, func() error {
		if out[e.ItemID] == nil {
			out[e.ItemID] = map[string]models.Event{}
		}
		e.Type = models.EventBid
		out[e.ItemID][e.EventID] = e
		return nil
	})
	return out, err
}
