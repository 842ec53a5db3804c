package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bidding-platform/shared/models"
)

// maxErrorSamples keeps the report readable when every request fails the
// same way.
const maxErrorSamples = 5

// Run prepares the item, drives bids until the duration or request budget
// is used up (or ctx ends), and reports what the gateway answered.
func Run(ctx context.Context, cfg Config) (Report, error) {
	if err := cfg.Validate(); err != nil {
		return Report{}, err
	}
	client := newClient(cfg)
	defer client.CloseIdleConnections()

	base := strings.TrimRight(cfg.URL, "/")
	start, err := prepareItem(ctx, client, base, cfg)
	if err != nil {
		return Report{}, fmt.Errorf("prepare item %s: %w", cfg.Item, err)
	}

	runCtx, cancel := context.WithTimeout(ctx, cfg.Duration)
	defer cancel()

	var budget atomic.Int64
	bidURL := base + "/api/v1/items/" + cfg.Item + "/bid"
	u, err := url.Parse(bidURL)
	if err != nil {
		return Report{}, fmt.Errorf("bid url: %w", err)
	}
	workers := make([]*worker, cfg.Concurrency)
	began := time.Now()
	var wg sync.WaitGroup
	for i := range workers {
		w := &worker{
			id:     i,
			cfg:    cfg,
			client: client,
			url:    bidURL,
			path:   u.EscapedPath(),
			next:   start,
			floor:  start,
			rng:    rand.New(rand.NewPCG(uint64(i)+1, uint64(began.UnixNano()))),
		}
		if cfg.Client == ClientRaw {
			addr := u.Host
			if u.Port() == "" {
				addr = net.JoinHostPort(u.Hostname(), "80")
			}
			w.conn = newConn(addr, u.Host, cfg.Timeout)
		}
		workers[i] = w
		wg.Go(func() { w.run(runCtx, &budget) })
	}
	wg.Wait()
	elapsed := time.Since(began)
	for _, w := range workers {
		if w.conn != nil {
			w.conn.close()
		}
	}

	return buildReport(cfg, elapsed, workers), nil
}

func newClient(cfg Config) *http.Client {
	tr := &http.Transport{
		DialContext: (&net.Dialer{Timeout: cfg.Timeout, KeepAlive: 30 * time.Second}).DialContext,
		// Every worker keeps its connection between requests; the default of
		// two idle connections per host would make most requests dial anew and
		// measure the kernel's TCP handshake instead of the gateway.
		MaxIdleConns:        cfg.Concurrency * 2,
		MaxIdleConnsPerHost: cfg.Concurrency * 2,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
	}
	return &http.Client{Transport: tr, Timeout: cfg.Timeout}
}

// itemState is the part of GET /api/v1/items/{id} the generator needs.
type itemState struct {
	CurrentBid      models.Money `json:"current_bid"`
	HighestBidderID string       `json:"highest_bidder_id"`
	StartingPrice   models.Money `json:"starting_price"`
	MinIncrement    models.Money `json:"min_increment"`
	BidCount        int64        `json:"bid_count"`
}

// prepareItem makes sure the item exists and returns the lowest amount that
// can win now, where the workers start.
func prepareItem(ctx context.Context, client *http.Client, base string, cfg Config) (models.Money, error) {
	itemURL := base + "/api/v1/items/" + cfg.Item
	status, body, err := do(ctx, client, http.MethodGet, itemURL, nil)
	if err != nil {
		return 0, err
	}
	if status == http.StatusNotFound {
		create, _ := json.Marshal(map[string]any{
			"id":             cfg.Item,
			"name":           "Load test item " + cfg.Item,
			"starting_price": cfg.Increment,
			"min_increment":  cfg.Increment,
		})
		status, body, err = do(ctx, client, http.MethodPost, base+"/api/v1/items", create)
		if err != nil {
			return 0, err
		}
		if status != http.StatusCreated && status != http.StatusOK {
			return 0, fmt.Errorf("create: status %d: %s", status, snippet(body))
		}
	} else if status != http.StatusOK {
		return 0, fmt.Errorf("get: status %d: %s", status, snippet(body))
	}
	var it itemState
	// A target that is not the gateway (the hello baseline) answers with
	// another shape; the generator then starts from the increment.
	_ = json.Unmarshal(body, &it)
	next := it.StartingPrice
	if it.BidCount > 0 || it.HighestBidderID != "" {
		inc := it.MinIncrement
		if inc <= 0 {
			inc = cfg.Increment
		}
		next = it.CurrentBid + inc
	}
	if next <= 0 {
		next = cfg.Increment
	}
	return next, nil
}

func do(ctx context.Context, client *http.Client, method, url string, body []byte) (int, []byte, error) {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, r)
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return 0, nil, fmt.Errorf("read %s %s: %w", method, url, err)
	}
	return resp.StatusCode, b, nil
}

func snippet(b []byte) string {
	const n = 200
	if len(b) > n {
		b = b[:n]
	}
	return strings.TrimSpace(string(b))
}

// worker keeps one request in flight at a time and its own counters, which
// the report merges after the run, so workers share nothing hot.
type worker struct {
	id     int
	cfg    Config
	client *http.Client
	conn   *conn // nil when net/http is the client
	url    string
	path   string
	rng    *rand.Rand

	// next is the amount a climbing worker bids next; floor is the price the
	// run started from, the base of random flood amounts.
	next  models.Money
	floor models.Money

	body []byte
	resp bytes.Buffer
	sent int

	hist      Histogram
	status    [600]uint64
	errors    uint64
	errSample []string
	highest   models.Money
	// wins holds every accepted amount, for the double-win check.
	wins []models.Money
}

// maxWinsPerWorker bounds the memory of the double-win check; a worker
// that wins more often than this (only against a target that accepts
// everything) stops recording, and the report says the check is partial.
const maxWinsPerWorker = 1 << 20

func (w *worker) run(ctx context.Context, budget *atomic.Int64) {
	for ctx.Err() == nil {
		if w.cfg.Requests > 0 && budget.Add(1) > w.cfg.Requests {
			return
		}
		w.once(ctx)
	}
}

func (w *worker) once(ctx context.Context) {
	amount, maxBid := w.amount(), false
	if w.cfg.MaxShare > 0 && w.rng.Float64() < w.cfg.MaxShare {
		amount += w.cfg.Increment * models.Money(1+w.rng.IntN(10))
		maxBid = true
	}
	// Users rotate so every user id bids and no single user dominates the
	// per-user rate limit.
	user := (w.id + w.sent*w.cfg.Concurrency) % w.cfg.Users
	w.sent++
	w.body = appendBid(w.body[:0], user, amount, maxBid)
	if w.conn != nil {
		w.resp.Reset()
		began := time.Now()
		status, err := w.conn.post(ctx, w.path, w.body, &w.resp)
		if err != nil {
			w.fail(ctx, err)
			return
		}
		w.record(time.Since(began), status, amount, maxBid)
		return
	}

	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(w.body))
	if err != nil {
		w.fail(ctx, err)
		return
	}
	req.Header.Set("Content-Type", "application/json")
	began := time.Now()
	resp, err := w.client.Do(req)
	if err != nil {
		w.fail(ctx, err)
		return
	}
	w.resp.Reset()
	_, err = w.resp.ReadFrom(io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if err != nil {
		w.fail(ctx, err)
		return
	}
	w.record(time.Since(began), resp.StatusCode, amount, maxBid)
}

func (w *worker) record(d time.Duration, status int, amount models.Money, maxBid bool) {
	w.hist.Record(d)
	if status >= 0 && status < len(w.status) {
		w.status[status]++
	}
	w.learn(status, w.resp.Bytes(), amount, maxBid)
}

// fail counts a transport error, unless the run's end cancelled the request:
// that is the generator stopping, not the target failing.
func (w *worker) fail(ctx context.Context, err error) {
	if ctx.Err() != nil {
		return
	}
	w.errors++
	if len(w.errSample) < maxErrorSamples {
		w.errSample = append(w.errSample, err.Error())
	}
}

func (w *worker) amount() models.Money {
	if w.cfg.Mode == ModeClimb {
		return w.next
	}
	if w.cfg.FloodAmount > 0 {
		return w.cfg.FloodAmount
	}
	return w.floor + models.Money(w.rng.Int64N(int64(w.cfg.FloodSpread)+1))
}

// learn moves the worker's idea of the price forward from an answer. Prices
// only rise while an auction is open, so the worker keeps the highest amount
// it has seen, whatever order answers arrive in.
//
// Only a plain bid that leads is a price won at its amount: a maximum leads
// below it, and a bid an automatic bid outbid at once (200, not highest)
// won nothing, so neither counts for the double-win check.
func (w *worker) learn(status int, body []byte, sent models.Money, maxBid bool) {
	switch status {
	case http.StatusOK:
		if !maxBid && !bytes.Contains(body, []byte(`"is_highest":false`)) {
			if sent > w.highest {
				w.highest = sent
			}
			if w.cfg.CheckWins && len(w.wins) < maxWinsPerWorker {
				w.wins = append(w.wins, sent)
			}
		}
		next, ok := moneyField(body, "min_next_bid")
		if !ok {
			next = sent + w.cfg.Increment
		}
		w.raise(next)
	case http.StatusConflict:
		if next, ok := moneyField(body, "min_next_bid"); ok {
			w.raise(next)
		} else if cur, ok := moneyField(body, "current_bid"); ok {
			w.raise(cur + w.cfg.Increment)
		}
	}
}

func (w *worker) raise(m models.Money) {
	if m > w.next {
		w.next = m
	}
}

// appendBid writes the documented bid body without reflection; amounts are
// printed exactly with two decimals.
func appendBid(b []byte, user int, amount models.Money, maxBid bool) []byte {
	b = append(b, `{"user_id":"lg_user_`...)
	b = strconv.AppendInt(b, int64(user), 10)
	if maxBid {
		b = append(b, `","max_amount":`...)
	} else {
		b = append(b, `","amount":`...)
	}
	b = strconv.AppendInt(b, int64(amount/100), 10)
	b = append(b, '.')
	cents := int64(amount % 100)
	if cents < 10 {
		b = append(b, '0')
	}
	b = strconv.AppendInt(b, cents, 10)
	return append(b, '}')
}

// moneyField finds "key": <number> in a flat JSON object and parses the
// number exactly. A full decode per answer would cost more CPU than the
// gateway spends on the bid, on the same two cores.
func moneyField(body []byte, key string) (models.Money, bool) {
	var pat [64]byte
	p := append(pat[:0], '"')
	p = append(p, key...)
	p = append(p, '"')
	i := bytes.Index(body, p)
	if i < 0 {
		return 0, false
	}
	rest := bytes.TrimLeft(body[i+len(p):], " \t\r\n")
	if len(rest) == 0 || rest[0] != ':' {
		return 0, false
	}
	rest = bytes.TrimLeft(rest[1:], " \t\r\n")
	end := 0
	for end < len(rest) && (rest[end] >= '0' && rest[end] <= '9' || rest[end] == '.') {
		end++
	}
	var m models.Money
	if end == 0 || m.UnmarshalJSON(rest[:end]) != nil {
		return 0, false
	}
	return m, true
}
