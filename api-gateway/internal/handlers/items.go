package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/bidding-platform/api-gateway/internal/service"
	"github.com/bidding-platform/shared/auth"
	"github.com/bidding-platform/shared/models"
)

const (
	itemFields   = "id, name, starting_price, min_increment, reserve_price, starts_at, ends_at and seller_id"
	defaultLimit = 50
	maxLimit     = 500
)

type itemBody struct {
	ID            *string         `json:"id"`
	Name          *string         `json:"name"`
	StartingPrice json.RawMessage `json:"starting_price"`
	MinIncrement  json.RawMessage `json:"min_increment"`
	ReservePrice  json.RawMessage `json:"reserve_price"`
	StartsAt      *string         `json:"starts_at"`
	EndsAt        *string         `json:"ends_at"`
	// SellerID names the seller: only an admin may name another than
	// itself; without authentication it is simply taken.
	SellerID *string `json:"seller_id"`
}

// itemView is an item as one caller may see it: the reserve is the
// seller's secret, so only the seller and admins (and everyone when
// authentication is disabled, where nobody has an identity) get
// reserve_price; everyone gets reserve_met.
type itemView struct {
	models.Item
	ReservePrice *models.Money `json:"reserve_price,omitempty"`
	ReserveMet   bool          `json:"reserve_met"`
	SellerID     string        `json:"seller_id"`
}

func (s *server) view(it models.Item, caller auth.Identity) itemView {
	v := itemView{Item: it, ReserveMet: it.ReserveMet(), SellerID: it.SellerID}
	owner := s.auth.Disabled() || caller.Admin() || (caller.Subject != "" && caller.Subject == it.SellerID)
	if owner && it.ReservePrice > 0 {
		v.ReservePrice = &it.ReservePrice
	}
	return v
}

func (s *server) createItem(w http.ResponseWriter, r *http.Request) {
	caller, ok := s.identify(w, r, true)
	if !ok {
		return
	}
	if !s.auth.Disabled() && !caller.Has(auth.RoleSeller) && !caller.Admin() {
		writeError(w, http.StatusForbidden, "creating an auction needs the seller role in the token")
		return
	}
	var body itemBody
	if err := decodeJSON(r, s.cfg.MaxBody, &body, itemFields); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	n, err := body.parse()
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if !s.auth.Disabled() {
		switch {
		case n.SellerID == "":
			n.SellerID = caller.Subject
		case n.SellerID != caller.Subject && !caller.Admin():
			writeError(w, http.StatusForbidden, "seller_id must be the authenticated user (only an admin may name another seller)")
			return
		}
	}
	it, err := s.d.Bids.CreateItem(r.Context(), n)
	if err != nil {
		s.fail(w, r, "create item", err, "item_id", n.ID)
		return
	}
	w.Header().Set("Location", "/api/v1/items/"+it.ID)
	writeJSON(w, http.StatusCreated, s.view(it, caller))
}

// cancelItem is POST /api/v1/items/{id}/cancel: the seller before the
// first bid, an admin at any time.
func (s *server) cancelItem(w http.ResponseWriter, r *http.Request) {
	caller, ok := s.identify(w, r, true)
	if !ok {
		return
	}
	id := chi.URLParam(r, "id")
	if err := models.ValidateID(id); err != nil {
		writeError(w, http.StatusBadRequest, "item id: "+err.Error())
		return
	}
	// Nothing to say in a body; one that is sent must be empty or {}.
	var body struct{}
	if r.ContentLength != 0 {
		if err := decodeJSON(r, s.cfg.MaxBody, &body, "no fields"); err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
	}
	by := service.Canceller{ID: caller.Subject, Any: s.auth.Disabled() || caller.Admin()}
	it, err := s.d.Bids.CancelItem(r.Context(), id, by)
	if err != nil {
		s.fail(w, r, "cancel item", err, "item_id", id)
		return
	}
	writeJSON(w, http.StatusOK, s.view(it, caller))
}

func (b itemBody) parse() (service.NewItem, error) {
	var n service.NewItem
	if b.ID != nil {
		if err := models.ValidateID(*b.ID); err != nil {
			return n, fmt.Errorf("id: %w", err)
		}
		n.ID = *b.ID
	}
	if b.Name == nil || *b.Name == "" {
		return n, errors.New("name is required")
	}
	n.Name = *b.Name
	if len(b.StartingPrice) == 0 {
		return n, errors.New("starting_price is required")
	}
	var err error
	if n.StartingPrice, err = models.ParseMoney(string(b.StartingPrice)); err != nil {
		return n, fmt.Errorf("starting_price: %w", err)
	}
	if len(b.MinIncrement) > 0 {
		if n.MinIncrement, err = models.ParseMoney(string(b.MinIncrement)); err != nil {
			return n, fmt.Errorf("min_increment: %w", err)
		}
	}
	if len(b.ReservePrice) > 0 {
		if n.ReservePrice, err = models.ParseMoney(string(b.ReservePrice)); err != nil {
			return n, fmt.Errorf("reserve_price: %w", err)
		}
	}
	if b.StartsAt != nil {
		if n.StartsAt, err = time.Parse(time.RFC3339, *b.StartsAt); err != nil {
			return n, errors.New("starts_at must be an RFC 3339 time like 2024-01-01T00:00:00Z")
		}
	}
	if b.EndsAt != nil {
		if n.EndsAt, err = time.Parse(time.RFC3339, *b.EndsAt); err != nil {
			return n, errors.New("ends_at must be an RFC 3339 time like 2024-01-02T00:00:00Z")
		}
	}
	if b.SellerID != nil {
		if err := models.ValidateID(*b.SellerID); err != nil {
			return n, fmt.Errorf("seller_id: %w", err)
		}
		n.SellerID = *b.SellerID
	}
	return n, nil
}

func (s *server) getItem(w http.ResponseWriter, r *http.Request) {
	// Public, but a token decides whether the caller sees the reserve.
	caller, ok := s.identify(w, r, false)
	if !ok {
		return
	}
	id := chi.URLParam(r, "id")
	it, err := s.d.Bids.Item(r.Context(), id)
	if err != nil {
		s.fail(w, r, "read item", err, "item_id", id)
		return
	}
	writeJSON(w, http.StatusOK, s.view(it, caller))
}

func (s *server) bidHistory(w http.ResponseWriter, r *http.Request) {
	itemID := chi.URLParam(r, "id")
	if err := models.ValidateID(itemID); err != nil {
		writeError(w, http.StatusBadRequest, "item id: "+err.Error())
		return
	}
	limit := defaultLimit
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxLimit {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("limit must be a whole number from 1 to %d", maxLimit))
			return
		}
		limit = n
	}
	cursor := r.URL.Query().Get("cursor")
	if len(cursor) > 512 {
		writeError(w, http.StatusBadRequest, models.ErrBadCursor.Error())
		return
	}
	if s.d.History == nil {
		writeError(w, http.StatusServiceUnavailable, "Bid history is not configured")
		return
	}
	// PostgreSQL is never on the bid path; a slow one only slows this.
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	page, err := s.d.History.BidHistory(ctx, itemID, limit, cursor)
	if err != nil {
		if models.ErrorKind(err) == models.KindInternal {
			// Whatever the archive's reader could not say itself means
			// PostgreSQL did not answer; bidding never waits for it.
			err = models.Wrap(models.KindUnavailable, historyUnavailable, err)
		}
		s.fail(w, r, "read bid history", err, "item_id", itemID)
		return
	}
	if page.Bids == nil {
		page.Bids = []models.Bid{}
	}
	if page.ItemID == "" {
		page.ItemID = itemID
	}
	writeJSON(w, http.StatusOK, page)
}

const historyUnavailable = "Bid history is temporarily unavailable (PostgreSQL unreachable); bidding is not affected"
