package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/time/rate"

	"github.com/bidding-platform/shared/models"
)

// Roles a token may carry. Any authenticated subject may bid as itself;
// these grant more.
const (
	// RoleSeller may create auctions, and cancel its own before the first
	// bid.
	RoleSeller = "seller"
	// RoleAdmin may do everything a seller may, on any auction, and
	// cancel at any time.
	RoleAdmin = "admin"
	// RoleBidder says so explicitly; bidding needs no role.
	RoleBidder = "bidder"
)

// KnownRoles are the roles the platform gives a meaning to.
var KnownRoles = []string{RoleSeller, RoleAdmin, RoleBidder}

// Identity is who sent a request.
type Identity struct {
	// Subject is the token's sub: the user id.
	Subject string
	Roles   []string
}

// Has says whether the identity carries role.
func (id Identity) Has(role string) bool { return slices.Contains(id.Roles, role) }

// Admin says whether the identity may act on anyone's auction.
func (id Identity) Admin() bool { return id.Has(RoleAdmin) }

// ErrNoToken: the request carries no bearer token.
var ErrNoToken = errors.New("authentication required: send Authorization: Bearer <token>")

// TokenError says why a token was refused; its message is safe to show
// the client.
type TokenError struct{ Reason string }

func (e *TokenError) Error() string { return "invalid token: " + e.Reason }

// Challenge is the WWW-Authenticate value of a 401 answering err: RFC 6750's
// invalid_token with a description for a refused token, a bare challenge
// when none was sent.
func Challenge(err error) string {
	var te *TokenError
	if errors.As(err, &te) {
		return `Bearer realm="bidding", error="invalid_token", error_description="` + strings.ReplaceAll(te.Reason, `"`, "'") + `"`
	}
	return `Bearer realm="bidding"`
}

// Verifier checks bearer tokens. A nil *Verifier is never returned; with
// Disabled it accepts every request as anonymous.
type Verifier struct {
	cfg    Config
	parser *jwt.Parser
	keys   jwt.Keyfunc
	stop   context.CancelFunc
}

// jwksMethods are the algorithms accepted from an identity provider's key
// set, each only with a key of its own type (see keyFits).
var jwksMethods = []string{jwt.SigningMethodRS256.Alg(), jwt.SigningMethodES256.Alg(), jwt.SigningMethodEdDSA.Alg()}

// New builds a Verifier for a valid cfg. With a JWKS URL it starts fetching
// the key set in the background (a provider that is down at startup only
// delays the first accepted token) until Close; log gets the failures.
func New(cfg Config, log *slog.Logger) (*Verifier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	v := &Verifier{cfg: cfg, stop: func() {}}
	if cfg.Disabled {
		return v, nil
	}
	opts := []jwt.ParserOption{jwt.WithExpirationRequired(), jwt.WithIssuedAt(), jwt.WithLeeway(cfg.Leeway)}
	if cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.Issuer))
	}
	if cfg.Audience != "" {
		opts = append(opts, jwt.WithAudience(cfg.Audience))
	}
	if cfg.Secret != "" {
		secret := []byte(cfg.Secret.Reveal())
		v.parser = jwt.NewParser(append(opts, jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}))...)
		v.keys = func(*jwt.Token) (any, error) { return secret, nil }
		return v, nil
	}
	ctx, stop := context.WithCancel(context.Background())
	noErrorAtStart := true
	kf, err := keyfunc.NewDefaultOverrideCtx(ctx, []string{cfg.JWKSURL}, keyfunc.Override{
		Client:      &http.Client{Timeout: 10 * time.Second},
		HTTPTimeout: 10 * time.Second,
		// Never more than one fetch per UnknownKIDRefresh for tokens with
		// unknown kids, and a request never waits for one: a flood of
		// made-up kids costs the provider nothing and the caller a 401.
		RefreshUnknownKID:         rate.NewLimiter(rate.Every(cfg.UnknownKIDRefresh), 1),
		RateLimitWaitMax:          time.Millisecond,
		RefreshInterval:           cfg.JWKSRefresh,
		NoErrorReturnFirstHTTPReq: &noErrorAtStart,
		RefreshErrorHandlerFunc: func(u string) func(context.Context, error) {
			return func(ctx context.Context, err error) {
				log.WarnContext(ctx, "fetching the identity provider's key set (AUTH_JWKS_URL)", "url", u, "err", err)
			}
		},
	})
	if err != nil {
		stop()
		return nil, fmt.Errorf("auth: key set %s: %w", cfg.JWKSURL, err)
	}
	v.stop = stop
	v.parser = jwt.NewParser(append(opts, jwt.WithValidMethods(jwksMethods))...)
	v.keys = func(t *jwt.Token) (any, error) {
		key, err := kf.KeyfuncCtx(ctx)(t)
		if err != nil {
			return nil, err
		}
		alg := t.Method.Alg()
		if set, ok := key.(jwt.VerificationKeySet); ok {
			// No kid: only the keys of the token's algorithm are tried.
			fit := jwt.VerificationKeySet{}
			for _, k := range set.Keys {
				if keyFits(alg, k) {
					fit.Keys = append(fit.Keys, k)
				}
			}
			if len(fit.Keys) == 0 {
				return nil, fmt.Errorf("no %s key in the key set", alg)
			}
			return fit, nil
		}
		if !keyFits(alg, key) {
			return nil, fmt.Errorf("key %v is not a %s key", t.Header["kid"], alg)
		}
		return key, nil
	}
	return v, nil
}

// keyFits pins each algorithm to its key type, so that a token cannot pick
// how a key is used: an RSA key only verifies RS256, a P-256 key ES256, an
// Ed25519 key EdDSA.
func keyFits(alg string, key any) bool {
	switch k := key.(type) {
	case *rsa.PublicKey:
		return alg == jwt.SigningMethodRS256.Alg() && k.N.BitLen() >= 2048
	case *ecdsa.PublicKey:
		return alg == jwt.SigningMethodES256.Alg() && k.Curve == elliptic.P256()
	case ed25519.PublicKey:
		return alg == jwt.SigningMethodEdDSA.Alg()
	}
	return false
}

// Close stops fetching the key set. It is safe to call more than once.
func (v *Verifier) Close() { v.stop() }

// Disabled says that every request is accepted as anonymous.
func (v *Verifier) Disabled() bool { return v.cfg.Disabled }

// Config is what the verifier was built with.
func (v *Verifier) Config() Config { return v.cfg }

// Verify checks an Authorization header's bearer token and returns who it
// names. ErrNoToken means there was none; a *TokenError says why one was
// refused. With auth disabled it returns the zero Identity and no error.
func (v *Verifier) Verify(header string) (Identity, error) {
	if v.cfg.Disabled {
		return Identity{}, nil
	}
	raw, ok := bearer(header)
	if !ok {
		return Identity{}, ErrNoToken
	}
	claims := jwt.MapClaims{}
	if _, err := v.parser.ParseWithClaims(raw, claims, v.keys); err != nil {
		return Identity{}, &TokenError{Reason: reason(err)}
	}
	sub, _ := claims["sub"].(string)
	if sub == "" {
		return Identity{}, &TokenError{Reason: "token has no subject (sub)"}
	}
	// The subject becomes a user id: a Redis key part and a NATS token.
	if models.ValidateID(sub) != nil {
		return Identity{}, &TokenError{Reason: "token subject is not a valid user id: " + models.ErrInvalidID.Error()}
	}
	roles, err := rolesOf(claims[v.cfg.RolesClaim])
	if err != nil {
		return Identity{}, &TokenError{Reason: fmt.Sprintf("claim %q: %v", v.cfg.RolesClaim, err)}
	}
	return Identity{Subject: sub, Roles: roles}, nil
}

func bearer(header string) (string, bool) {
	scheme, tok, ok := strings.Cut(strings.TrimSpace(header), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}

// rolesOf reads a roles claim: absent, or an array of strings.
func rolesOf(v any) ([]string, error) {
	if v == nil {
		return nil, nil
	}
	list, ok := v.([]any)
	if !ok {
		return nil, errors.New("must be an array of strings")
	}
	roles := make([]string, 0, len(list))
	for _, r := range list {
		s, ok := r.(string)
		if !ok {
			return nil, errors.New("must be an array of strings")
		}
		roles = append(roles, s)
	}
	return roles, nil
}

// reason is a client-safe description of why a token was refused: which
// check failed, never the key material or a library's internals.
func reason(err error) string {
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "token is malformed"
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		return "token cannot be verified with the known keys (algorithm or key id)"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return "token signature is invalid"
	case errors.Is(err, jwt.ErrTokenExpired):
		return "token expired"
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return "token is not valid yet (nbf)"
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return "token is issued in the future (iat)"
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return "token issuer (iss) is not accepted"
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return "token audience (aud) is not accepted"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		for claim, what := range map[string]string{"exp": "exp (expiry)", "aud": "aud (audience)", "iss": "iss (issuer)"} {
			if strings.Contains(err.Error(), claim+" claim is required") {
				return "token lacks the required claim " + what
			}
		}
		return "token lacks a required claim"
	case errors.Is(err, jwt.ErrTokenInvalidClaims):
		return "token claims are invalid"
	}
	return "token is not valid"
}

// DevTokenTTL is how long a development token lasts.
const DevTokenTTL = 12 * time.Hour

// Issue signs a token for sub with roles, valid for ttl from now, with the
// configured issuer and audience. Only a verifier with a secret and
// DevTokens can: it is how a local stack signs people in without an
// identity provider.
func (v *Verifier) Issue(sub string, roles []string, now time.Time, ttl time.Duration) (string, time.Time, error) {
	if !v.cfg.DevTokens || v.cfg.Secret == "" {
		return "", time.Time{}, errors.New("issuing tokens needs AUTH_DEV_TOKENS=true and AUTH_JWT_SECRET")
	}
	exp := now.Add(ttl).Truncate(time.Second)
	claims := jwt.MapClaims{
		"sub": sub,
		"iat": now.Unix(),
		"exp": exp.Unix(),
	}
	if len(roles) > 0 {
		claims[v.cfg.RolesClaim] = roles
	}
	if v.cfg.Issuer != "" {
		claims["iss"] = v.cfg.Issuer
	}
	if v.cfg.Audience != "" {
		claims["aud"] = v.cfg.Audience
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(v.cfg.Secret.Reveal()))
	if err != nil {
		return "", time.Time{}, fmt.Errorf("sign token: %w", err)
	}
	return s, exp.UTC(), nil
}
