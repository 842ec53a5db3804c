package handlers

import (
	"net/http"
	"slices"
	"time"

	"github.com/bidding-platform/shared/auth"
	"github.com/bidding-platform/shared/models"
)

type devTokenBody struct {
	UserID *string  `json:"user_id"`
	Roles  []string `json:"roles"`
}

type devTokenAnswer struct {
	Token     string    `json:"token"`
	UserID    string    `json:"user_id"`
	ExpiresAt time.Time `json:"expires_at"`
}

// devToken is POST /api/v1/dev/token, served only with AUTH_DEV_TOKENS: it
// signs a token for whoever asks, so that a local stack (the live page's
// sign-in) works without an identity provider.
func (s *server) devToken(w http.ResponseWriter, r *http.Request) {
	var body devTokenBody
	if err := decodeJSON(r, s.cfg.MaxBody, &body, "user_id and roles"); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if body.UserID == nil {
		writeError(w, http.StatusBadRequest, "user_id is required")
		return
	}
	if err := models.ValidateID(*body.UserID); err != nil {
		writeError(w, http.StatusBadRequest, "user_id: "+err.Error())
		return
	}
	if len(body.Roles) > len(auth.KnownRoles) {
		writeError(w, http.StatusBadRequest, "roles: at most one of each of seller, admin and bidder")
		return
	}
	roles := []string{}
	for _, role := range body.Roles {
		if !slices.Contains(auth.KnownRoles, role) {
			writeError(w, http.StatusBadRequest, "roles: each must be seller, admin or bidder")
			return
		}
		if !slices.Contains(roles, role) {
			roles = append(roles, role)
		}
	}
	tok, exp, err := s.auth.Issue(*body.UserID, roles, time.Now(), auth.DevTokenTTL)
	if err != nil {
		s.d.Log.ErrorContext(r.Context(), "issue dev token", "err", err)
		writeError(w, http.StatusInternalServerError, "internal error")
		return
	}
	writeJSON(w, http.StatusOK, devTokenAnswer{Token: tok, UserID: *body.UserID, ExpiresAt: exp})
}
