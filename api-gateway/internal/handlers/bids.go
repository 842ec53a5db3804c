package handlers

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/bidding-platform/api-gateway/internal/service"
	"github.com/bidding-platform/shared/auth"
	"github.com/bidding-platform/shared/models"
)

// Answer messages; the first two are the README's.
const (
	msgAccepted    = "Bid accepted"
	msgTooLow      = "Bid amount must be higher than current bid"
	msgNotActive   = "Auction is not active"
	msgNotFound    = "Item not found"
	msgCancelled   = "Auction was cancelled: it takes no more bids"
	msgIdemReused  = "Idempotency-Key was already used for a different bid"
	msgOutbid      = "Bid placed, but another bidder's maximum bid is higher: an automatic bid outbid it"
	msgMaxNotUp    = "max_amount must be above your current maximum bid and at least min_next_bid"
	msgTooManyKeys = "this user has used too many Idempotency-Keys on this item today; send the bid without one, or later"
	bidFields      = "user_id and amount (or max_amount)"
	maxIdemKeyLen  = 128
)

type bidBody struct {
	UserID    *string         `json:"user_id"`
	Amount    json.RawMessage `json:"amount"`
	MaxAmount json.RawMessage `json:"max_amount"`
}

// bidInput is one bid request as a transport hands it over.
type bidInput struct {
	itemID  string
	body    []byte
	bodyErr error // the body could not be read or was too large
	auth    string
	idemKey string
}

// bidAnswer is a bid's HTTP answer. body aliases the buffer given to
// decideBid.
type bidAnswer struct {
	status     int
	body       []byte
	retryAfter string // seconds, on 429 and 503
	challenge  string // a 401's WWW-Authenticate
}

// placeBid is the bid route on net/http (browsers, through CORS); fastBid
// is the same route on fasthttp. Both only translate: decideBid is the bid.
func (s *server) placeBid(w http.ResponseWriter, r *http.Request) {
	in := bidInput{itemID: chi.URLParam(r, "id"), auth: r.Header.Get("Authorization"), idemKey: r.Header.Get("Idempotency-Key")}
	if buf, err := readBody(r, s.cfg.MaxBody); err != nil {
		in.bodyErr = err
	} else {
		in.body = buf.Bytes()
		defer releaseBody(buf)
	}
	bp := s.bufs.Get().(*[]byte)
	a := s.decideBid(r.Context(), in, (*bp)[:0])
	h := w.Header()
	h["Content-Type"] = jsonType
	h["Cache-Control"] = noStore
	if a.retryAfter != "" {
		h.Set("Retry-After", a.retryAfter)
	}
	if a.challenge != "" {
		h.Set("WWW-Authenticate", a.challenge)
	}
	w.WriteHeader(a.status)
	_, _ = w.Write(a.body) // the client went away; nothing to do
	*bp = a.body[:0]
	s.bufs.Put(bp)
}

// decideBid validates a bid, checks who sends it and lets the bidding
// service decide it; the answer is encoded into buf.
func (s *server) decideBid(ctx context.Context, in bidInput, buf []byte) bidAnswer {
	if err := models.ValidateID(in.itemID); err != nil {
		return s.badBid(buf, "item id: "+err.Error())
	}
	var subject string
	if !s.auth.Disabled() {
		id, err := s.auth.Verify(in.auth)
		if err != nil {
			s.d.Metrics.bid("unauthorized")
			a := errorAnswer(buf, http.StatusUnauthorized, err.Error())
			a.challenge = auth.Challenge(err)
			return a
		}
		subject = id.Subject
	}
	if in.bodyErr != nil {
		return s.badBid(buf, in.bodyErr.Error())
	}
	var (
		userID     string
		amountText []byte
		maxBid     bool
	)
	if u, a, m, ok := parseBidFast(in.body); ok {
		userID, amountText, maxBid = string(u), a, m
	} else {
		var body bidBody
		if err := decodeBytes(in.body, &body, bidFields); err != nil {
			return s.badBid(buf, err.Error())
		}
		if body.UserID == nil {
			return s.badBid(buf, "user_id is required")
		}
		switch {
		case len(body.Amount) > 0 && len(body.MaxAmount) > 0:
			return s.badBid(buf, "send amount (a bid of exactly that) or max_amount (the most to bid automatically), not both")
		case len(body.MaxAmount) > 0:
			amountText, maxBid = body.MaxAmount, true
		case len(body.Amount) > 0:
			amountText = body.Amount
		default:
			return s.badBid(buf, "amount or max_amount is required")
		}
		userID = *body.UserID
	}
	if err := models.ValidateID(userID); err != nil {
		return s.badBid(buf, "user_id: "+err.Error())
	}
	// The number's text, never float64: 0.1+0.2 must stay exact.
	amount, err := models.ParseMoney(string(amountText))
	if err != nil {
		field := "amount: "
		if maxBid {
			field = "max_amount: "
		}
		return s.badBid(buf, field+err.Error())
	}
	if in.idemKey != "" && !validKey(in.idemKey) {
		return s.badBid(buf, fmt.Sprintf("Idempotency-Key must be 1-%d visible ASCII characters", maxIdemKeyLen))
	}
	if !s.auth.Disabled() && subject != userID {
		s.d.Metrics.bid("forbidden")
		return errorAnswer(buf, http.StatusForbidden, "user_id must be the authenticated user (the token's subject)")
	}
	if s.perUser != nil {
		if ok, wait := s.perUser.allow(userID, time.Now()); !ok {
			s.d.Metrics.bid("rate_limited")
			return tooManyAnswer(buf, wait, "rate limit exceeded for this user")
		}
	}
	res, err := s.d.Bids.PlaceBid(ctx, service.Bid{ItemID: in.itemID, UserID: userID, Amount: amount, Max: maxBid, IdempotencyKey: in.idemKey})
	your := yourBid{amount: amount, max: maxBid}
	if err != nil {
		status, msg, retryAfter := s.failure(ctx, "place bid", err, "item_id", in.itemID)
		s.d.Metrics.bid(string(models.ErrorKind(err)))
		a := bidReply(buf, status, false, msg, 0, your, "", 0, false)
		a.retryAfter = retryAfter
		return a
	}
	s.d.Metrics.bid(res.Outcome.String())
	it := res.Item
	status := statusOf(outcomeKind(res.Outcome))
	eventID := ""
	if res.Event != nil {
		eventID = res.Event.EventID
	}
	switch res.Outcome {
	case models.OutcomeAccepted:
		// A replayed answer is the first answer: that bid became the price.
		cur := it.CurrentBid
		if res.Replayed && !maxBid {
			cur = amount
		}
		your.highest = true
		return bidReply(buf, status, true, msgAccepted, cur, your, eventID, it.MinNextBid(), true)
	case models.OutcomeOutbid:
		return bidReply(buf, status, true, msgOutbid, it.CurrentBid, your, eventID, it.MinNextBid(), true)
	case models.OutcomeTooLow:
		// The README's message even below the starting price; min_next_bid
		// says what would win.
		msg := msgTooLow
		if maxBid && it.HighestBidderID == userID {
			msg = msgMaxNotUp
		}
		return bidReply(buf, status, false, msg, it.CurrentBid, your, "", it.MinNextBid(), true)
	case models.OutcomeNotActive:
		msg := msgNotActive
		if it.Status != "" {
			msg += " (" + string(it.Status) + ")"
		}
		if it.Status == models.StatusCancelled {
			msg = msgCancelled
		}
		return bidReply(buf, status, false, msg, it.CurrentBid, your, "", it.MinNextBid(), it.ID != "")
	case models.OutcomeNotFound:
		return bidReply(buf, status, false, msgNotFound, 0, your, "", 0, false)
	case models.OutcomeIdempotencyConflict:
		return bidReply(buf, status, false, msgIdemReused, 0, your, "", 0, false)
	case models.OutcomeTooManyKeys:
		// The allowance renews within a day of its first key; an hour is a
		// fair first wait, and a bid without a key is taken at once.
		return tooManyAnswer(buf, time.Hour, msgTooManyKeys)
	}
	s.d.Log.ErrorContext(ctx, "unknown bid outcome", "outcome", int(res.Outcome))
	return errorAnswer(buf, status, "internal error")
}

func (s *server) badBid(buf []byte, msg string) bidAnswer {
	s.d.Metrics.bid("invalid")
	return errorAnswer(buf, http.StatusBadRequest, msg)
}

// errorAnswer is writeError's body, encoded into buf.
func errorAnswer(buf []byte, status int, msg string) bidAnswer {
	b := append(buf, `{"success":false,"message":`...)
	b = appendString(b, msg)
	return bidAnswer{status: status, body: append(b, "}\n"...)}
}

func tooManyAnswer(buf []byte, wait time.Duration, msg string) bidAnswer {
	a := errorAnswer(buf, http.StatusTooManyRequests, msg)
	a.retryAfter = retryAfter(wait)
	return a
}

func validKey(k string) bool {
	if len(k) > maxIdemKeyLen {
		return false
	}
	for i := 0; i < len(k); i++ {
		if k[i] <= ' ' || k[i] > '~' {
			return false
		}
	}
	return true
}

// bidReply encodes a bid answer by hand into buf: the shape is fixed and
// every string in it is either ours or a validated id, so this is the hot
// path's only encoding.
// yourBid is what the bidder asked for, and whether it leads.
type yourBid struct {
	amount  models.Money
	max     bool
	highest bool
}

func bidReply(buf []byte, status int, success bool, msg string, cur models.Money, your yourBid, eventID string, minNext models.Money, withPrices bool) bidAnswer {
	b := append(buf, `{"success":`...)
	b = strconv.AppendBool(b, success)
	b = append(b, `,"message":`...)
	b = appendString(b, msg)
	if withPrices || success {
		b = append(b, `,"current_bid":`...)
		b = appendMoney(b, cur)
	}
	b = append(b, `,"your_bid":`...)
	b = appendMoney(b, your.amount)
	if your.max {
		// The bidder's own maximum, to the bidder only.
		b = append(b, `,"max_amount":`...)
		b = appendMoney(b, your.amount)
	}
	b = append(b, `,"is_highest":`...)
	b = strconv.AppendBool(b, your.highest)
	if eventID != "" {
		b = append(b, `,"event_id":`...)
		b = appendString(b, eventID)
	}
	if withPrices {
		b = append(b, `,"min_next_bid":`...)
		b = appendMoney(b, minNext)
	}
	return bidAnswer{status: status, body: append(b, "}\n"...)}
}

var (
	jsonType = []string{"application/json"}
	noStore  = []string{"no-store"}
)

func appendMoney(b []byte, m models.Money) []byte {
	v := int64(m)
	if v < 0 {
		b = append(b, '-')
		v = -v
	}
	b = strconv.AppendInt(b, v/100, 10)
	b = append(b, '.', byte('0'+v%100/10), byte('0'+v%10))
	return b
}

// appendString quotes s as JSON; plain ASCII (ids, our messages) is copied,
// anything else goes through encoding/json.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' || c > '~' || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
