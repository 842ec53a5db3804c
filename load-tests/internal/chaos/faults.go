package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/bidding-platform/shared/models"
	"github.com/bidding-platform/shared/stream"
	"github.com/bidding-platform/shared/testenv"
)

// fault is one component killed and started again.
type fault struct {
	name string
	// act kills the component, leaves it down for Config.Down and starts
	// it again.
	act func(ctx context.Context) error
	// healed reports what still keeps the system from being whole again.
	healed func() error
	// after checks what the fault must not have broken, once healed.
	after func(ctx context.Context)
}

// run is one run's state, shared by the faults and the reconciliation.
type run struct {
	cfg     Config
	st      *stack
	load    *load
	viewers []*viewer
	rep     *Report
	js      jetstream.JetStream
	// outages are when each gateway was being killed and restarted: a
	// bid in flight to it then may get no answer.
	outages map[int][][2]time.Time
	tb      testing.TB
}

// down keeps a component dead for the configured time.
func (r *run) down(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(r.cfg.Down):
		return nil
	}
}

func (r *run) faults() []fault {
	st := r.st
	gatewaysReady := func() error { return waitReadyOnce(st.gateways...) }
	natsHealed := func() error {
		// Every node healthy and agreeing on a leader, the stream led
		// again, every service connected, and the events accepted
		// meanwhile published: until then NATS has not recovered, and
		// the next fault would be a second one at once.
		st.nats.WaitReady()
		st.nats.StreamLeader(stream.Name)
		if err := waitReadyOnce(append(append([]*service{st.archiver}, st.broadcasts...), st.gateways...)...); err != nil {
			return err
		}
		return r.outboxesEmpty()
	}
	killNode := func(pick func() *testenv.NATSNode) func(ctx context.Context) error {
		return func(ctx context.Context) error {
			n := pick()
			r.logf("killing NATS node %s", n.Name)
			n.Kill()
			if err := r.down(ctx); err != nil {
				return err
			}
			n.Start()
			return nil
		}
	}
	restart := func(s *service) func(ctx context.Context) error {
		return func(ctx context.Context) error {
			s.down.Store(true)
			defer s.down.Store(false)
			s.killed = time.Now()
			s.kill()
			if err := r.down(ctx); err != nil {
				return err
			}
			return s.start(ctx, r.cfg.Deadline)
		}
	}
	gw, bc := st.gateways[1], st.broadcasts[1]
	return []fault{
		{name: "Redis killed (SIGKILL), restarted from its append-only file", act: func(ctx context.Context) error {
			st.redis.Kill()
			if err := r.down(ctx); err != nil {
				return err
			}
			st.redis.Start()
			return nil
		}, healed: gatewaysReady},
		{name: "NATS follower killed and restarted", act: killNode(func() *testenv.NATSNode {
			leader := st.nats.StreamLeader(stream.Name)
			for _, n := range st.nats.Nodes {
				if n != leader {
					return n
				}
			}
			return leader
		}), healed: natsHealed},
		{name: "NATS stream leader killed and restarted", act: killNode(func() *testenv.NATSNode {
			return st.nats.StreamLeader(stream.Name)
		}), healed: natsHealed},
		{name: "PostgreSQL killed and restarted", act: func(ctx context.Context) error {
			st.pg.Kill()
			if err := r.down(ctx); err != nil {
				return err
			}
			st.pg.Start()
			return nil
		}, healed: func() error { return waitReadyOnce(st.archiver) }},
		{name: "one gateway of two killed and restarted", act: func(ctx context.Context) error {
			from := time.Now()
			err := restart(gw)(ctx)
			r.outages[1] = append(r.outages[1], [2]time.Time{from, time.Now()})
			return err
		}, healed: func() error { return waitReadyOnce(gw) }},
		{name: "one broadcast node of two killed and restarted", act: restart(bc), healed: func() error {
			if err := waitReadyOnce(bc); err != nil {
				return err
			}
			for _, v := range r.viewers {
				if v.node == bc {
					// A snapshot after the kill came on a new connection.
					if err := v.readySince(bc.killed); err != nil {
						return err
					}
				}
			}
			return nil
		}},
		{name: "archival worker killed and restarted", act: restart(st.archiver), healed: func() error { return waitReadyOnce(st.archiver) }},
		{name: "Redis killed and restarted empty (data files deleted)", act: func(ctx context.Context) error {
			st.redis.Kill()
			st.redis.DeleteData()
			if err := r.down(ctx); err != nil {
				return err
			}
			st.redis.Start()
			return nil
		}, healed: gatewaysReady, after: r.probeRewind},
	}
}

// probeRewind bids, on every item, the amount of the item's last published
// event through each gateway: Redis lost the item, and a gateway that did
// not restore it from the log first would accept the bid at a price
// already beaten, or name a lower price in its 409. A 503 is a right
// answer while the gateway restores, so the probe asks until it gets
// another.
func (r *run) probeRewind(ctx context.Context) {
	for _, item := range r.load.items {
		gctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		msg, err := r.js.Stream(gctx, stream.Name)
		var last models.Event
		if err == nil {
			var raw *jetstream.RawStreamMsg
			raw, err = msg.GetLastMsgForSubject(gctx, stream.Subject(item))
			if err == nil {
				err = json.Unmarshal(raw.Data, &last)
			}
		}
		cancel()
		if err != nil {
			r.rep.problem("after Redis restarted empty: read the last event of %s: %v", item, err)
			continue
		}
		for g := range r.st.gateways {
			user := fmt.Sprintf("probe_%d", g)
			var b *bid
			err := waitFor(ctx, r.cfg.Deadline, func() error {
				b = r.load.place(item, g, user, last.Amount)
				if b.Status == http.StatusServiceUnavailable {
					return fmt.Errorf("503 %s", b.message)
				}
				return nil
			})
			switch {
			case err != nil:
				r.rep.problem("after Redis restarted empty: a bid on %s at the published %s through %s: %v", item, last.Amount, r.st.gateways[g].name, err)
			case b.Status != http.StatusConflict || b.Current < last.Amount:
				r.rep.problem("after Redis restarted empty: a bid on %s at the published %s (seq %d) through %s was answered %d with current_bid %s, want 409 against at least %s: the auction rewound",
					item, last.Amount, last.Seq, r.st.gateways[g].name, b.Status, b.Current, last.Amount)
			}
		}
	}
}

// waitReadyOnce asks each service's /ready once.
func waitReadyOnce(svcs ...*service) error {
	for _, s := range svcs {
		if err := get(s.url()+"/ready", http.StatusOK); err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
	}
	return nil
}

// runFaults runs the baseline and then every fault in turn under the
// load. A fault the system does not recover from ends the sequence.
func (r *run) runFaults(ctx context.Context) {
	cfg := r.cfg
	base := &Phase{Name: "none (baseline)", Start: time.Now()}
	r.rep.Phases = append(r.rep.Phases, base)
	if err := r.load.steady(ctx, cfg.Steady, cfg.MinAnswers, cfg.Deadline); err != nil {
		r.rep.problem("baseline: bidding does not work: %v", err)
		base.End = time.Now()
		return
	}
	base.End = time.Now()
	for _, f := range r.faults() {
		ph := &Phase{Name: f.name, Start: time.Now()}
		r.rep.Phases = append(r.rep.Phases, ph)
		r.logf("fault: %s", f.name)
		ph.FaultStart = ph.Start
		if err := f.act(ctx); err != nil {
			r.rep.problem("%s: %v", f.name, err)
			ph.End = time.Now()
			return
		}
		if err := waitFor(ctx, cfg.Deadline, f.healed); err != nil {
			r.rep.problem("%s: the system did not recover: %v", f.name, err)
			ph.FaultEnd, ph.End = time.Now(), time.Now()
			return
		}
		ph.FaultEnd = time.Now()
		if f.after != nil {
			f.after(ctx)
		}
		if err := r.load.steady(ctx, cfg.Steady, cfg.MinAnswers, cfg.Deadline); err != nil {
			r.rep.problem("%s: bidding did not resume: %v", f.name, err)
			ph.End = time.Now()
			return
		}
		ph.End = time.Now()
		r.logf("recovered in %v", ph.FaultEnd.Sub(ph.FaultStart).Round(time.Millisecond))
	}
}
