// Package config reads service configuration from the environment. Each
// service declares one Config struct, fills it with defaults, then lets an Env
// overwrite what is set; Env collects every bad value so a misconfigured
// service reports all of its mistakes at once.
package config

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Defaults the README documents, shared by the services that use them.
const (
	DefaultRedisAddr   = "localhost:6379"
	DefaultNATSURL     = "nats://localhost:4222"
	DefaultPostgresURL = "postgres://bidding:password@localhost:5432/bidding?sslmode=disable"
)

// Env reads variables through a lookup function (os.LookupEnv in services, a
// map in tests) and remembers every value it could not parse.
type Env struct {
	lookup func(string) (string, bool)
	errs   []error
}

// FromOS reads the process environment.
func FromOS() *Env { return &Env{lookup: os.LookupEnv} }

// FromMap reads a fixed set of variables; tests use it.
func FromMap(vars map[string]string) *Env {
	return &Env{lookup: func(k string) (string, bool) { v, ok := vars[k]; return v, ok }}
}

func (e *Env) get(key string) (string, bool) {
	v, ok := e.lookup(key)
	if !ok || strings.TrimSpace(v) == "" {
		return "", false
	}
	return strings.TrimSpace(v), true
}

// String overwrites *dst when key is set and not blank.
func (e *Env) String(key string, dst *string) {
	if v, ok := e.get(key); ok {
		*dst = v
	}
}

// Secret is String for values that must never be logged; see Secret type.
func (e *Env) Secret(key string, dst *Secret) {
	if v, ok := e.lookup(key); ok {
		*dst = Secret(v)
	}
}

// Strings reads a comma-separated list.
func (e *Env) Strings(key string, dst *[]string) {
	v, ok := e.get(key)
	if !ok {
		return
	}
	var out []string
	for _, part := range strings.Split(v, ",") {
		if p := strings.TrimSpace(part); p != "" {
			out = append(out, p)
		}
	}
	*dst = out
}

// URLs reads one server URL or a comma-separated list of them, as NATS_URL
// names the servers of a cluster, into one comma-separated string: the form
// nats.go takes, so the list reaches the client whole. Each URL must have one
// of schemes and a host; credentials in it stay out of the error.
func (e *Env) URLs(key string, dst *string, schemes ...string) {
	v, ok := e.get(key)
	if !ok {
		return
	}
	var out []string
	for _, part := range strings.Split(v, ",") {
		p := strings.TrimSpace(part)
		if p == "" {
			continue
		}
		u, err := url.Parse(p)
		if err != nil || !slices.Contains(schemes, u.Scheme) || u.Host == "" {
			shown := "an entry"
			if err == nil {
				shown = strconv.Quote(u.Redacted())
			}
			e.errs = append(e.errs, fmt.Errorf("%s: %s is not a URL like %s://host:port", key, shown, schemes[0]))
			return
		}
		out = append(out, p)
	}
	if len(out) == 0 {
		e.errs = append(e.errs, fmt.Errorf("%s=%q: no URL in it", key, v))
		return
	}
	*dst = strings.Join(out, ",")
}

// Int overwrites *dst with a base-10 integer.
func (e *Env) Int(key string, dst *int) {
	if v, ok := e.get(key); ok {
		n, err := strconv.Atoi(v)
		if err != nil {
			e.errs = append(e.errs, fmt.Errorf("%s=%q: not an integer", key, v))
			return
		}
		*dst = n
	}
}

// Float overwrites *dst with a decimal number (rates, ratios).
func (e *Env) Float(key string, dst *float64) {
	if v, ok := e.get(key); ok {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			e.errs = append(e.errs, fmt.Errorf("%s=%q: not a number", key, v))
			return
		}
		*dst = f
	}
}

// Bool accepts the usual spellings: 1/0, true/false, yes/no, on/off.
func (e *Env) Bool(key string, dst *bool) {
	if v, ok := e.get(key); ok {
		switch strings.ToLower(v) {
		case "1", "true", "yes", "on":
			*dst = true
		case "0", "false", "no", "off":
			*dst = false
		default:
			e.errs = append(e.errs, fmt.Errorf("%s=%q: not a boolean (true/false)", key, v))
		}
	}
}

// Duration accepts Go durations such as 500ms or 2m.
func (e *Env) Duration(key string, dst *time.Duration) {
	if v, ok := e.get(key); ok {
		d, err := time.ParseDuration(v)
		if err != nil {
			e.errs = append(e.errs, fmt.Errorf("%s=%q: not a duration like 500ms or 2m", key, v))
			return
		}
		*dst = d
	}
}

// Check records a validation failure found after reading.
func (e *Env) Check(ok bool, format string, args ...any) {
	if !ok {
		e.errs = append(e.errs, fmt.Errorf(format, args...))
	}
}

// Err returns every problem found, joined, or nil.
func (e *Env) Err() error { return errors.Join(e.errs...) }

// Secret is a string that prints as "[redacted]" in logs and fmt output.
type Secret string

func (s Secret) String() string { return "[redacted]" }

// LogValue keeps the secret out of slog output.
func (s Secret) LogValue() slog.Value { return slog.StringValue("[redacted]") }

// Reveal returns the secret itself, for the one place that needs it.
func (s Secret) Reveal() string { return string(s) }

// Log is the logging configuration every service shares.
type Log struct {
	Level  string // debug, info, warn, error
	Format string // json or text
}

// DefaultLog logs JSON at info, which suits containers and log collectors.
func DefaultLog() Log { return Log{Level: "info", Format: "json"} }

// Read fills l from LOG_LEVEL and LOG_FORMAT.
func (l *Log) Read(e *Env) {
	e.String("LOG_LEVEL", &l.Level)
	e.String("LOG_FORMAT", &l.Format)
	var lv slog.Level
	e.Check(lv.UnmarshalText([]byte(l.Level)) == nil, "LOG_LEVEL=%q: want debug, info, warn or error", l.Level)
	e.Check(l.Format == "json" || l.Format == "text", "LOG_FORMAT=%q: want json or text", l.Format)
}

// NewLogger builds the service's one logger.
func (l Log) NewLogger(w io.Writer, service string) *slog.Logger {
	var lv slog.Level
	_ = lv.UnmarshalText([]byte(l.Level)) // validated in Read; an unknown level stays at info
	opts := &slog.HandlerOptions{Level: lv}
	var h slog.Handler = slog.NewJSONHandler(w, opts)
	if l.Format == "text" {
		h = slog.NewTextHandler(w, opts)
	}
	return slog.New(h).With("service", service)
}

// Positive returns v, or def when v is zero or negative: how components
// fill in the settings their callers left unset.
func Positive[T ~int | ~int64 | ~float64](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}
