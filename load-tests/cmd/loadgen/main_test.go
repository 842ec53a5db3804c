package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/bidding-platform/load-tests/internal/auctiontest"
)

func TestRunPrintsJSONReport(t *testing.T) {
	t.Parallel()
	fx := auctiontest.New()
	srv := httptest.NewServer(fx)
	defer srv.Close()
	var out bytes.Buffer
	err := run(context.Background(), []string{"-url", srv.URL, "-item", "cli", "-requests", "50",
		"-concurrency", "4", "-bid-mode", "flood", "-flood-amount", "12.34", "-strategy-label", "fixture", "-json"}, &out)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	var rep struct {
		Label    string  `json:"label"`
		Requests int     `json:"requests"`
		Accepted int     `json:"accepted"`
		Highest  float64 `json:"highest_accepted"`
	}
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("decode %s: %v", out.String(), err)
	}
	if rep.Label != "fixture" || rep.Requests != 50 || rep.Accepted != 1 || rep.Highest != 12.34 {
		t.Errorf("report %+v: want label fixture, 50 requests, 1 accepted at 12.34 (one fixed amount)", rep)
	}
	if got, want := fx.Counts().Requests, 50; got != want {
		t.Errorf("fixture saw %d bids, want %d", got, want)
	}
}

func TestRunRejectsBadFlags(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"-url", "http://203.0.113.5:8080"}, "only loopback"},
		{[]string{"-increment", "1.001"}, "two decimal places"},
		{[]string{"-bid-mode", "spray"}, "bid mode"},
		{[]string{"extra"}, "unexpected arguments"},
	}
	for _, tt := range tests {
		var out bytes.Buffer
		err := run(context.Background(), tt.args, &out)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("run(%q) = %v, want an error mentioning %q", tt.args, err, tt.want)
		}
	}
}
