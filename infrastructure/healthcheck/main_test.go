package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestRun(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/health" {
			http.Error(w, "down", http.StatusServiceUnavailable)
		}
	}))
	t.Cleanup(srv.Close)

	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{name: "healthy", args: []string{srv.URL + "/health"}},
		{name: "timeout flag", args: []string{"-timeout", "1s", srv.URL + "/health"}},
		{name: "unhealthy", args: []string{srv.URL + "/ready"}, wantErr: "status 503"},
		{name: "no url", args: nil, wantErr: "usage"},
		{name: "two urls", args: []string{srv.URL, srv.URL}, wantErr: "usage"},
		{name: "bad flag", args: []string{"-nope", srv.URL}, wantErr: "not defined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := run(context.Background(), tt.args)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("run(%q) = %v, want nil", tt.args, err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("run(%q) = %v, want error containing %q", tt.args, err, tt.wantErr)
			}
		})
	}
}
