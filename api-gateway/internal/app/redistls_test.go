package app

import (
	"net/http"
	"testing"

	"github.com/bidding-platform/shared/config"
	"github.com/bidding-platform/shared/testenv"
)

// TestRedisOverTLSWithACLUser: the gateway reaches a Redis that, like
// MemoryDB, speaks only TLS and only to an ACL user. With a wrong password
// it starts, is not ready, and answers bids 503.
func TestRedisOverTLSWithACLUser(t *testing.T) {
	t.Parallel()
	r := testenv.SecureRedis(t)
	n := testenv.NATS(t)
	cfg := testConfig([]string{r.Addr()}, false, n.URL())
	cfg.RedisTLS, cfg.RedisTLSCAFile = true, r.CAFile
	cfg.RedisUsername, cfg.RedisPassword = r.Username, config.Secret(r.Password)
	g := startGateway(t, cfg)
	g.createItem(t, "lot", "1.00", "1.00")
	if a := g.bid(t, "lot", "alice", "2.00"); a.Status != http.StatusOK {
		t.Fatalf("bid over TLS = %d %s, want 200", a.Status, a.Body)
	}
	if a := do(t, "GET", g.url+"/ready", ""); a.Status != http.StatusOK {
		t.Errorf("/ready over TLS = %d %s, want 200", a.Status, a.Body)
	}

	wrong := cfg
	wrong.RedisPassword = "not-the-password"
	bad := startGateway(t, wrong)
	if a := bad.bid(t, "lot", "bob", "3.00"); a.Status != http.StatusServiceUnavailable {
		t.Errorf("bid with a wrong Redis password = %d %s, want 503", a.Status, a.Body)
	}
	if a := do(t, "GET", bad.url+"/ready", ""); a.Status != http.StatusServiceUnavailable {
		t.Errorf("/ready with a wrong Redis password = %d %s, want 503", a.Status, a.Body)
	}
	if it := g.item(t, "lot"); it.CurrentBid != 200 || it.HighestBidderID != "alice" {
		t.Errorf("item = %+v, want alice's 2.00 only", it)
	}
}
