package auth

import (
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/bidding-platform/shared/config"
)

const secret = "0123456789abcdef0123456789abcdef"

func TestReadChoosesOneWay(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		env  map[string]string
		want string // "" for no error
	}{
		{map[string]string{"AUTH_JWT_SECRET": secret}, ""},
		{map[string]string{"AUTH_JWKS_URL": "https://idp.example/.well-known/jwks.json"}, ""},
		{map[string]string{"AUTH_DISABLED": "true"}, ""},
		{nil, "AUTH_JWT_SECRET (HS256, at least 32 bytes), AUTH_JWKS_URL"},
		{map[string]string{"AUTH_JWT_SECRET": secret[:31]}, "too short"},
		{map[string]string{"AUTH_JWT_SECRET": secret, "AUTH_JWKS_URL": "https://idp.example/jwks"}, "only one of"},
		{map[string]string{"AUTH_JWKS_URL": "https://a.example/jwks,https://b.example/jwks"}, "one URL"},
		{map[string]string{"AUTH_DISABLED": "true", "AUTH_ROLES_CLAIM": " "}, ""},
		{map[string]string{"AUTH_JWT_SECRET": secret, "AUTH_JWKS_REFRESH": "10ms"}, "AUTH_JWKS_REFRESH"},
	} {
		c := DefaultConfig()
		e := config.FromMap(tt.env)
		c.Read(e)
		err := e.Err()
		if (tt.want == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Read(%v) = %v, want %q", tt.env, err, tt.want)
		}
		if err != nil && strings.Contains(err.Error(), secret[:31]) {
			t.Errorf("the error shows the secret: %v", err)
		}
	}
}

func TestIssueThenVerify(t *testing.T) {
	t.Parallel()
	c := DefaultConfig()
	c.Secret, c.DevTokens, c.Issuer, c.Audience, c.RolesClaim = secret, true, "iss", "aud", "https://example.com/roles"
	v, err := New(c, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	tok, exp, err := v.Issue("alice", []string{RoleSeller}, time.Now(), time.Hour)
	if err != nil || exp.Before(time.Now().Add(59*time.Minute)) {
		t.Fatalf("Issue = %v, %v", exp, err)
	}
	id, err := v.Verify("bearer " + tok)
	if err != nil || id.Subject != "alice" || !id.Has(RoleSeller) || id.Admin() {
		t.Errorf("Verify = %+v, %v; want alice the seller", id, err)
	}
	_, err = v.Verify("Bearer " + tok + "x")
	var te *TokenError
	if !errors.As(err, &te) || !strings.Contains(Challenge(err), `error="invalid_token"`) {
		t.Errorf("a broken token: %v, challenge %q", err, Challenge(err))
	}
	if _, err := v.Verify(""); !errors.Is(err, ErrNoToken) || Challenge(err) != `Bearer realm="bidding"` {
		t.Errorf("no token: %v, challenge %q", err, Challenge(err))
	}
}
