package web_test

import (
	"bufio"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bidding-platform/broadcast-service/internal/app"
	"github.com/bidding-platform/shared/auth"
	"github.com/bidding-platform/shared/config"
)

// A personal channel reads its user's items from the real gateway on the
// user's behalf: behind a load balancer both services trust, the read
// counts against the user's address, so the reconnects of every user after
// a deploy do not exhaust this service's own address's limit.
func TestSeedCountsAgainstTheUsersAddress(t *testing.T) {
	// One request per address per 20 s; the test's own requests to the
	// gateway would be refused, so it signs its tokens itself.
	p := startPlatform(t, func(c *app.Config) { c.TrustForwardedFor = true },
		"TRUST_PROXY_HEADERS=true", "RATE_LIMIT_PER_IP=0.05")
	ac := auth.DefaultConfig()
	ac.Secret, ac.DevTokens = config.Secret(testSecret), true
	issuer, err := auth.New(ac, nil)
	if err != nil {
		t.Fatal(err)
	}
	open := func(user, addr string) {
		t.Helper()
		tok, _, err := issuer.Issue(user, nil, time.Now(), time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		p.personalChannel(t, user, tok, http.Header{"X-Forwarded-For": {addr}})
	}

	for i, user := range []string{"alice", "bob", "carol", "dave", "erin"} {
		open(user, fmt.Sprintf("198.51.100.%d", i+1))
	}
	if got := p.metric(t, "broadcast_personal_seed_failures_total"); got != 0 {
		t.Fatalf("%v seeds failed, want none: five users from five addresses", got)
	}
	// Two users behind one address share its limit.
	open("frank", "203.0.113.9")
	open("grace", "203.0.113.9")
	if got := p.metric(t, "broadcast_personal_seed_failures_total"); got != 1 {
		t.Fatalf("%v seeds failed, want 1: the second user from 203.0.113.9", got)
	}
}

// metric reads one unlabelled metric of this service.
func (p *platform) metric(t *testing.T, name string) float64 {
	t.Helper()
	resp, err := http.Get(p.page + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			return f
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}
