package probe_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/bidding-platform/infrastructure/internal/probe"
)

func TestCheck(t *testing.T) {
	t.Parallel()
	mux := http.NewServeMux()
	mux.HandleFunc("/health", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"healthy"}`))
	})
	mux.HandleFunc("/ready", func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "redis down", http.StatusServiceUnavailable)
	})
	mux.HandleFunc("/slow", func(_ http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	// A port nobody listens on: bind one, note it, close it.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String() + "/health"
	ln.Close()

	tests := []struct {
		name    string
		url     string
		wantErr string // empty: success
	}{
		{name: "healthy", url: srv.URL + "/health"},
		{name: "503", url: srv.URL + "/ready", wantErr: "status 503"},
		{name: "404", url: srv.URL + "/nope", wantErr: "status 404"},
		{name: "hung", url: srv.URL + "/slow", wantErr: "deadline exceeded"},
		{name: "refused", url: closed, wantErr: "refused"},
		{name: "no scheme", url: "localhost/health", wantErr: "want http(s)"},
		{name: "other scheme", url: "ftp://127.0.0.1/health", wantErr: "want http(s)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			defer cancel()
			err := probe.Check(ctx, srv.Client(), tt.url)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Check(%q) = %v, want nil", tt.url, err)
			case tt.wantErr != "" && err == nil:
				t.Fatalf("Check(%q) = nil, want error containing %q", tt.url, tt.wantErr)
			case tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr):
				t.Fatalf("Check(%q) = %v, want error containing %q", tt.url, err, tt.wantErr)
			}
		})
	}
}
