package app

import (
	"fmt"
	"strings"
	"time"

	"github.com/bidding-platform/shared/config"
	"github.com/bidding-platform/shared/natsconn"
)

// Config is everything the worker reads from the environment; the README's
// Archival Worker list documents the variables and their defaults.
type Config struct {
	PostgresURL config.Secret // holds a password; never logged
	// NATSURL is one server or a comma-separated list of a cluster's.
	NATSURL string
	// NATSAuth is the worker's NATS user: it consumes and purges the
	// stream but does not create it; the gateway manages it.
	NATSAuth natsconn.Auth
	HTTPAddr string
	// BatchSize is the most messages written in one transaction.
	BatchSize int
	// BatchWait is the longest wait to fill a batch.
	BatchWait time.Duration
	// AckWait is how long an unacknowledged message stays with a worker
	// that may have died before JetStream redelivers it.
	AckWait time.Duration
	// Writers is how many batches are written to PostgreSQL at once.
	Writers int
	// PurgeAfter is how long a closed item's whole history stays in the
	// stream after the close, once archived; then its subject is purged
	// down to the auction_closed event. 0 never purges.
	PurgeAfter time.Duration
	Log        config.Log
}

// DefaultConfig is what the worker runs with when nothing is set: the
// local stack of `make dev`.
func DefaultConfig() Config {
	return Config{
		PostgresURL: config.Secret(config.DefaultPostgresURL),
		NATSURL:     config.DefaultNATSURL,
		HTTPAddr:    ":8082",
		BatchSize:   4000,
		BatchWait:   100 * time.Millisecond,
		AckWait:     30 * time.Second,
		Writers:     2,
		PurgeAfter:  24 * time.Hour,
		Log:         config.DefaultLog(),
	}
}

// LoadConfig reads the environment over the defaults and validates the
// result, reporting every bad variable at once.
func LoadConfig(e *config.Env) (Config, error) {
	c := DefaultConfig()
	e.Secret("POSTGRES_URL", &c.PostgresURL)
	if strings.TrimSpace(c.PostgresURL.Reveal()) == "" {
		c.PostgresURL = config.Secret(config.DefaultPostgresURL)
	}
	natsconn.ReadURL(e, "NATS_URL", &c.NATSURL)
	natsconn.ReadAuth(e, &c.NATSAuth)
	e.String("HTTP_ADDR", &c.HTTPAddr)
	e.Int("BATCH_SIZE", &c.BatchSize)
	e.Duration("BATCH_WAIT", &c.BatchWait)
	e.Duration("ACK_WAIT", &c.AckWait)
	e.Int("WRITERS", &c.Writers)
	e.Duration("ARCHIVE_PURGE_AFTER", &c.PurgeAfter)
	c.Log.Read(e)

	e.Check(c.BatchSize >= 1 && c.BatchSize <= 10000, "BATCH_SIZE=%d: want 1 to 10000", c.BatchSize)
	e.Check(c.BatchWait > 0 && c.BatchWait <= time.Minute, "BATCH_WAIT=%v: want more than 0 and at most 1m", c.BatchWait)
	e.Check(c.AckWait >= time.Second, "ACK_WAIT=%v: want at least 1s", c.AckWait)
	e.Check(c.Writers >= 1 && c.Writers <= 16, "WRITERS=%d: want 1 to 16", c.Writers)
	e.Check(c.PurgeAfter >= 0, "ARCHIVE_PURGE_AFTER=%v: want 0 (never purge) or more", c.PurgeAfter)
	if err := e.Err(); err != nil {
		return Config{}, fmt.Errorf("configuration:\n%w", err)
	}
	return c, nil
}
