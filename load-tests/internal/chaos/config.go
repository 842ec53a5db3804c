// Package chaos is the fault-and-reconcile suite: it runs the whole system
// built from this repository (Redis on disk before every answer, a
// three-node JetStream cluster with the stream on three replicas,
// PostgreSQL, two gateways, two broadcast nodes and an archival worker),
// bids steadily on several items through both gateways while viewers on
// both broadcast nodes watch every item, kills each component in turn and
// starts it again, and then reconciles: every bid answered 200 must be in
// JetStream and in the archive exactly once and seen by the item's viewers,
// each item's seqs must run 1..N, no bid answered 503 (other than one whose
// outcome the gateway said it could not know) may have been applied, and
// each item's history must pass the linearizability checker.
//
// Run drives it from a test (the short form in make test); Main from
// cmd/chaos (make chaos).
package chaos

import (
	"errors"
	"fmt"
	"time"
)

// Config says how long and how hard the suite runs. Durations pace the
// load and the faults; correctness never depends on them: every wait for a
// condition has Deadline as its bound.
type Config struct {
	// Items are bid on at once; Bidders bid in turn on each of them, each
	// one bid per BidInterval at most, alternating gateways.
	Items, Bidders int
	BidInterval    time.Duration
	// Steady is the load before the first fault and after each recovery;
	// it also lasts until MinAnswers bids were answered and one accepted.
	Steady     time.Duration
	MinAnswers int
	// Down is how long a killed component stays dead before it is
	// started again.
	Down time.Duration
	// Deadline bounds each wait: a component's recovery, the archive
	// catching up, viewers catching up.
	Deadline time.Duration
	// LogDir keeps the services' logs; empty: a temporary folder.
	LogDir string
}

// Long is make chaos: a few seconds of steady load around each fault.
func Long() Config {
	return Config{Items: 4, Bidders: 8, BidInterval: 20 * time.Millisecond,
		Steady: 4 * time.Second, MinAnswers: 200, Down: 2 * time.Second, Deadline: 2 * time.Minute}
}

// Short is the test in make test: the same faults, briefly, on a machine
// that may be busy with other tests.
func Short() Config {
	return Config{Items: 3, Bidders: 6, BidInterval: 25 * time.Millisecond,
		Steady: 500 * time.Millisecond, MinAnswers: 20, Down: 200 * time.Millisecond, Deadline: 2 * time.Minute}
}

func (c Config) validate() error {
	var errs []error
	if c.Items < 1 {
		errs = append(errs, fmt.Errorf("items %d: want at least 1", c.Items))
	}
	// A bidder's number is the cents of its amounts, which keeps every
	// (bidder, amount) pair unique: a bid of unknown outcome is matched
	// to its event by them.
	if c.Bidders < 1 || c.Bidders > 99 {
		errs = append(errs, fmt.Errorf("bidders %d: want 1 to 99", c.Bidders))
	}
	if c.BidInterval <= 0 || c.Deadline <= 0 || c.Steady < 0 || c.Down < 0 || c.MinAnswers < 0 {
		errs = append(errs, errors.New("bid interval and deadline must be positive, steady, down and answers not negative"))
	}
	return errors.Join(errs...)
}
