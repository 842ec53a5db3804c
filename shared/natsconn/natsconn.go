// Package natsconn opens the one NATS connection each service keeps. Every
// service treats NATS the same way: it starts whether or not NATS is up,
// never gives up reconnecting, and logs the connection's ups and downs and
// its asynchronous errors through its own slog logger. What differs between
// services (how fast to retry, whether to buffer publishes while
// disconnected, what to do once connected) is in Config.
package natsconn

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bidding-platform/shared/config"
)

// DefaultReconnectWait is the pause between reconnect attempts when Config
// leaves it unset. nats.go's own 2s would leave a service without events
// for up to two seconds after NATS came back; a reconnect attempt is one
// dial, so trying four times a second costs nothing.
const DefaultReconnectWait = 250 * time.Millisecond

// Config says where NATS is and how a service rides out its outages.
type Config struct {
	// URL is one server or a comma-separated list of a cluster's servers;
	// nats.go tries them in turn and learns the others from the cluster.
	URL string
	// Name identifies the connection in the server's monitoring (connz).
	Name string
	// Log receives connection events and asynchronous errors; nil
	// discards them.
	Log *slog.Logger
	// ReconnectWait is the pause between reconnect attempts (default
	// DefaultReconnectWait). nats.go adds up to 100ms of jitter (1s with
	// TLS), so that instances do not reconnect in step.
	ReconnectWait time.Duration
	// NoReconnectBuffer makes publishes fail at once while disconnected,
	// instead of being buffered (8 MB) and sent after reconnecting. A
	// service with a buffer of its own (an outbox) wants to hear about the
	// failure rather than hand the message to one that dies with it.
	NoReconnectBuffer bool
	// Auth is the user the service connects as; the zero value connects
	// without credentials.
	Auth Auth
	// OnConnect runs after the first connection and after every
	// reconnection, once nats.go has restored the subscriptions, so the
	// service can catch up on what it missed. It runs on nats.go's callback
	// goroutine: keep it short or hand the work over.
	OnConnect func()
}

// Auth is a user of the NATS server's configuration
// (infrastructure/docker/nats-users.conf): each service has its own, which
// may only publish and subscribe to what that service needs.
type Auth struct {
	User     string
	Password config.Secret
}

// userName is what a NATS user may be called here: one subject token, since
// the user's inbox is _INBOX.<user>.
var userName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// InboxPrefix is where the user's replies arrive (JetStream's answers, pull
// consumers' messages): _INBOX.<user>. The server lets each user subscribe
// to its own inboxes only, so one service cannot read another's replies.
func (a Auth) InboxPrefix() string {
	if a.User == "" {
		return ""
	}
	return "_INBOX." + a.User
}

// ReadAuth reads the NATS user (NATS_USER) and its password (NATS_PASSWORD)
// into dst. Both or neither must be set.
func ReadAuth(e *config.Env, dst *Auth) {
	e.String("NATS_USER", &dst.User)
	e.Secret("NATS_PASSWORD", &dst.Password)
	user, password := dst.User, dst.Password.Reveal()
	e.Check(user == "" || userName.MatchString(user), "NATS_USER=%q: want letters, digits, _ or - (at most 64)", user)
	e.Check(user != "" || password == "", "NATS_PASSWORD is set but NATS_USER is not")
	e.Check(user == "" || password != "", "NATS_USER=%q is set but NATS_PASSWORD is not", user)
}

// ReadURL reads the NATS server list (NATS_URL) from the environment into
// dst, keeping a comma-separated list of a cluster's servers whole.
func ReadURL(e *config.Env, key string, dst *string) {
	e.URLs(key, dst, "nats", "tls", "ws", "wss")
}

// Connect opens the connection. It returns without an error while NATS is
// unreachable: the connection then retries in the background, for ever,
// and Status or IsConnected tells when it is usable. Only a malformed URL
// or a done ctx is an error. ctx bounds the wait for the first attempt,
// which can take nats.go's 2s dial timeout per server.
func Connect(ctx context.Context, cfg Config) (*nats.Conn, error) {
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	opts := []nats.Option{
		nats.Name(cfg.Name),
		// A service starts before NATS does and waits out its outages:
		// bids go to the outbox, viewers are told to retry, the archive
		// catches up. None of them is better off exiting.
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(config.Positive(cfg.ReconnectWait, DefaultReconnectWait)),
		nats.ConnectHandler(func(nc *nats.Conn) {
			log.Info("nats connected", "url", nc.ConnectedUrlRedacted())
			if cfg.OnConnect != nil {
				cfg.OnConnect()
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("nats reconnected", "url", nc.ConnectedUrlRedacted())
			if cfg.OnConnect != nil {
				cfg.OnConnect()
			}
		}),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil { // nil is our own Close or Drain
				log.Warn("nats disconnected", "err", err)
			}
		}),
		// Each failed attempt while NATS is down; at Warn it would be four
		// lines a second for the whole outage. A refused user is a
		// configuration error, not an outage, and is said loudly.
		nats.ReconnectErrHandler(func(_ *nats.Conn, err error) {
			if isAuthError(err) {
				log.Error("nats refused the credentials", "user", cfg.Auth.User, "err", err)
				return
			}
			log.Debug("nats still unreachable", "err", err)
		}),
		// nats.go stops reconnecting after the same authentication error
		// twice. The server's users may change before the service's
		// secrets do (a rotated password), and a service that stopped
		// trying would need a restart to recover.
		nats.IgnoreAuthErrorAbort(),
		// Without this, nats.go prints these to stderr, past the logger.
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			if sub == nil && isAuthError(err) {
				log.Error("nats refused the credentials", "user", cfg.Auth.User, "err", err)
				return
			}
			level := slog.LevelError
			if errors.Is(err, nats.ErrSlowConsumer) {
				// nats.go reports it once per episode, and the
				// subscriber chose its pending limits knowing it drops.
				level = slog.LevelWarn
			}
			subject := ""
			if sub != nil {
				subject = sub.Subject
			}
			log.Log(context.Background(), level, "nats async error", "subject", subject, "err", err)
		}),
	}
	if a := cfg.Auth; a.User != "" {
		if !userName.MatchString(a.User) {
			return nil, fmt.Errorf("connect nats: user %q: want letters, digits, _ or -", a.User)
		}
		opts = append(opts, nats.UserInfo(a.User, a.Password.Reveal()), nats.CustomInboxPrefix(a.InboxPrefix()))
	}
	if cfg.NoReconnectBuffer {
		opts = append(opts, nats.ReconnectBufSize(-1))
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("connect nats: %w", err)
	}
	type result struct {
		nc  *nats.Conn
		err error
	}
	// nats.Connect takes no context; the first attempt runs aside so that
	// a cancelled start does not wait for it. Its dial timeout ends it.
	done := make(chan result, 1)
	go func() {
		nc, err := nats.Connect(cfg.URL, opts...)
		done <- result{nc, err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			return nil, fmt.Errorf("connect nats: %w", r.err)
		}
		return r.nc, nil
	case <-ctx.Done():
		go func() {
			if r := <-done; r.nc != nil {
				r.nc.Close()
			}
		}()
		return nil, fmt.Errorf("connect nats: %w", ctx.Err())
	}
}

// isAuthError says whether the server refused the connection's credentials.
func isAuthError(err error) bool {
	return errors.Is(err, nats.ErrAuthorization) || errors.Is(err, nats.ErrAuthExpired) ||
		errors.Is(err, nats.ErrAuthRevoked) || errors.Is(err, nats.ErrAccountAuthExpired)
}
