// Package auth checks who sends a request: JSON Web Tokens signed by an
// identity provider's published keys (a JWKS URL) or by a shared HS256
// secret, with the subject and roles they carry. Every service that needs
// to know a caller checks tokens through it, so they accept and refuse the
// same tokens for the same reasons.
package auth

import (
	"strings"
	"time"

	"github.com/bidding-platform/shared/config"
)

// MinSecretLen is the shortest HS256 secret accepted: RFC 7518 asks for a
// key at least as long as the hash (256 bits), and a short one can be
// found by trying.
const MinSecretLen = 32

// Config is how tokens are checked. Exactly one way must be chosen:
// Secret (HS256), JWKSURL (the identity provider's keys), or Disabled.
type Config struct {
	// Secret is the shared HS256 key (AUTH_JWT_SECRET).
	Secret config.Secret
	// JWKSURL is the identity provider's key set (AUTH_JWKS_URL): RS256,
	// ES256 and EdDSA keys, chosen by each token's kid.
	JWKSURL string
	// Disabled accepts every request as anonymous (AUTH_DISABLED): only
	// for a local development stack.
	Disabled bool
	// Issuer and Audience, when set, must match the token's iss and (one
	// of) its aud.
	Issuer   string
	Audience string
	// RolesClaim names the top-level claim holding the roles, an array of
	// strings (AUTH_ROLES_CLAIM, default "roles").
	RolesClaim string
	// DevTokens lets the gateway issue tokens for any user
	// (AUTH_DEV_TOKENS); only with Secret, for local development.
	DevTokens bool
	// JWKSRefresh is how often the key set is fetched again
	// (AUTH_JWKS_REFRESH). A token naming an unknown kid also triggers a
	// fetch, at most once per UnknownKIDRefresh.
	JWKSRefresh       time.Duration
	UnknownKIDRefresh time.Duration
	// Leeway is the clock skew allowed on exp, nbf and iat; at most
	// MaxLeeway.
	Leeway time.Duration
}

// MaxLeeway bounds Leeway: a token expired longer ago than this is refused
// whatever the configuration says.
const MaxLeeway = time.Minute

// DefaultConfig has no way of checking tokens chosen: a service refuses to
// start with it until one is.
func DefaultConfig() Config {
	return Config{
		RolesClaim:        "roles",
		JWKSRefresh:       15 * time.Minute,
		UnknownKIDRefresh: time.Minute,
		Leeway:            30 * time.Second,
	}
}

// Settings names the variables, for messages that tell an operator what to
// set.
const Settings = "AUTH_JWT_SECRET (HS256, at least 32 bytes), AUTH_JWKS_URL (an identity provider's key set) or AUTH_DISABLED=true (local development only)"

// Read fills c from the AUTH_ variables and checks that they choose
// exactly one way of checking tokens.
func (c *Config) Read(e *config.Env) {
	e.Secret("AUTH_JWT_SECRET", &c.Secret)
	e.URLs("AUTH_JWKS_URL", &c.JWKSURL, "https", "http")
	e.Bool("AUTH_DISABLED", &c.Disabled)
	e.String("AUTH_ISSUER", &c.Issuer)
	e.String("AUTH_AUDIENCE", &c.Audience)
	e.String("AUTH_ROLES_CLAIM", &c.RolesClaim)
	e.Bool("AUTH_DEV_TOKENS", &c.DevTokens)
	e.Duration("AUTH_JWKS_REFRESH", &c.JWKSRefresh)
	// A blank secret is no secret: the variable is often present but
	// empty (compose, ECS without the secret).
	if strings.TrimSpace(c.Secret.Reveal()) == "" {
		c.Secret = ""
	}
	e.Check(!strings.Contains(c.JWKSURL, ","), "AUTH_JWKS_URL: one URL, not a list")
	for _, err := range c.problems() {
		e.Check(false, "%s", err)
	}
}

// problems is what is wrong with c, one message per problem.
func (c Config) problems() []string {
	var out []string
	ways := 0
	for _, set := range []bool{c.Secret != "", c.JWKSURL != "", c.Disabled} {
		if set {
			ways++
		}
	}
	switch {
	case ways == 0:
		out = append(out, "authentication is not configured: set "+Settings)
	case ways > 1:
		out = append(out, "set only one of AUTH_JWT_SECRET, AUTH_JWKS_URL and AUTH_DISABLED=true")
	}
	if c.Secret != "" && len(c.Secret.Reveal()) < MinSecretLen {
		out = append(out, "AUTH_JWT_SECRET is too short: it must be at least 32 bytes (for example: openssl rand -base64 48)")
	}
	if c.DevTokens && (c.Secret == "" || c.JWKSURL != "") {
		out = append(out, "AUTH_DEV_TOKENS=true needs AUTH_JWT_SECRET (and no AUTH_JWKS_URL): dev tokens are signed with the shared secret")
	}
	if c.RolesClaim == "" {
		out = append(out, "AUTH_ROLES_CLAIM must not be empty")
	}
	if c.JWKSRefresh < time.Second {
		out = append(out, "AUTH_JWKS_REFRESH must be at least 1s")
	}
	if c.Leeway < 0 || c.Leeway > MaxLeeway {
		out = append(out, "the token clock leeway must be between 0 and 60s")
	}
	return out
}

// Validate reports what is wrong with a Config built in code (tests,
// services that do not read the environment), as Read would.
func (c Config) Validate() error {
	p := c.problems()
	if len(p) == 0 {
		return nil
	}
	e := config.FromMap(nil)
	for _, msg := range p {
		e.Check(false, "%s", msg)
	}
	return e.Err()
}
