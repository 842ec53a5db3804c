// Package authtest stands in for an identity provider in tests: a key set
// served over HTTP (JWKS) whose keys a test can change, and tokens signed
// with its keys.
package authtest

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

// JWKS serves a key set at its URL until the test ends.
type JWKS struct {
	*httptest.Server
	mu   sync.Mutex
	keys map[string]any // kid -> public key
}

// NewJWKS serves keys (kid -> *ecdsa.PublicKey, *rsa.PublicKey or
// ed25519.PublicKey).
func NewJWKS(tb testing.TB, keys map[string]any) *JWKS {
	tb.Helper()
	s := &JWKS{keys: keys}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		var set struct {
			Keys []map[string]string `json:"keys"`
		}
		for kid, k := range s.keys {
			set.Keys = append(set.Keys, JWK(kid, k))
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(set)
	}))
	tb.Cleanup(s.Close)
	return s
}

// Set adds or replaces the key kid; a nil key removes it.
func (s *JWKS) Set(kid string, key any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if key == nil {
		delete(s.keys, kid)
		return
	}
	s.keys[kid] = key
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// JWK is a public key as RFC 7517 writes it.
func JWK(kid string, key any) map[string]string {
	switch k := key.(type) {
	case *ecdsa.PublicKey:
		return map[string]string{"kty": "EC", "crv": "P-256", "kid": kid, "alg": "ES256", "use": "sig",
			"x": b64(k.X.FillBytes(make([]byte, 32))), "y": b64(k.Y.FillBytes(make([]byte, 32)))}
	case *rsa.PublicKey:
		return map[string]string{"kty": "RSA", "kid": kid, "alg": "RS256", "use": "sig",
			"n": b64(k.N.Bytes()), "e": b64(big.NewInt(int64(k.E)).Bytes())}
	case ed25519.PublicKey:
		return map[string]string{"kty": "OKP", "crv": "Ed25519", "kid": kid, "alg": "EdDSA", "use": "sig", "x": b64(k)}
	}
	panic(fmt.Sprintf("jwk of %T", key))
}

// Sign signs claims with method and key, naming kid when it is not empty.
func Sign(tb testing.TB, method jwt.SigningMethod, key any, kid string, claims jwt.MapClaims) string {
	tb.Helper()
	tok := jwt.NewWithClaims(method, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		tb.Fatalf("sign %s: %v", method.Alg(), err)
	}
	return s
}

// ECKey is a new P-256 key, for ES256.
func ECKey(tb testing.TB) *ecdsa.PrivateKey {
	tb.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

// RSAKey is a new 2048-bit key, for RS256.
func RSAKey(tb testing.TB) *rsa.PrivateKey {
	tb.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}
