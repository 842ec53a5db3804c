// Package health serves the /health and /ready endpoints every service has.
package health

import (
	"context"
	"encoding/json"
	"net/http"
	"sort"
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
	names := make([]string, 0, len(checks))
	for name := range checks {
		names = append(names, name)
	}
	sort.Strings(names)
	return func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), timeout)
		defer cancel()
		results := make(map[string]string, len(checks))
		status := http.StatusOK
		for _, name := range names {
			if err := checks[name](ctx); err != nil {
				results[name] = err.Error()
				status = http.StatusServiceUnavailable
				continue
			}
			results[name] = "ok"
		}
		state := "ready"
		if status != http.StatusOK {
			state = "not_ready"
		}
		writeJSON(w, status, map[string]any{"status": state, "service": service, "checks": results})
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // the client went away; nothing to do
}
