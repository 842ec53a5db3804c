package handlers

import (
	"context"
	"net/http"
	"strconv"

	"github.com/bidding-platform/api-gateway/internal/service"
	"github.com/bidding-platform/shared/models"
)

// Browser lists auctions by status, a page at a time.
type Browser interface {
	Browse(ctx context.Context, status models.Status, limit int, cursor string) (service.ItemPage, error)
}

// browseItems is GET /api/v1/items?status=&limit=&cursor=: public like a
// single item, and like it a token decides whether the caller sees a
// reserve. As in bid history, a limit outside 1..100 is refused, not
// clamped.
func (s *server) browseItems(w http.ResponseWriter, r *http.Request) {
	caller, ok := s.identify(w, r, false)
	if !ok {
		return
	}
	q := r.URL.Query()
	status := models.StatusActive
	if v := q.Get("status"); v != "" {
		status = models.Status(v)
	}
	limit := service.BrowseDefaultLimit
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			writeError(w, http.StatusBadRequest, service.ErrBrowseLimit.Error())
			return
		}
		limit = n // Browse refuses one out of range
	}
	cursor := q.Get("cursor")
	if len(cursor) > 512 {
		writeError(w, http.StatusBadRequest, service.ErrBadBrowseCursor.Error())
		return
	}
	if s.d.Browse == nil {
		writeError(w, http.StatusServiceUnavailable, "listing auctions is not configured")
		return
	}
	page, err := s.d.Browse.Browse(r.Context(), status, limit, cursor)
	if err != nil {
		s.fail(w, r, "browse items", err, "status", status)
		return
	}
	writeJSON(w, http.StatusOK, s.itemsPage(page, caller))
}
