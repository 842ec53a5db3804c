package app

import (
	"strings"
	"testing"
	"time"

	"github.com/bidding-platform/shared/config"
)

func TestLoadConfig(t *testing.T) {
	t.Parallel()
	c, err := LoadConfig(config.FromMap(map[string]string{
		"SERVER_ADDR": ":9090", "REDIS_ADDR": "a:1,b:2,c:3", "REDIS_CLUSTER": "true", "REDIS_STRATEGY": "optimistic",
		"AUTH_JWT_SECRET": testSecret, "MAX_AUCTION_DURATION": "72h", "RATE_LIMIT_PER_USER": "0", "SOFT_CLOSE": "0", "PREFILTER": "false", "COALESCE": "off",
		"CORS_ALLOWED_ORIGINS": "http://a, http://b", "CLOSED_ITEM_RETENTION": "0", "NATS_URL": "nats://n1:4222, tls://n2:4222",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != ":9090" || len(c.RedisAddrs) != 3 || !c.RedisCluster || c.RedisStrategy != "optimistic" || c.Auth.Secret.Reveal() != testSecret || c.Auth.Disabled || c.MaxAuctionLength != 72*time.Hour ||
		c.RatePerUser != 0 || c.SoftClose != 0 || c.Prefilter || c.Coalesce || len(c.CORSOrigins) != 2 || c.RatePerIP != 200 || c.AuctionLength != 24*time.Hour ||
		c.ClosedRetention != 0 || c.NATSURL != "nats://n1:4222,tls://n2:4222" {
		t.Errorf("LoadConfig = %+v", c)
	}
	d, err := LoadConfig(config.FromMap(map[string]string{"AUTH_DISABLED": "true"}))
	if err != nil || !d.Prefilter || !d.Coalesce || d.Addr != ":8080" || d.RedisStrategy != "lua" || d.ClosedRetention != 30*24*time.Hour ||
		d.MaxAuctionLength != 30*24*time.Hour || d.Auth.RolesClaim != "roles" || !d.Auth.Disabled {
		t.Errorf("defaults = %+v, %v", d, err)
	}
	_, err = LoadConfig(config.FromMap(map[string]string{"REDIS_STRATEGY": "magic", "NATS_URL": "n1:4222", "REDIS_ADDR": "a:1,b:2", "RATE_LIMIT_PER_IP": "-1", "PREFILTER": "maybe", "LOG_LEVEL": "loud", "CLOSED_ITEM_RETENTION": "5s"}))
	for _, want := range []string{"REDIS_STRATEGY", "REDIS_CLUSTER=true", "RATE_LIMIT_PER_IP", "PREFILTER", "LOG_LEVEL", "CLOSED_ITEM_RETENTION", "NATS_URL"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("LoadConfig of bad values: %v, want a mention of %s", err, want)
		}
	}
}

// Without a way to check tokens the gateway does not start: LoadConfig, and
// New for a Config built in code, refuse with a message naming the AUTH_
// settings.
func TestRefusesToStartWithoutAuth(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		env  map[string]string
		want []string
	}{
		{"nothing set", nil, []string{"AUTH_JWT_SECRET", "AUTH_JWKS_URL", "AUTH_DISABLED=true"}},
		{"blank secret", map[string]string{"AUTH_JWT_SECRET": "  "}, []string{"AUTH_JWT_SECRET", "AUTH_JWKS_URL", "AUTH_DISABLED=true"}},
		{"short secret", map[string]string{"AUTH_JWT_SECRET": "short"}, []string{"AUTH_JWT_SECRET is too short", "32 bytes"}},
		{"disabled is false", map[string]string{"AUTH_DISABLED": "false"}, []string{"AUTH_JWT_SECRET", "AUTH_JWKS_URL"}},
		{"two ways", map[string]string{"AUTH_JWT_SECRET": testSecret, "AUTH_DISABLED": "true"}, []string{"only one of AUTH_JWT_SECRET, AUTH_JWKS_URL and AUTH_DISABLED"}},
		{"bad JWKS URL", map[string]string{"AUTH_JWKS_URL": "keys.example"}, []string{"AUTH_JWKS_URL"}},
		{"dev tokens with JWKS", map[string]string{"AUTH_JWKS_URL": "https://idp.example/jwks.json", "AUTH_DEV_TOKENS": "true"}, []string{"AUTH_DEV_TOKENS=true needs AUTH_JWT_SECRET"}},
		{"dev tokens without secret", map[string]string{"AUTH_DISABLED": "true", "AUTH_DEV_TOKENS": "true"}, []string{"AUTH_DEV_TOKENS=true needs AUTH_JWT_SECRET"}},
		{"auction length", map[string]string{"AUTH_DISABLED": "true", "MAX_AUCTION_DURATION": "1h"}, []string{"DEFAULT_AUCTION_DURATION", "MAX_AUCTION_DURATION"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LoadConfig(config.FromMap(tt.env))
			for _, want := range tt.want {
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Errorf("LoadConfig(%v) = %v, want an error mentioning %q", tt.env, err, want)
				}
			}
			if err != nil && strings.Contains(err.Error(), "short") && strings.Contains(err.Error(), "=short") {
				t.Errorf("the error shows the secret: %v", err)
			}
		})
	}
	cfg := DefaultConfig()
	cfg.Addr = "127.0.0.1:0"
	if a, err := New(t.Context(), cfg, testLogger()); err == nil || !strings.Contains(err.Error(), "AUTH_JWT_SECRET") {
		if a != nil {
			t.Cleanup(func() { _ = a.store.Close() })
		}
		t.Errorf("New with no auth configured = %v, want an error naming AUTH_JWT_SECRET", err)
	}
}
