package handlers

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/golang-jwt/jwt/v5"

	"github.com/bidding-platform/api-gateway/internal/service"
	"github.com/bidding-platform/shared/models"
)

// Answer messages; the first two are the README's.
const (
	msgAccepted    = "Bid accepted"
	msgTooLow      = "Bid amount must be higher than current bid"
	msgNotActive   = "Auction is not active"
	msgNotFound    = "Item not found"
	msgIdemReused  = "Idempotency-Key was already used for a different bid"
	msgUnavailable = "Bidding is temporarily unavailable (Redis unreachable); retry shortly"
	bidFields      = "user_id and amount"
	maxIdemKeyLen  = 128
)

type bidBody struct {
	UserID *string         `json:"user_id"`
	Amount json.RawMessage `json:"amount"`
}

func (s *server) placeBid(w http.ResponseWriter, r *http.Request) {
	itemID := chi.URLParam(r, "id")
	if err := models.ValidateID(itemID); err != nil {
		s.badBid(w, "item id: "+err.Error())
		return
	}
	var subject string
	if s.cfg.JWTSecret != "" {
		sub, err := s.authenticate(r)
		if err != nil {
			s.d.Metrics.bid("unauthorized")
			w.Header().Set("WWW-Authenticate", `Bearer realm="bids"`)
			writeError(w, http.StatusUnauthorized, err.Error())
			return
		}
		subject = sub
	}
	buf, err := readBody(r, s.cfg.MaxBody)
	if err != nil {
		s.badBid(w, err.Error())
		return
	}
	defer releaseBody(buf)
	var (
		userID     string
		amountText []byte
	)
	if u, a, ok := parseBidFast(buf.Bytes()); ok {
		userID, amountText = string(u), a
	} else {
		var body bidBody
		if err := decodeBytes(buf.Bytes(), &body, bidFields); err != nil {
			s.badBid(w, err.Error())
			return
		}
		if body.UserID == nil {
			s.badBid(w, "user_id is required")
			return
		}
		if len(body.Amount) == 0 {
			s.badBid(w, "amount is required")
			return
		}
		userID, amountText = *body.UserID, body.Amount
	}
	if err := models.ValidateID(userID); err != nil {
		s.badBid(w, "user_id: "+err.Error())
		return
	}
	// The number's text, never float64: 0.1+0.2 must stay exact.
	amount, err := models.ParseMoney(string(amountText))
	if err != nil {
		s.badBid(w, "amount: "+err.Error())
		return
	}
	key := r.Header.Get("Idempotency-Key")
	if key != "" && !validKey(key) {
		s.badBid(w, fmt.Sprintf("Idempotency-Key must be 1-%d visible ASCII characters", maxIdemKeyLen))
		return
	}
	if s.cfg.JWTSecret != "" && subject != userID {
		s.d.Metrics.bid("forbidden")
		writeError(w, http.StatusForbidden, "user_id must be the authenticated user (the token's subject)")
		return
	}
	if s.perUser != nil {
		if ok, wait := s.perUser.allow(userID, time.Now()); !ok {
			s.d.Metrics.bid("rate_limited")
			tooMany(w, wait, "rate limit exceeded for this user")
			return
		}
	}
	res, err := s.d.Bids.PlaceBid(r.Context(), service.Bid{ItemID: itemID, UserID: userID, Amount: amount, IdempotencyKey: key})
	if err != nil {
		s.d.Metrics.bid("unavailable")
		if r.Context().Err() == nil {
			s.d.Log.Warn("bid store unavailable", "item_id", itemID, "err", err)
		}
		w.Header().Set("Retry-After", "1")
		s.writeBid(w, http.StatusServiceUnavailable, false, msgUnavailable, 0, amount, "", 0, false)
		return
	}
	s.d.Metrics.bid(outcomeName(res.Outcome))
	it := res.Item
	switch res.Outcome {
	case service.OutcomeAccepted:
		eventID := ""
		if res.Event != nil {
			eventID = res.Event.EventID
		}
		// A replayed answer is the first answer: that bid became the price.
		cur := it.CurrentBid
		if res.Replayed {
			cur = amount
		}
		s.writeBid(w, http.StatusOK, true, msgAccepted, cur, amount, eventID, it.MinNextBid(), true)
	case service.OutcomeTooLow:
		// The README's message even below the starting price; min_next_bid
		// says what would win.
		s.writeBid(w, http.StatusConflict, false, msgTooLow, it.CurrentBid, amount, "", it.MinNextBid(), true)
	case service.OutcomeNotActive:
		msg := msgNotActive
		if it.Status != "" {
			msg += " (" + string(it.Status) + ")"
		}
		s.writeBid(w, http.StatusConflict, false, msg, it.CurrentBid, amount, "", it.MinNextBid(), it.ID != "")
	case service.OutcomeNotFound:
		s.writeBid(w, http.StatusNotFound, false, msgNotFound, 0, amount, "", 0, false)
	case service.OutcomeIdempotencyConflict:
		s.writeBid(w, http.StatusUnprocessableEntity, false, msgIdemReused, 0, amount, "", 0, false)
	default:
		s.d.Log.Error("unknown bid outcome", "outcome", int(res.Outcome))
		writeError(w, http.StatusInternalServerError, "internal error")
	}
}

func (s *server) badBid(w http.ResponseWriter, msg string) {
	s.d.Metrics.bid("invalid")
	writeError(w, http.StatusBadRequest, msg)
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

// authenticate checks the bearer token and returns its subject.
func (s *server) authenticate(r *http.Request) (string, error) {
	h := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(h, "Bearer ")
	if !ok || strings.TrimSpace(tok) == "" {
		return "", errors.New("authentication required: send Authorization: Bearer <token>")
	}
	var claims jwt.RegisteredClaims
	_, err := s.jwt.ParseWithClaims(strings.TrimSpace(tok), &claims, func(*jwt.Token) (any, error) {
		return []byte(s.cfg.JWTSecret), nil
	})
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return "", errors.New("token expired")
	case err != nil:
		return "", errors.New("invalid token")
	case claims.Subject == "":
		return "", errors.New("token has no subject")
	}
	return claims.Subject, nil
}

// writeBid encodes a bid answer by hand, once, into a pooled buffer: the
// shape is fixed and every string in it is either ours or a validated id,
// so this is the hot path's only encoding.
func (s *server) writeBid(w http.ResponseWriter, status int, success bool, msg string, cur, your models.Money, eventID string, minNext models.Money, withPrices bool) {
	bp := s.bufs.Get().(*[]byte)
	b := (*bp)[:0]
	b = append(b, `{"success":`...)
	b = strconv.AppendBool(b, success)
	b = append(b, `,"message":`...)
	b = appendString(b, msg)
	if withPrices || success {
		b = append(b, `,"current_bid":`...)
		b = appendMoney(b, cur)
	}
	b = append(b, `,"your_bid":`...)
	b = appendMoney(b, your)
	b = append(b, `,"is_highest":`...)
	b = strconv.AppendBool(b, success)
	if eventID != "" {
		b = append(b, `,"event_id":`...)
		b = appendString(b, eventID)
	}
	if withPrices {
		b = append(b, `,"min_next_bid":`...)
		b = appendMoney(b, minNext)
	}
	b = append(b, "}\n"...)
	h := w.Header()
	h["Content-Type"] = jsonType
	h["Cache-Control"] = noStore
	w.WriteHeader(status)
	_, _ = w.Write(b) // the client went away; nothing to do
	*bp = b
	s.bufs.Put(bp)
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
