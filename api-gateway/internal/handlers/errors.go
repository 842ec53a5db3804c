package handlers

import (
	"context"
	"net/http"

	"github.com/bidding-platform/shared/models"
)

// statusOf is the one mapping from a domain error's kind to an HTTP status,
// shared by both HTTP paths.
func statusOf(kind models.Kind) int {
	switch kind {
	case "":
		return http.StatusOK
	case models.KindInvalid:
		return http.StatusBadRequest
	case models.KindForbidden:
		return http.StatusForbidden
	case models.KindNotFound:
		return http.StatusNotFound
	case models.KindConflict:
		return http.StatusConflict
	case models.KindMismatch:
		return http.StatusUnprocessableEntity
	case models.KindUnavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// outcomeKind is the error kind of a bid that was not accepted: its status
// comes from statusOf like every other failure's.
func outcomeKind(o models.Outcome) models.Kind {
	switch o {
	case models.OutcomeAccepted, models.OutcomeOutbid:
		return ""
	case models.OutcomeTooLow, models.OutcomeNotActive:
		return models.KindConflict
	case models.OutcomeNotFound:
		return models.KindNotFound
	case models.OutcomeIdempotencyConflict:
		return models.KindMismatch
	}
	return models.KindInternal
}

// failure is how any request answers err: the status of its kind, the
// message a client may read, and a Retry-After for outages. This is where a
// failure is logged, once: an internal error with its cause (the client
// only reads "internal error"), an outage as a warning unless the client
// left first.
func (s *server) failure(ctx context.Context, op string, err error, attrs ...any) (status int, msg, retryAfter string) {
	kind := models.ErrorKind(err)
	switch kind {
	case models.KindInternal:
		s.d.Log.ErrorContext(ctx, op, append(attrs, "err", err)...)
	case models.KindUnavailable:
		retryAfter = "1"
		if ctx.Err() == nil {
			s.d.Log.WarnContext(ctx, op, append(attrs, "err", err)...)
		}
	}
	return statusOf(kind), models.ErrorMessage(err), retryAfter
}

// fail answers err on the net/http path.
func (s *server) fail(w http.ResponseWriter, r *http.Request, op string, err error, attrs ...any) {
	status, msg, retryAfter := s.failure(r.Context(), op, err, attrs...)
	if retryAfter != "" {
		w.Header().Set("Retry-After", retryAfter)
	}
	writeError(w, status, msg)
}
