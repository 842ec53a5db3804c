// Package loadgen drives contended bids at one auction item through the
// gateway's HTTP API and reports throughput, answers and latency. It exists
// for rates Locust cannot reach: one process, keep-alive connections and
// no per-request allocation beyond what net/http needs.
package loadgen

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"time"

	"github.com/bidding-platform/shared/models"
)

// Bid modes.
const (
	// ModeClimb bids the lowest amount that can win according to the last
	// answer the worker saw, so many bids are accepted and the price climbs
	// as fast as the gateway lets it.
	ModeClimb = "climb"
	// ModeFlood bids fixed or random amounts that mostly cannot win: the
	// load a pre-filter is meant to absorb.
	ModeFlood = "flood"
)

// HTTP clients. The raw one leaves more of a small machine to the target;
// net/http is there to check that the raw one measures the same thing.
const (
	ClientRaw     = "raw"
	ClientNetHTTP = "net/http"
)

// Bounds that keep a mistyped flag from turning a measurement into an
// outage: a run never lasts longer than MaxDuration or sends more than
// MaxRequests.
const (
	MaxDuration    = 10 * time.Minute
	MaxRequests    = 50_000_000
	MaxConcurrency = 4096
	MaxUsers       = 1_000_000
)

// Config describes one run. The zero value is not valid; start from
// DefaultConfig.
type Config struct {
	// URL is the gateway's base address, e.g. http://127.0.0.1:8080.
	URL string
	// Item is the hot item's id. It is created when missing.
	Item string
	// Users is how many distinct user ids the workers bid as.
	Users int
	// Concurrency is the number of workers, each with one request in flight.
	Concurrency int
	// Duration bounds the run; Requests, when positive, stops it earlier.
	Duration time.Duration
	Requests int64
	// Mode is ModeClimb or ModeFlood.
	Mode string
	// Increment is added to the last seen price in climb mode when the
	// answer does not carry min_next_bid.
	Increment models.Money
	// FloodAmount, when positive, is the one amount every flood bid uses;
	// otherwise flood bids are random in [start price, start price + FloodSpread].
	FloodAmount models.Money
	FloodSpread models.Money
	// MaxShare is the fraction of bids sent as maximum bids (max_amount),
	// each 1 to 10 increments above the amount a plain bid would have had,
	// so that automatic bids answer the others.
	MaxShare float64
	// Label names the configuration being measured in the report.
	Label string
	// Timeout bounds each request.
	Timeout time.Duration
	// Client is ClientRaw or ClientNetHTTP.
	Client string
	// CheckWins records every accepted amount and reports amounts accepted
	// more than once: on one item that is two winners at one price, which
	// the auction rules forbid (ties go to the earlier bid).
	CheckWins bool
	// AllowNonLoopback lets tests and deliberate runs target other hosts;
	// the command line does not expose it, so load never leaves the machine.
	AllowNonLoopback bool
}

// DefaultConfig is a short, moderate run against the local gateway.
func DefaultConfig() Config {
	return Config{
		URL:         "http://127.0.0.1:8080",
		Item:        "loadgen_hot_item",
		Users:       1000,
		Concurrency: 64,
		Duration:    10 * time.Second,
		Mode:        ModeClimb,
		Increment:   100,
		FloodSpread: 100_00,
		Timeout:     5 * time.Second,
		Client:      ClientRaw,
		CheckWins:   true,
	}
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	var errs []error
	u, err := url.Parse(c.URL)
	switch {
	case err != nil:
		errs = append(errs, fmt.Errorf("url: %w", err))
	case u.Scheme != "http" || u.Host == "":
		errs = append(errs, fmt.Errorf("url %q: must be http://host:port", c.URL))
	case !c.AllowNonLoopback && !isLoopback(u.Hostname()):
		errs = append(errs, fmt.Errorf("url %q: only loopback targets are allowed", c.URL))
	}
	if err := models.ValidateID(c.Item); err != nil {
		errs = append(errs, fmt.Errorf("item %q: %w", c.Item, err))
	}
	if c.Users < 1 || c.Users > MaxUsers {
		errs = append(errs, fmt.Errorf("users %d: must be 1..%d", c.Users, MaxUsers))
	}
	if c.Concurrency < 1 || c.Concurrency > MaxConcurrency {
		errs = append(errs, fmt.Errorf("concurrency %d: must be 1..%d", c.Concurrency, MaxConcurrency))
	}
	if c.Duration <= 0 || c.Duration > MaxDuration {
		errs = append(errs, fmt.Errorf("duration %s: must be in (0, %s]", c.Duration, MaxDuration))
	}
	if c.Requests < 0 || c.Requests > MaxRequests {
		errs = append(errs, fmt.Errorf("requests %d: must be 0..%d (0: until the duration ends)", c.Requests, MaxRequests))
	}
	if c.Mode != ModeClimb && c.Mode != ModeFlood {
		errs = append(errs, fmt.Errorf("bid mode %q: must be %q or %q", c.Mode, ModeClimb, ModeFlood))
	}
	if c.Increment <= 0 {
		errs = append(errs, errors.New("increment must be positive"))
	}
	if c.FloodAmount < 0 || c.FloodSpread < 0 {
		errs = append(errs, errors.New("flood amount and spread must not be negative"))
	}
	if !(c.MaxShare >= 0 && c.MaxShare <= 1) {
		errs = append(errs, fmt.Errorf("max share %v: must be in [0, 1]", c.MaxShare))
	}
	if c.Client != ClientRaw && c.Client != ClientNetHTTP {
		errs = append(errs, fmt.Errorf("client %q: must be %q or %q", c.Client, ClientRaw, ClientNetHTTP))
	}
	if c.Timeout <= 0 {
		errs = append(errs, errors.New("timeout must be positive"))
	}
	return errors.Join(errs...)
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
