package app_test

import (
	"strings"
	"testing"
	"time"

	"github.com/bidding-platform/broadcast-service/internal/app"
	"github.com/bidding-platform/shared/config"
)

func TestLoadConfig(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		env     map[string]string
		check   func(app.Config) bool
		wantErr []string
	}{
		{
			name: "defaults",
			env:  map[string]string{"AUTH_DISABLED": "true"},
			check: func(c app.Config) bool {
				return c.Auth.Disabled && c.EndingSoonLead == 5*time.Minute && c.MaxConnsPerUser == 10 && c.GatewayInternalURL == "" &&
					c.Addr == ":8081" && c.MaxConnections == 50000 && c.GatewayURL == "http://localhost:8080" && c.SendQueueSize == 128 &&
					c.GapTimeout == 5*time.Second && c.MaxConnsPerIP == 100 && !c.TrustForwardedFor && c.MaxCatchupReplays == 64 &&
					c.CatchupWait == 10*time.Second && !c.DevSignIn && len(c.EmbedOrigins) == 0
			},
		},
		{
			name: "everything set",
			env: map[string]string{
				"SERVER_ADDR": ":9000", "NATS_URL": "nats://n1:4222, nats://n2:4222", "ALLOWED_ORIGINS": "https://a.example, https://b.example",
				"MAX_CONNECTIONS": "10", "GATEWAY_URL": "https://api.example", "SEND_QUEUE_SIZE": "64",
				"SOCKET_SEND_BUFFER": "16384", "PING_INTERVAL": "5s", "PONG_TIMEOUT": "12s", "WRITE_TIMEOUT": "3s",
				"GAP_TIMEOUT": "8s", "NATS_USER": "broadcast", "NATS_PASSWORD": "pw", "WS_MAX_CONNS_PER_IP": "7", "WS_TRUST_FORWARDED_FOR": "true",
				"WS_MAX_CATCHUP_REPLAYS": "3", "WS_CATCHUP_WAIT": "2s",
				"AUTH_DEV_TOKENS": "true", "PAGE_EMBED_ORIGINS": "https://shop.example, http://localhost:3000",
				"AUTH_JWT_SECRET": strings.Repeat("k", 32), "AUTH_ISSUER": "https://id.example", "GATEWAY_INTERNAL_URL": "http://api-gateway:8080",
				"ENDING_SOON_LEAD": "0", "WS_MAX_CONNS_PER_USER": "3",
			},
			check: func(c app.Config) bool {
				return c.Addr == ":9000" && c.NATSURL == "nats://n1:4222,nats://n2:4222" && len(c.AllowedOrigins) == 2 && c.AllowedOrigins[1] == "https://b.example" &&
					c.MaxConnections == 10 && c.GatewayURL == "https://api.example" && c.SendQueueSize == 64 && c.SocketSendBuffer == 16384 &&
					c.PingInterval == 5*time.Second && c.PongTimeout == 12*time.Second && c.WriteTimeout == 3*time.Second &&
					c.GapTimeout == 8*time.Second && c.MaxConnsPerIP == 7 && c.TrustForwardedFor && c.MaxCatchupReplays == 3 &&
					c.CatchupWait == 2*time.Second && c.DevSignIn && len(c.EmbedOrigins) == 2 && c.EmbedOrigins[1] == "http://localhost:3000" &&
					c.NATSAuth.User == "broadcast" && c.NATSAuth.Password.Reveal() == "pw" &&
					c.Auth.Secret.Reveal() == strings.Repeat("k", 32) && c.Auth.DevTokens && c.Auth.Issuer == "https://id.example" &&
					c.GatewayInternalURL == "http://api-gateway:8080" && c.EndingSoonLead == 0 && c.MaxConnsPerUser == 3
			},
		},
		{
			name:  "per-IP limit off",
			env:   map[string]string{"WS_MAX_CONNS_PER_IP": "0", "AUTH_DISABLED": "true"},
			check: func(c app.Config) bool { return c.MaxConnsPerIP == 0 },
		},
		{
			name: "the identity provider's keys",
			env:  map[string]string{"AUTH_JWKS_URL": "https://id.example/.well-known/jwks.json"},
			check: func(c app.Config) bool {
				return c.Auth.JWKSURL == "https://id.example/.well-known/jwks.json" && !c.Auth.Disabled && c.Auth.Secret == ""
			},
		},
		{
			name:    "no way to check tokens",
			env:     nil,
			wantErr: []string{"AUTH_JWT_SECRET", "AUTH_JWKS_URL", "AUTH_DISABLED"},
		},
		{
			name: "every bad value reported",
			env: map[string]string{"MAX_CONNECTIONS": "lots", "SEND_QUEUE_SIZE": "0", "PING_INTERVAL": "90s", "LOG_FORMAT": "xml", "GAP_TIMEOUT": "0s", "NATS_URL": "n1:4222",
				"WS_MAX_CONNS_PER_IP": "-1", "WS_TRUST_FORWARDED_FOR": "maybe", "WS_MAX_CATCHUP_REPLAYS": "0", "WS_CATCHUP_WAIT": "2h",
				"AUTH_DEV_TOKENS": "yes please", "PAGE_EMBED_ORIGINS": "https://shop.example/path", "NATS_PASSWORD": "pw",
				"AUTH_DISABLED": "true", "ENDING_SOON_LEAD": "-1m", "WS_MAX_CONNS_PER_USER": "0", "GATEWAY_INTERNAL_URL": "api-gateway:8080"},
			wantErr: []string{"MAX_CONNECTIONS", "SEND_QUEUE_SIZE", "PING_INTERVAL", "LOG_FORMAT", "GAP_TIMEOUT", "NATS_URL",
				"WS_MAX_CONNS_PER_IP", "WS_TRUST_FORWARDED_FOR", "WS_MAX_CATCHUP_REPLAYS", "WS_CATCHUP_WAIT",
				"AUTH_DEV_TOKENS", "PAGE_EMBED_ORIGINS", "NATS_USER", "ENDING_SOON_LEAD", "WS_MAX_CONNS_PER_USER", "GATEWAY_INTERNAL_URL"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := app.LoadConfig(config.FromMap(tt.env))
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Fatalf("LoadConfig(%v) error = %v, want none", tt.env, err)
				}
				if !tt.check(cfg) {
					t.Fatalf("LoadConfig(%v) = %+v, not what the variables say", tt.env, cfg)
				}
				return
			}
			if err == nil {
				t.Fatalf("LoadConfig(%v) error = nil, want one naming %v", tt.env, tt.wantErr)
			}
			for _, name := range tt.wantErr {
				if !strings.Contains(err.Error(), name) {
					t.Errorf("error %q does not name %s", err, name)
				}
			}
		})
	}
}
