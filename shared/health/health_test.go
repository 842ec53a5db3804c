package health

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestLiveness(t *testing.T) {
	t.Parallel()
	rec := httptest.NewRecorder()
	Liveness("api-gateway")(rec, httptest.NewRequest(http.MethodGet, "/health", nil))
	var body struct{ Status, Service, Time string }
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatal(err)
	}
	if rec.Code != http.StatusOK || body.Status != "healthy" || body.Service != "api-gateway" {
		t.Errorf("got %d %+v, want 200 healthy api-gateway", rec.Code, body)
	}
	if _, err := time.Parse(time.RFC3339, body.Time); err != nil {
		t.Errorf("time %q is not RFC 3339: %v", body.Time, err)
	}
}

func TestReadiness(t *testing.T) {
	t.Parallel()
	ok := func(context.Context) error { return nil }
	down := func(context.Context) error { return errors.New("connection refused") }
	for _, tt := range []struct {
		name   string
		checks map[string]Check
		want   int
	}{
		{"all up", map[string]Check{"redis": ok, "nats": ok}, http.StatusOK},
		{"one down", map[string]Check{"redis": ok, "nats": down}, http.StatusServiceUnavailable},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			Readiness("svc", time.Second, tt.checks)(rec, httptest.NewRequest(http.MethodGet, "/ready", nil))
			if rec.Code != tt.want {
				t.Errorf("status = %d, want %d (body %s)", rec.Code, tt.want, rec.Body)
			}
		})
	}
}

func TestDegradable(t *testing.T) {
	t.Parallel()
	ok := func(context.Context) error { return nil }
	down := func(context.Context) error { return errors.New("connection refused") }
	for _, tt := range []struct {
		name       string
		required   map[string]Check
		optional   map[string]Check
		wantStatus int
		wantState  string
	}{
		{"all up", map[string]Check{"redis": ok}, map[string]Check{"nats": ok}, http.StatusOK, "ready"},
		{"optional down", map[string]Check{"redis": ok}, map[string]Check{"nats": down}, http.StatusOK, "degraded"},
		{"required down", map[string]Check{"redis": down}, map[string]Check{"nats": down}, http.StatusServiceUnavailable, "not_ready"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			Degradable("svc", time.Second, tt.required, tt.optional)(rec, httptest.NewRequest(http.MethodGet, "/ready", nil))
			var body struct {
				Status string
				Checks map[string]string
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
				t.Fatal(err)
			}
			if rec.Code != tt.wantStatus || body.Status != tt.wantState || len(body.Checks) != 2 {
				t.Errorf("got %d %q %v, want %d %q and both checks", rec.Code, body.Status, body.Checks, tt.wantStatus, tt.wantState)
			}
		})
	}
}
