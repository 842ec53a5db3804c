package handlers

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/bidding-platform/api-gateway/internal/service"
	"github.com/bidding-platform/shared/auth"
	"github.com/bidding-platform/shared/models"
)

// UserActivity is a user's own bids and items.
type UserActivity interface {
	UserBids(ctx context.Context, userID string, limit int, cursor string) (service.UserBidPage, error)
	UserItems(ctx context.Context, userID string, role service.Role, limit int, cursor string) (service.UserItemPage, error)
}

type userBidView struct {
	models.Bid
	ItemName   string        `json:"item_name"`
	ItemStatus models.Status `json:"item_status"`
	Leading    bool          `json:"leading"`
	Won        bool          `json:"won"`
}

type userBidsBody struct {
	Bids       []userBidView `json:"bids"`
	NextCursor string        `json:"next_cursor,omitempty"`
}

// userItemView is GET /api/v1/items/{id}'s shape with the user's part.
type userItemView struct {
	itemView
	Leading bool          `json:"leading"`
	YourBid *models.Money `json:"your_bid,omitempty"`
}

type userItemsBody struct {
	Items      []userItemView `json:"items"`
	NextCursor string         `json:"next_cursor,omitempty"`
}

// userBids is GET /api/v1/users/{id}/bids.
func (s *server) userBids(w http.ResponseWriter, r *http.Request) {
	_, userID, limit, cursor, ok := s.userRequest(w, r)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	page, err := s.d.Users.UserBids(ctx, userID, limit, cursor)
	if err != nil {
		s.fail(w, r, "read user bids", err, "user_id", userID)
		return
	}
	body := userBidsBody{Bids: make([]userBidView, 0, len(page.Bids)), NextCursor: page.NextCursor}
	for _, b := range page.Bids {
		body.Bids = append(body.Bids, userBidView{Bid: b.Bid, ItemName: b.ItemName, ItemStatus: b.ItemStatus, Leading: b.Leading, Won: b.Won})
	}
	writeJSON(w, http.StatusOK, body)
}

// userItems is GET /api/v1/users/{id}/items.
func (s *server) userItems(w http.ResponseWriter, r *http.Request) {
	caller, userID, limit, cursor, ok := s.userRequest(w, r)
	if !ok {
		return
	}
	role := service.Role(r.URL.Query().Get("role"))
	valid := false
	names := make([]string, len(service.Roles))
	for i, v := range service.Roles {
		valid = valid || role == v
		names[i] = string(v)
	}
	if !valid {
		writeError(w, http.StatusBadRequest, "role must be one of "+strings.Join(names, ", "))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	page, err := s.d.Users.UserItems(ctx, userID, role, limit, cursor)
	if err != nil {
		s.fail(w, r, "read user items", err, "user_id", userID, "role", string(role))
		return
	}
	body := userItemsBody{Items: make([]userItemView, 0, len(page.Items)), NextCursor: page.NextCursor}
	for _, it := range page.Items {
		body.Items = append(body.Items, userItemView{itemView: s.view(it.Item, caller), Leading: it.Leading, YourBid: it.YourBid})
	}
	writeJSON(w, http.StatusOK, body)
}

// userRequest checks who asks for a user's lists (the user or an admin;
// with authentication disabled, anyone) and reads the paging parameters.
// On failure it has answered.
func (s *server) userRequest(w http.ResponseWriter, r *http.Request) (caller auth.Identity, userID string, limit int, cursor string, ok bool) {
	caller, ok = s.identify(w, r, true)
	if !ok {
		return caller, "", 0, "", false
	}
	userID = chi.URLParam(r, "id")
	if err := models.ValidateID(userID); err != nil {
		writeError(w, http.StatusBadRequest, "user id: "+err.Error())
		return caller, "", 0, "", false
	}
	if !s.auth.Disabled() && caller.Subject != userID && !caller.Admin() {
		writeError(w, http.StatusForbidden, "a user's bids and items are theirs: the token's subject must be the user, or have the admin role")
		return caller, "", 0, "", false
	}
	q := r.URL.Query()
	limit = service.DefaultUserLimit
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > service.MaxUserLimit {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("limit must be a whole number from 1 to %d", service.MaxUserLimit))
			return caller, "", 0, "", false
		}
		limit = n
	}
	cursor = q.Get("cursor")
	if len(cursor) > 512 {
		writeError(w, http.StatusBadRequest, service.ErrBadUserCursor.Error())
		return caller, "", 0, "", false
	}
	if s.d.Users == nil {
		writeError(w, http.StatusServiceUnavailable, "a user's bids and items are not configured")
		return caller, "", 0, "", false
	}
	return caller, userID, limit, cursor, true
}
