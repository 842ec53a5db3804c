package chaos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bidding-platform/shared/models"
	"github.com/bidding-platform/shared/models/rulestest"
)

// bid is one bid as the suite saw it.
type bid struct {
	rulestest.Op
	item    string
	gateway int
	// took is the real time to the answer, or to the transport error.
	took time.Duration
	// err is the transport error when no answer came; notSent says the
	// connection was refused, so the gateway never saw the bid.
	err     string
	notSent bool
	message string
}

func (b *bid) answered() bool { return b.Status != 0 }

// answeredAt is when the answer, or the transport error, came.
func (b *bid) answeredAt() time.Time { return b.Start.Add(b.took) }

// Every item starts at 1.00 and rises by at least 1.00.
const (
	startingPrice = models.Money(100)
	minIncrement  = models.Money(100)
)

// load is the steady bidding: Bidders goroutines, each bidding in turn on
// every item through alternate gateways. Amounts rise with a per-item
// ticket, so that many bids win and concurrent ones lose to each other.
type load struct {
	cfg      Config
	gateways []*service
	items    []string
	tickets  []atomic.Int64
	client   *http.Client

	mu   sync.Mutex
	bids []*bid

	answers, accepted atomic.Int64
	stop              chan struct{}
	once              sync.Once
	wg                sync.WaitGroup
}

func newLoad(cfg Config, gateways []*service, items []string) *load {
	return &load{
		cfg: cfg, gateways: gateways, items: items, tickets: make([]atomic.Int64, len(items)),
		client: &http.Client{
			// A gateway bounds every Redis call; an answer that takes this
			// long is no answer.
			Timeout:   15 * time.Second,
			Transport: &http.Transport{MaxIdleConnsPerHost: 2 * cfg.Bidders, DisableCompression: true},
		},
		stop: make(chan struct{}),
	}
}

func (l *load) start() {
	for b := range l.cfg.Bidders {
		l.wg.Add(1)
		go l.bidder(b)
	}
}

// finish stops the bidders once their bids in flight are answered. It
// may be called again, as a deferred call does after a failed run.
func (l *load) finish() {
	l.once.Do(func() {
		close(l.stop)
		l.wg.Wait()
		l.client.CloseIdleConnections()
	})
}

func (l *load) bidder(b int) {
	defer l.wg.Done()
	user := fmt.Sprintf("bidder_%d", b)
	tick := time.NewTicker(l.cfg.BidInterval)
	defer tick.Stop()
	for k := 0; ; k++ {
		select {
		case <-l.stop:
			return
		case <-tick.C:
		}
		i := (b + k) % len(l.items)
		g := (b + k) % len(l.gateways)
		if l.gateways[g].down.Load() {
			g = (g + 1) % len(l.gateways)
		}
		amount := startingPrice + models.Money(100*l.tickets[i].Add(1)+int64(b))
		l.place(l.items[i], g, user, amount)
	}
}

// place sends one bid, records it and returns it.
func (l *load) place(item string, g int, user string, amount models.Money) *bid {
	bd := &bid{item: item, gateway: g}
	bd.UserID, bd.Amount = user, amount
	body := fmt.Sprintf(`{"user_id":%q,"amount":%s}`, user, amount)
	bd.Start = time.Now()
	resp, err := l.client.Post(l.gateways[g].url()+"/api/v1/items/"+item+"/bid", "application/json", strings.NewReader(body))
	var raw []byte
	if err == nil {
		raw, err = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	bd.End = time.Now()
	bd.took = bd.End.Sub(bd.Start)
	switch {
	case err != nil:
		bd.err = err.Error()
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			bd.notSent = true
			break
		}
		bd.MaybeApplied = true
		// A gateway that died with the bid in hand may have sent it to
		// Redis, which runs it within the write's deadline (half a second)
		// or never: its linearization point may follow the error.
		bd.End = bd.End.Add(time.Second)
	default:
		bd.Status = resp.StatusCode
		var a struct {
			Message    string       `json:"message"`
			CurrentBid models.Money `json:"current_bid"`
			EventID    string       `json:"event_id"`
		}
		if jerr := json.Unmarshal(raw, &a); jerr != nil {
			bd.message = fmt.Sprintf("undecodable answer %q: %v", raw, jerr)
		} else {
			bd.Current, bd.EventID, bd.message = a.CurrentBid, a.EventID, a.Message
		}
		bd.MaybeApplied = bd.Status == http.StatusServiceUnavailable && strings.Contains(a.Message, "may have been accepted")
		l.answers.Add(1)
		if bd.Status == http.StatusOK {
			l.accepted.Add(1)
		}
	}
	l.mu.Lock()
	l.bids = append(l.bids, bd)
	l.mu.Unlock()
	return bd
}

// steady lets the load run for d, and at least until minAnswers more bids
// were answered and one more accepted: after a fault, that bidding works
// again.
func (l *load) steady(ctx context.Context, d time.Duration, minAnswers int, deadline time.Duration) error {
	from := time.Now()
	answers, accepted := l.answers.Load(), l.accepted.Load()
	return waitFor(ctx, max(deadline, d+deadline/2), func() error {
		switch {
		case time.Since(from) < d:
			return fmt.Errorf("steady load for %v", d)
		case l.answers.Load()-answers < int64(minAnswers):
			return fmt.Errorf("%d of %d answers", l.answers.Load()-answers, minAnswers)
		case l.accepted.Load() == accepted:
			return errors.New("no bid accepted")
		}
		return nil
	})
}

func (l *load) snapshot() []*bid {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]*bid(nil), l.bids...)
}
