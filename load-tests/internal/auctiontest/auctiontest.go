// Package auctiontest is an HTTP fixture that speaks the README's item and
// bid contract (GET and POST /api/v1/items, POST /api/v1/items/{id}/bid)
// with in-memory prices. It stands in for the gateway where a test checks
// the load tools' own counting and parsing, which needs a target whose every
// answer is known; the gateway itself is measured by bench/contended.sh.
package auctiontest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/bidding-platform/shared/models"
)

// Server is the fixture; use it as an http.Handler.
type Server struct {
	mu        sync.Mutex
	items     map[string]*auctionItem
	requests  int
	accepted  int
	rejected  int
	Chunked   bool // answer bids with chunked bodies
	CloseEach bool // answer bids with Connection: close
}

// auctionItem is an item decided by the shared auction rules, so that the
// fixture answers as the gateway would.
type auctionItem struct{ models.Item }

func newAuctionItem(id string, start, inc models.Money) *auctionItem {
	return &auctionItem{models.Item{ID: id, StartingPrice: start, MinIncrement: inc, Status: models.StatusActive}}
}

// price is what GET shows as current_bid: the starting price before any
// bid, as the load tools expect of this fixture.
func (it *auctionItem) price() models.Money {
	if it.BidCount == 0 {
		return it.StartingPrice
	}
	return it.CurrentBid
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	rest, ok := strings.CutPrefix(r.URL.Path, "/api/v1/items")
	switch {
	case !ok:
		http.NotFound(w, r)
	case r.Method == http.MethodPost && rest == "":
		var req struct {
			ID            string       `json:"id"`
			StartingPrice models.Money `json:"starting_price"`
			MinIncrement  models.Money `json:"min_increment"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		s.items[req.ID] = newAuctionItem(req.ID, req.StartingPrice, req.MinIncrement)
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, `{"id":%q,"current_bid":%s,"starting_price":%s,"min_increment":%s,"bid_count":0}`,
			req.ID, req.StartingPrice, req.StartingPrice, req.MinIncrement)
	case r.Method == http.MethodGet && strings.HasSuffix(rest, "/bids"):
		// History is not kept; an empty first page has the documented shape.
		fmt.Fprintf(w, `{"item_id":%q,"bids":[]}`, strings.TrimSuffix(strings.TrimPrefix(rest, "/"), "/bids"))
	case r.Method == http.MethodGet:
		it := s.items[strings.TrimPrefix(rest, "/")]
		if it == nil {
			http.NotFound(w, r)
			return
		}
		fmt.Fprintf(w, `{"current_bid":%s,"highest_bidder_id":%q,"starting_price":%s,"min_increment":%s,"bid_count":%d,"status":"active"}`,
			it.price(), it.HighestBidderID, it.price(), it.MinIncrement, it.BidCount)
	case r.Method == http.MethodPost && strings.HasSuffix(rest, "/bid"):
		it := s.items[strings.TrimSuffix(strings.TrimPrefix(rest, "/"), "/bid")]
		if it == nil {
			http.NotFound(w, r)
			return
		}
		var req struct {
			UserID string       `json:"user_id"`
			Amount models.Money `json:"amount"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.UserID == "" {
			http.Error(w, fmt.Sprint("bad bid: ", err), http.StatusBadRequest)
			return
		}
		s.requests++
		if s.CloseEach {
			w.Header().Set("Connection", "close")
		}
		d := models.Decide(it.Item, models.BidAttempt{UserID: req.UserID, Amount: req.Amount}, time.Now())
		var body string
		status := http.StatusOK
		if d.Outcome == models.OutcomeAccepted {
			it.Item = d.Item
			s.accepted++
			body = fmt.Sprintf(`{"success":true,"message":"Bid accepted","current_bid":%s,"your_bid":%s,"is_highest":true,"event_id":"e","min_next_bid":%s}`,
				it.price(), req.Amount, it.MinNextBid())
		} else {
			status = http.StatusConflict
			s.rejected++
			body = fmt.Sprintf(`{"success":false,"message":"Bid amount must be higher than current bid","current_bid":%s,"your_bid":%s,"is_highest":false,"min_next_bid":%s}`,
				it.price(), req.Amount, it.MinNextBid())
		}
		w.WriteHeader(status)
		if s.Chunked {
			// Two flushed writes make net/http use chunked encoding.
			half := len(body) / 2
			fmt.Fprint(w, body[:half])
			w.(http.Flusher).Flush()
			fmt.Fprint(w, body[half:])
			return
		}
		fmt.Fprint(w, body)
	default:
		http.NotFound(w, r)
	}
}

// New returns an empty auction house.
func New() *Server { return &Server{items: map[string]*auctionItem{}} }

// Counts is what the fixture answered to bids.
type Counts struct {
	Requests, Accepted, Rejected int
}

// Counts returns the bid answers so far.
func (s *Server) Counts() Counts {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Counts{Requests: s.requests, Accepted: s.accepted, Rejected: s.rejected}
}

// Price is the item's current price, zero for an unknown item.
func (s *Server) Price(id string) models.Money {
	s.mu.Lock()
	defer s.mu.Unlock()
	if it := s.items[id]; it != nil {
		return it.price()
	}
	return 0
}

// Put sets an item's state, as if bids had already been placed.
func (s *Server) Put(id string, price, inc models.Money, bids int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	it := newAuctionItem(id, price, inc)
	if bids > 0 {
		it.CurrentBid, it.HighestBidderID, it.BidCount, it.Seq = price, "someone", int64(bids), uint64(bids)
	}
	s.items[id] = it
}
