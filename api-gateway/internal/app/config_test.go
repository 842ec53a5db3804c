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
		"AUTH_JWT_SECRET": "x", "RATE_LIMIT_PER_USER": "0", "SOFT_CLOSE": "0", "PREFILTER": "false", "COALESCE": "off",
		"CORS_ALLOWED_ORIGINS": "http://a, http://b", "CLOSED_ITEM_RETENTION": "0", "NATS_URL": "nats://n1:4222, tls://n2:4222",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != ":9090" || len(c.RedisAddrs) != 3 || !c.RedisCluster || c.RedisStrategy != "optimistic" || c.JWTSecret.Reveal() != "x" ||
		c.RatePerUser != 0 || c.SoftClose != 0 || c.Prefilter || c.Coalesce || len(c.CORSOrigins) != 2 || c.RatePerIP != 200 || c.AuctionLength != 24*time.Hour ||
		c.ClosedRetention != 0 || c.NATSURL != "nats://n1:4222,tls://n2:4222" {
		t.Errorf("LoadConfig = %+v", c)
	}
	d, err := LoadConfig(config.FromMap(nil))
	if err != nil || !d.Prefilter || !d.Coalesce || d.Addr != ":8080" || d.RedisStrategy != "lua" || d.ClosedRetention != 30*24*time.Hour {
		t.Errorf("defaults = %+v, %v", d, err)
	}
	_, err = LoadConfig(config.FromMap(map[string]string{"REDIS_STRATEGY": "magic", "NATS_URL": "n1:4222", "REDIS_ADDR": "a:1,b:2", "RATE_LIMIT_PER_IP": "-1", "PREFILTER": "maybe", "LOG_LEVEL": "loud", "CLOSED_ITEM_RETENTION": "5s"}))
	for _, want := range []string{"REDIS_STRATEGY", "REDIS_CLUSTER=true", "RATE_LIMIT_PER_IP", "PREFILTER", "LOG_LEVEL", "CLOSED_ITEM_RETENTION", "NATS_URL"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("LoadConfig of bad values: %v, want a mention of %s", err, want)
		}
	}
}
