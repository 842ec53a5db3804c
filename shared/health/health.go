// Package health serves the /health and /ready endpoints every service has.
package health

import (
	"context"
	"encoding/json"
	"net/http"
	"time"
)

// Liveness answers the documented {"status":"healthy","service":…,"time":…}.
// It checks nothing: a process that can answer is alive.
func Liveness(service string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{
			"status":  "healthy",
			"service": service,
			"time":    time.Now().UTC().Format(time.RFC3339),
		})
	}
}

// Check reports whether one dependency is usable.
type Check func(ctx context.Context) error

// Readiness runs every check under a short deadline and answers 200 when all
// pass, 503 naming the failing ones otherwise, so a load balancer stops
// sending traffic to an instance whose dependencies are gone.
func Readiness(service string, timeout time.Duration, checks map[string]Check) http.HandlerFunc {
	return Degradable(service, timeout, checks, nil)
}

// Degradable is Readiness for a service that keeps working, with less, when
// some dependencies are down: a failing optional check is reported as
// "degraded" with 200, so a load balancer keeps the instance; only a failing
// required check answers 503. Checks run concurrently, so the answer takes
// as long as the slowest check, not their sum.
func Degradable(service string, timeout time.Duration, required, optional map[string]Check) http.HandlerFunc {
	type result struct {
		name     string
		err      error
		required bool
	}
	return func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), timeout)
		defer cancel()
		results := make(chan result, len(required)+len(optional))
		for name, check := range required {
			go func() { results <- result{name, check(ctx), true} }()
		}
		for name, check := range optional {
			go func() { results <- result{name, check(ctx), false} }()
		}
		checks := make(map[string]string, len(required)+len(optional))
		status, state := http.StatusOK, "ready"
		for range len(required) + len(optional) {
			res := <-results
			switch {
			case res.err == nil:
				checks[res.name] = "ok"
			case res.required:
				checks[res.name] = res.err.Error()
				status, state = http.StatusServiceUnavailable, "not_ready"
			default:
				checks[res.name] = "degraded: " + res.err.Error()
				if state == "ready" {
					state = "degraded"
				}
			}
		}
		writeJSON(w, status, map[string]any{"status": state, "service": service, "checks": checks})
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // the client went away; nothing to do
}
