package app

import (
	"fmt"
	"strings"
	"time"

	"github.com/bidding-platform/shared/auth"
	"github.com/bidding-platform/shared/config"
	"github.com/bidding-platform/shared/natsconn"
	"github.com/bidding-platform/shared/stream"
)

// Config is everything the gateway reads from the environment; the README
// lists the variables and their defaults.
type Config struct {
	Addr          string
	RedisAddrs    []string
	RedisPassword config.Secret
	// RedisUsername is the ACL user (MemoryDB, Redis 6+); empty means the
	// default user.
	RedisUsername string
	// RedisTLS encrypts the connections, verifying the server against
	// the system's roots, or RedisTLSCAFile's when set.
	RedisTLS       bool
	RedisTLSCAFile string
	RedisDB        int
	RedisCluster   bool
	RedisStrategy  string
	RedisKeyPrefix string // not from the environment: tests isolate by it
	// NATSURL is one server or a comma-separated list of a cluster's.
	NATSURL string
	// NATSAuth is the gateway's NATS user: it publishes events and is
	// the one service that manages the stream and the ITEMS bucket.
	NATSAuth natsconn.Auth
	// StreamReplicas is how many NATS servers keep the event stream; the
	// outbox lets go of an event only once that many (a majority) have it.
	StreamReplicas int
	PostgresURL    config.Secret
	AutoCreate     bool
	// Auth is how callers are identified (the AUTH_ variables): an
	// identity provider's key set, a shared HS256 secret, or explicitly
	// nothing, for local development.
	Auth        auth.Config
	RatePerUser float64
	RatePerIP   float64
	CORSOrigins []string
	TrustProxy  bool
	SoftClose   time.Duration
	// SoftCloseMaxExtensions caps how often soft close moves one auction's
	// end (0: no cap).
	SoftCloseMaxExtensions int
	// IdempotencyKeysPerUser caps the Idempotency-Keys one user may use on
	// one item in a day (0: no cap).
	IdempotencyKeysPerUser int
	AuctionLength          time.Duration
	// MaxAuctionLength bounds how long an auction may run, from its start
	// (or now) to its end.
	MaxAuctionLength time.Duration
	Prefilter        bool
	Coalesce         bool
	CloseEvery       time.Duration
	// ClosedRetention is how long a closed item stays in Redis; the
	// archive answers for it afterwards. 0 keeps it.
	ClosedRetention time.Duration
	// ShutdownTimeout bounds the wait for in-flight requests on SIGTERM.
	ShutdownTimeout time.Duration
	Log             config.Log
}

// DefaultConfig is what the gateway runs with when nothing is set: the
// local stack of `make dev`.
func DefaultConfig() Config {
	return Config{
		Addr:           ":8080",
		RedisAddrs:     []string{config.DefaultRedisAddr},
		RedisStrategy:  "lua",
		NATSURL:        config.DefaultNATSURL,
		StreamReplicas: 1,
		PostgresURL:    config.Secret(config.DefaultPostgresURL),
		RatePerUser:    20,
		RatePerIP:      200,
		CORSOrigins:    []string{"http://localhost:8081"},
		SoftClose:      30 * time.Second,
		// Thirty-second extensions for up to an hour past the end.
		SoftCloseMaxExtensions: 120,
		IdempotencyKeysPerUser: 1000,
		AuctionLength:          24 * time.Hour,
		MaxAuctionLength:       30 * 24 * time.Hour,
		Auth:                   auth.DefaultConfig(),
		Prefilter:              true,
		Coalesce:               true,
		CloseEvery:             500 * time.Millisecond,
		ClosedRetention:        30 * 24 * time.Hour,
		ShutdownTimeout:        15 * time.Second,
		Log:                    config.DefaultLog(),
	}
}

// LoadConfig reads the environment over the defaults and validates the
// result, reporting every bad variable at once.
func LoadConfig(e *config.Env) (Config, error) {
	c := DefaultConfig()
	e.String("SERVER_ADDR", &c.Addr)
	e.Strings("REDIS_ADDR", &c.RedisAddrs)
	e.Secret("REDIS_PASSWORD", &c.RedisPassword)
	e.String("REDIS_USERNAME", &c.RedisUsername)
	e.Bool("REDIS_TLS", &c.RedisTLS)
	e.String("REDIS_TLS_CA_FILE", &c.RedisTLSCAFile)
	e.Int("REDIS_DB", &c.RedisDB)
	e.Bool("REDIS_CLUSTER", &c.RedisCluster)
	e.String("REDIS_STRATEGY", &c.RedisStrategy)
	natsconn.ReadURL(e, "NATS_URL", &c.NATSURL)
	natsconn.ReadAuth(e, &c.NATSAuth)
	stream.ReadReplicas(e, "NATS_STREAM_REPLICAS", &c.StreamReplicas)
	e.Secret("POSTGRES_URL", &c.PostgresURL)
	e.Bool("AUTO_CREATE_ITEMS", &c.AutoCreate)
	c.Auth.Read(e)
	e.Float("RATE_LIMIT_PER_USER", &c.RatePerUser)
	e.Float("RATE_LIMIT_PER_IP", &c.RatePerIP)
	e.Strings("CORS_ALLOWED_ORIGINS", &c.CORSOrigins)
	e.Bool("TRUST_PROXY_HEADERS", &c.TrustProxy)
	e.Duration("SOFT_CLOSE", &c.SoftClose)
	e.Int("SOFT_CLOSE_MAX_EXTENSIONS", &c.SoftCloseMaxExtensions)
	e.Int("IDEMPOTENCY_KEYS_PER_USER", &c.IdempotencyKeysPerUser)
	e.Duration("DEFAULT_AUCTION_DURATION", &c.AuctionLength)
	e.Duration("MAX_AUCTION_DURATION", &c.MaxAuctionLength)
	e.Bool("PREFILTER", &c.Prefilter)
	e.Bool("COALESCE", &c.Coalesce)
	e.Duration("CLOSED_ITEM_RETENTION", &c.ClosedRetention)
	c.Log.Read(e)

	e.Check(c.Addr != "", "SERVER_ADDR must not be empty")
	e.Check(len(c.RedisAddrs) > 0, "REDIS_ADDR must not be empty")
	e.Check(c.RedisCluster || len(c.RedisAddrs) <= 1, "REDIS_ADDR=%q: several addresses need REDIS_CLUSTER=true", strings.Join(c.RedisAddrs, ","))
	e.Check(c.RedisDB >= 0 && c.RedisDB <= 15, "REDIS_DB=%d: want 0-15", c.RedisDB)
	e.Check(c.RedisTLSCAFile == "" || c.RedisTLS, "REDIS_TLS_CA_FILE is set but REDIS_TLS is not true")
	e.Check(c.RedisStrategy == "lua" || c.RedisStrategy == "optimistic", "REDIS_STRATEGY=%q: want lua or optimistic", c.RedisStrategy)
	e.Check(c.RatePerUser >= 0, "RATE_LIMIT_PER_USER=%v: must not be negative", c.RatePerUser)
	e.Check(c.RatePerIP >= 0, "RATE_LIMIT_PER_IP=%v: must not be negative", c.RatePerIP)
	e.Check(c.SoftClose >= 0, "SOFT_CLOSE=%v: must not be negative", c.SoftClose)
	e.Check(c.IdempotencyKeysPerUser >= 0, "IDEMPOTENCY_KEYS_PER_USER=%d: must not be negative (0: no cap)", c.IdempotencyKeysPerUser)
	e.Check(c.SoftCloseMaxExtensions >= 0, "SOFT_CLOSE_MAX_EXTENSIONS=%d: must not be negative (0: no cap)", c.SoftCloseMaxExtensions)
	e.Check(c.AuctionLength > 0, "DEFAULT_AUCTION_DURATION=%v: must be positive", c.AuctionLength)
	e.Check(c.MaxAuctionLength > 0, "MAX_AUCTION_DURATION=%v: must be positive", c.MaxAuctionLength)
	e.Check(c.AuctionLength <= c.MaxAuctionLength, "DEFAULT_AUCTION_DURATION=%v: must not exceed MAX_AUCTION_DURATION=%v", c.AuctionLength, c.MaxAuctionLength)
	e.Check(c.ClosedRetention == 0 || c.ClosedRetention >= time.Minute, "CLOSED_ITEM_RETENTION=%v: want 0 (keep) or at least 1m", c.ClosedRetention)
	if err := e.Err(); err != nil {
		return Config{}, fmt.Errorf("configuration:\n%w", err)
	}
	return c, nil
}
