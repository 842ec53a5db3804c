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
