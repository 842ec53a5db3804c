package app

import (
	"fmt"
	"net/url"
	"time"

	"github.com/bidding-platform/broadcast-service/internal/websocket"
	"github.com/bidding-platform/shared/auth"
	"github.com/bidding-platform/shared/config"
	"github.com/bidding-platform/shared/natsconn"
)

// Config is everything the service reads from the environment; the README
// lists the variables and their defaults.
type Config struct {
	Addr string
	// NATSURL is one server or a comma-separated list of a cluster's.
	NATSURL string
	// NATSAuth is the service's NATS user, which may read the stream but
	// not change it: the gateway manages it.
	NATSAuth       natsconn.Auth
	AllowedOrigins []string
	MaxConnections int
	// MaxConnsPerIP caps one client address's viewers; 0 turns it off.
	MaxConnsPerIP int
	// TrustForwardedFor takes the client address from the rightmost
	// X-Forwarded-For entry; only behind a load balancer that appends it.
	TrustForwardedFor bool
	// MaxCatchupReplays caps since_seq replays at once; CatchupWait is
	// how long a resuming viewer waits for one.
	MaxCatchupReplays int
	CatchupWait       time.Duration
	GatewayURL        string
	// GatewayInternalURL is where this service itself calls the gateway
	// (a personal channel's items); GatewayURL, the browser's address,
	// when empty.
	GatewayInternalURL string
	// DevSignIn shows the live page's development sign-in; the gateway's
	// AUTH_DEV_TOKENS must be on for it to issue tokens. It is
	// Auth.DevTokens, read once.
	DevSignIn bool
	// Auth checks personal channels' tokens (the AUTH_ variables, as the
	// gateway reads them).
	Auth auth.Config
	// EndingSoonLead is how long before an item's end its leader is told;
	// 0 turns the notice off.
	EndingSoonLead time.Duration
	// MaxConnsPerUser caps one user's personal channels on this instance.
	MaxConnsPerUser int
	// EmbedOrigins may hand the live page a token from a parent frame.
	EmbedOrigins []string
	// SendQueueSize bounds each viewer's queue. 128 messages is seconds of
	// a busy auction; the kernel's socket buffer holds more behind it, and
	// the queue takes memory only while messages wait in it.
	SendQueueSize int
	// SocketSendBuffer fixes each viewer's kernel send buffer; 0 leaves
	// it to the OS.
	SocketSendBuffer int
	PingInterval     time.Duration
	PongTimeout      time.Duration
	WriteTimeout     time.Duration
	// GapTimeout is how long an item's viewers wait for a missing event
	// before they are told it was missed.
	GapTimeout time.Duration
	// ReconnectWait is the pause between NATS reconnect attempts. It is
	// not read from the environment; tests shorten and lengthen it.
	ReconnectWait time.Duration
	// NameTimeout bounds how long an outbid notice waits for its item's
	// name from the gateway (websocket.DefaultNameTimeout when zero), and
	// SeedTimeout the read of a connecting user's items
	// (websocket.DefaultSeedTimeout). Not read from the environment; tests
	// that hold the gateway's answers lengthen them.
	NameTimeout time.Duration
	SeedTimeout time.Duration
	// StreamCheckInterval is how often the personal channels' consumer
	// checks that the event stream was not created anew (5 s when zero).
	// Not read from the environment; tests shorten it.
	StreamCheckInterval time.Duration
	ShutdownTimeout     time.Duration
	Log                 config.Log
}

// DefaultConfig is what the service runs with when nothing is set: the
// local stack of `make dev`.
func DefaultConfig() Config {
	return Config{
		Addr:           ":8081",
		NATSURL:        config.DefaultNATSURL,
		MaxConnections: 50000,
		// One household or office behind one address rarely has more
		// pages open; one script opening thousands is refused early.
		MaxConnsPerIP:     100,
		MaxCatchupReplays: websocket.DefaultMaxCatchupReplays,
		CatchupWait:       websocket.DefaultCatchupWait,
		GatewayURL:        "http://localhost:8080",
		Auth:              auth.DefaultConfig(),
		EndingSoonLead:    websocket.DefaultEndingSoonLead,
		MaxConnsPerUser:   websocket.DefaultMaxConnsPerUser,
		SendQueueSize:     128,
		PingInterval:      25 * time.Second,
		PongTimeout:       60 * time.Second,
		WriteTimeout:      10 * time.Second,
		GapTimeout:        websocket.DefaultGapTimeout,
		ReconnectWait:     500 * time.Millisecond,
		ShutdownTimeout:   15 * time.Second,
		Log:               config.DefaultLog(),
	}
}

// LoadConfig reads the environment over the defaults and validates the
// result, reporting every bad variable at once.
func LoadConfig(e *config.Env) (Config, error) {
	c := DefaultConfig()
	e.String("SERVER_ADDR", &c.Addr)
	natsconn.ReadURL(e, "NATS_URL", &c.NATSURL)
	natsconn.ReadAuth(e, &c.NATSAuth)
	e.Strings("ALLOWED_ORIGINS", &c.AllowedOrigins)
	e.Int("MAX_CONNECTIONS", &c.MaxConnections)
	e.Int("WS_MAX_CONNS_PER_IP", &c.MaxConnsPerIP)
	e.Bool("WS_TRUST_FORWARDED_FOR", &c.TrustForwardedFor)
	e.Int("WS_MAX_CATCHUP_REPLAYS", &c.MaxCatchupReplays)
	e.Duration("WS_CATCHUP_WAIT", &c.CatchupWait)
	e.String("GATEWAY_URL", &c.GatewayURL)
	e.String("GATEWAY_INTERNAL_URL", &c.GatewayInternalURL)
	c.Auth.Read(e)
	c.DevSignIn = c.Auth.DevTokens
	e.Duration("ENDING_SOON_LEAD", &c.EndingSoonLead)
	e.Int("WS_MAX_CONNS_PER_USER", &c.MaxConnsPerUser)
	e.Strings("PAGE_EMBED_ORIGINS", &c.EmbedOrigins)
	e.Int("SEND_QUEUE_SIZE", &c.SendQueueSize)
	e.Int("SOCKET_SEND_BUFFER", &c.SocketSendBuffer)
	e.Duration("PING_INTERVAL", &c.PingInterval)
	e.Duration("PONG_TIMEOUT", &c.PongTimeout)
	e.Duration("WRITE_TIMEOUT", &c.WriteTimeout)
	e.Duration("GAP_TIMEOUT", &c.GapTimeout)
	e.Duration("SHUTDOWN_TIMEOUT", &c.ShutdownTimeout)
	c.Log.Read(e)

	e.Check(c.MaxConnections > 0, "MAX_CONNECTIONS=%d: must be positive", c.MaxConnections)
	e.Check(c.MaxConnsPerIP >= 0, "WS_MAX_CONNS_PER_IP=%d: must not be negative (0 turns the limit off)", c.MaxConnsPerIP)
	e.Check(c.MaxCatchupReplays > 0, "WS_MAX_CATCHUP_REPLAYS=%d: must be positive", c.MaxCatchupReplays)
	e.Check(c.CatchupWait > 0 && c.CatchupWait <= time.Minute, "WS_CATCHUP_WAIT=%s: want more than 0 and at most 1m", c.CatchupWait)
	e.Check(c.SendQueueSize > 0 && c.SendQueueSize <= 65536, "SEND_QUEUE_SIZE=%d: want 1..65536", c.SendQueueSize)
	e.Check(c.PingInterval > 0 && c.PingInterval < c.PongTimeout, "PING_INTERVAL=%s: must be positive and shorter than PONG_TIMEOUT (%s)", c.PingInterval, c.PongTimeout)
	e.Check(c.SocketSendBuffer >= 0, "SOCKET_SEND_BUFFER=%d: must not be negative", c.SocketSendBuffer)
	e.Check(c.WriteTimeout > 0, "WRITE_TIMEOUT=%s: must be positive", c.WriteTimeout)
	e.Check(c.GapTimeout > 0, "GAP_TIMEOUT=%s: must be positive", c.GapTimeout)
	e.Check(c.EndingSoonLead >= 0, "ENDING_SOON_LEAD=%s: must not be negative (0 turns the notice off)", c.EndingSoonLead)
	e.Check(c.MaxConnsPerUser > 0, "WS_MAX_CONNS_PER_USER=%d: must be positive", c.MaxConnsPerUser)
	if u, err := url.Parse(c.GatewayInternalURL); c.GatewayInternalURL != "" {
		e.Check(err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "", "GATEWAY_INTERNAL_URL: %q is not a URL like http://api-gateway:8080", c.GatewayInternalURL)
	}
	for _, o := range c.EmbedOrigins {
		e.Check(o == "*" || validOrigin(o), "PAGE_EMBED_ORIGINS: %q is not an origin like https://shop.example", o)
	}
	if err := e.Err(); err != nil {
		return Config{}, fmt.Errorf("configuration:\n%w", err)
	}
	return c, nil
}

// gatewayInternal is the gateway's address for this service's own calls.
func (c Config) gatewayInternal() string {
	if c.GatewayInternalURL != "" {
		return c.GatewayInternalURL
	}
	return c.GatewayURL
}

// validOrigin is scheme://host[:port] and nothing more, as browsers report
// a frame's origin.
func validOrigin(o string) bool {
	u, err := url.Parse(o)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" &&
		u.Path == "" && u.RawQuery == "" && u.Fragment == "" && u.User == nil
}
