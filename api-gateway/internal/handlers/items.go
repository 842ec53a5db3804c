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
	"github.com/bidding-platform/shared/models"
)

const (
	itemFields   = "id, name, starting_price, min_increment, reserve_price, starts_at and ends_at"
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
}

func (s *server) createItem(w http.ResponseWriter, r *http.Request) {
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
	it, err := s.d.Bids.CreateItem(r.Context(), n)
	if err != nil {
		s.fail(w, r, "create item", err, "item_id", n.ID)
		return
	}
	w.Header().Set("Location", "/api/v1/items/"+it.ID)
	writeJSON(w, http.StatusCreated, it)
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
	return n, nil
}

func (s *server) getItem(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	it, err := s.d.Bids.Item(r.Context(), id)
	if err != nil {
		s.fail(w, r, "read item", err, "item_id", id)
		return
	}
	writeJSON(w, http.StatusOK, it)
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
