package app

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/bidding-platform/shared/auth/authtest"
	"github.com/bidding-platform/shared/testenv"
)

// The attacks below run against real gateways on real Redis and NATS: one
// checking tokens with an HS256 secret, one with an identity provider's key
// set served by the test. Each row is a request that must be refused with
// its status, and must change nothing.

const (
	testIssuer   = "https://idp.test/"
	testAudience = "bidding-api"
)

func pemOf(t *testing.T, pub crypto.PublicKey) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// claims are a valid token's claims for sub; change lets a row break one.
func claims(sub string, roles []string, change func(jwt.MapClaims)) jwt.MapClaims {
	c := jwt.MapClaims{"sub": sub, "iss": testIssuer, "aud": testAudience,
		"iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix()}
	if roles != nil {
		c["roles"] = roles
	}
	if change != nil {
		change(c)
	}
	return c
}

// tamper replaces the payload of tok with that of other, keeping tok's
// signature.
func tamper(tok, other string) string {
	a, b := strings.Split(tok, "."), strings.Split(other, ".")
	return a[0] + "." + b[1] + "." + a[2]
}

// flipSig changes one character of the signature.
func flipSig(tok string) string {
	i := strings.LastIndexByte(tok, '.') + 5
	c := byte('A')
	if tok[i] == 'A' {
		c = 'B'
	}
	return tok[:i] + string(c) + tok[i+1:]
}

func bearerOf(tok string) []string { return []string{"Authorization", "Bearer " + tok} }

// attack is one request that must be refused and change nothing.
type attack struct {
	name, method, path, body string
	headers                  []string
	status                   int
	msg                      string // in the answer's message (or body)
}

// stateOf is everything an attack must not change: the items as an admin
// sees them (price, bidder, count, seq, status, reserve) and the requests
// metric's series.
func stateOf(t *testing.T, g *gateway, admin []string, items ...string) string {
	t.Helper()
	var b strings.Builder
	for _, id := range items {
		a := do(t, "GET", g.url+"/api/v1/items/"+id, "", admin...)
		fmt.Fprintf(&b, "%s: %d %s", id, a.Status, a.Body)
	}
	return b.String()
}

func requestSeries(t *testing.T, g *gateway) int {
	t.Helper()
	m := do(t, "GET", g.url+"/metrics", "")
	return strings.Count(string(m.Body), "\ngateway_http_requests_total{")
}

func runAttacks(t *testing.T, g *gateway, admin []string, items []string, rows []attack) {
	t.Helper()
	for _, tt := range rows {
		before := stateOf(t, g, admin, items...)
		a := do(t, tt.method, g.url+tt.path, tt.body, tt.headers...)
		if a.Status != tt.status || !strings.Contains(string(a.Body), tt.msg) {
			t.Errorf("%s: %s %s = %d %s, want %d with %q", tt.name, tt.method, tt.path, a.Status, a.Body, tt.status, tt.msg)
		}
		if a.Status == http.StatusUnauthorized {
			ch := a.Header.Get("WWW-Authenticate")
			if !strings.HasPrefix(ch, "Bearer ") {
				t.Errorf("%s: 401 with WWW-Authenticate %q, want a Bearer challenge", tt.name, ch)
			}
			if strings.Contains(ch, "error=") && !strings.Contains(ch, `error="invalid_token", error_description="`) {
				t.Errorf("%s: challenge %q", tt.name, ch)
			}
		}
		if after := stateOf(t, g, admin, items...); after != before {
			t.Errorf("%s changed the items:\nbefore %s\nafter  %s", tt.name, before, after)
		}
	}
}

// tokenRows are the forged, broken and misused tokens both modes must
// refuse; valid signs a token the gateway accepts.
func tokenRows(t *testing.T, mode string, valid func(jwt.MapClaims) string, bid func(user string) (string, string)) []attack {
	path, body := bid("bob")
	good := valid(claims("bob", nil, nil))
	other := valid(claims("mallory", nil, nil))
	row := func(name, tok string, status int, msg string) attack {
		return attack{name: mode + "/" + name, method: "POST", path: path, body: body, headers: bearerOf(tok), status: status, msg: msg}
	}
	none := authtest.Sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "", claims("bob", nil, nil))
	return []attack{
		{name: mode + "/no token", method: "POST", path: path, body: body, status: 401, msg: "authentication required"},
		{name: mode + "/basic auth", method: "POST", path: path, body: body, headers: []string{"Authorization", "Basic Ym9iOng="}, status: 401, msg: "authentication required"},
		row("garbage", "not.a.jwt", 401, "malformed"),
		row("expired", valid(claims("bob", nil, func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-5 * time.Minute).Unix() })), 401, "expired"),
		row("expired beyond leeway", valid(claims("bob", nil, func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-61 * time.Second).Unix() })), 401, "expired"),
		row("no exp", valid(claims("bob", nil, func(c jwt.MapClaims) { delete(c, "exp") })), 401, "exp"),
		row("not yet valid", valid(claims("bob", nil, func(c jwt.MapClaims) { c["nbf"] = time.Now().Add(10 * time.Minute).Unix() })), 401, "not valid yet"),
		row("issued in the future", valid(claims("bob", nil, func(c jwt.MapClaims) { c["iat"] = time.Now().Add(10 * time.Minute).Unix() })), 401, "iat"),
		row("alg none", none, 401, "invalid token"),
		row("wrong audience", valid(claims("bob", nil, func(c jwt.MapClaims) { c["aud"] = "another-api" })), 401, "audience"),
		row("no audience", valid(claims("bob", nil, func(c jwt.MapClaims) { delete(c, "aud") })), 401, "audience"),
		row("wrong issuer", valid(claims("bob", nil, func(c jwt.MapClaims) { c["iss"] = "https://evil.test/" })), 401, "issuer"),
		row("no subject", valid(claims("", nil, nil)), 401, "subject"),
		row("subject not an id", valid(claims("bob smith", nil, nil)), 401, "subject"),
		row("roles not a list", valid(claims("bob", nil, func(c jwt.MapClaims) { c["roles"] = "admin" })), 401, "roles"),
		row("tampered payload", tamper(other, good), 401, "signature"),
		row("tampered signature", flipSig(good), 401, "invalid token"),
		row("someone else's token", other, 403, "authenticated user"),
	}
}

// itemRows are what valid tokens without the right must not do on a
// gateway whose items lot (seller sam, one bid by bob) and fresh (seller
// sam, no bid) exist.
func itemRows(t *testing.T, mode string, as func(sub string, roles ...string) []string) []attack {
	ends := func(d time.Duration) string { return time.Now().Add(d).UTC().Format(time.RFC3339) }
	create := func(name, body string, headers []string, status int, msg string) attack {
		return attack{name: mode + "/" + name, method: "POST", path: "/api/v1/items", body: body, headers: headers, status: status, msg: msg}
	}
	seller := as("sam", "seller")
	p := mode + "_"
	return []attack{
		create("create without token", `{"id":"`+p+`x1","name":"X","starting_price":1}`, nil, 401, "authentication required"),
		create("create without seller role", `{"id":"`+p+`x2","name":"X","starting_price":1}`, as("bob", "bidder"), 403, "seller role"),
		create("create naming another seller", `{"id":"`+p+`x3","name":"X","starting_price":1,"seller_id":"bob"}`, seller, 403, "seller_id"),
		create("name with NUL", `{"id":"`+p+`x4","name":"Lot\u0000","starting_price":1}`, seller, 400, "control characters"),
		create("name with newline", `{"id":"`+p+`x5","name":"Lot\nSOLD","starting_price":1}`, seller, 400, "control characters"),
		create("name with escape", `{"id":"`+p+`x6","name":"Lot\u001b[31m","starting_price":1}`, seller, 400, "control characters"),
		create("name with C1 control", `{"id":"`+p+`x7","name":"Lot\u0085","starting_price":1}`, seller, 400, "control characters"),
		create("name with bidi override", `{"id":"`+p+`x8","name":"Lot \u202egnp.exe","starting_price":1}`, seller, 400, "control characters"),
		create("auction too long", `{"id":"`+p+`x9","name":"X","starting_price":1,"ends_at":"`+ends(31*24*time.Hour)+`"}`, seller, 400, "MAX_AUCTION_DURATION"),
		create("auction too long from a later start", `{"id":"`+p+`x10","name":"X","starting_price":1,"starts_at":"`+ends(24*time.Hour)+`","ends_at":"`+ends(32*24*time.Hour)+`"}`, seller, 400, "MAX_AUCTION_DURATION"),
		{name: mode + "/cancel without token", method: "POST", path: "/api/v1/items/" + p + "fresh/cancel", status: 401, msg: "authentication required"},
		{name: mode + "/cancel by another user", method: "POST", path: "/api/v1/items/" + p + "fresh/cancel", headers: as("mallory", "seller"), status: 403, msg: "seller or an admin"},
		{name: mode + "/cancel by the seller after a bid", method: "POST", path: "/api/v1/items/" + p + "lot/cancel", headers: seller, status: 409, msg: "has bids"},
		{name: mode + "/cancel of an unknown item", method: "POST", path: "/api/v1/items/" + p + "nosuch/cancel", headers: as("root", "admin"), status: 404, msg: "not found"},
		{name: mode + "/read with a forged token", method: "GET", path: "/api/v1/items/" + p + "lot", headers: []string{"Authorization", "Bearer x.y.z"}, status: 401, msg: "invalid token"},
		{name: mode + "/dev tokens are off", method: "POST", path: "/api/v1/dev/token", body: `{"user_id":"root","roles":["admin"]}`, status: 404, msg: "no such endpoint"},
	}
}

// setupItems creates lot (reserve 500.00, one bid by bob) and fresh (no
// bid), both sold by sam.
func setupItems(t *testing.T, g *gateway, p string, as func(sub string, roles ...string) []string) {
	t.Helper()
	for _, id := range []string{"lot", "fresh"} {
		a := do(t, "POST", g.url+"/api/v1/items", `{"id":"`+p+id+`","name":"Lot","starting_price":10.00,"reserve_price":500.00}`, as("sam", "seller")...)
		if a.Status != 201 || a.str("seller_id") != "sam" || a.str("reserve_price") != "500.00" {
			t.Fatalf("create %s as the seller = %d %s", id, a.Status, a.Body)
		}
	}
	if a := do(t, "POST", g.url+"/api/v1/items/"+p+"lot/bid", `{"user_id":"bob","amount":20.00}`, as("bob")...); a.Status != 200 {
		t.Fatalf("bob's bid = %d %s", a.Status, a.Body)
	}
}

func TestAttacksWithSharedSecret(t *testing.T) {
	t.Parallel()
	r, n := testenv.Redis(t), testenv.NATS(t)
	cfg := testConfig([]string{r.Addr()}, false, n.URL())
	withAuth(&cfg)
	cfg.Auth.Issuer, cfg.Auth.Audience = testIssuer, testAudience
	g := startGateway(t, cfg)
	valid := func(c jwt.MapClaims) string {
		return authtest.Sign(t, jwt.SigningMethodHS256, []byte(testSecret), "", c)
	}
	as := func(sub string, roles ...string) []string { return bearerOf(valid(claims(sub, roles, nil))) }
	setupItems(t, g, "hs_", as)
	bid := func(user string) (string, string) {
		return "/api/v1/items/hs_lot/bid", `{"user_id":"` + user + `","amount":30.00}`
	}
	rows := tokenRows(t, "hs256", valid, bid)
	path, body := bid("bob")
	rows = append(rows,
		attack{name: "hs256/forged with another secret", method: "POST", path: path, body: body,
			headers: bearerOf(authtest.Sign(t, jwt.SigningMethodHS256, []byte("another-secret-of-enough-length-000000"), "", claims("bob", nil, nil))), status: 401, msg: "signature"},
		attack{name: "hs256/HS512 with the right secret", method: "POST", path: path, body: body,
			headers: bearerOf(authtest.Sign(t, jwt.SigningMethodHS512, []byte(testSecret), "", claims("bob", nil, nil))), status: 401, msg: "invalid token"},
		attack{name: "hs256/RS256 token", method: "POST", path: path, body: body,
			headers: bearerOf(authtest.Sign(t, jwt.SigningMethodRS256, authtest.RSAKey(t), "", claims("bob", nil, nil))), status: 401, msg: "invalid token"},
	)
	rows = append(rows, itemRows(t, "hs", as)...)
	admin := as("root", "admin")
	runAttacks(t, g, admin, []string{"hs_lot", "hs_fresh"}, rows)
	if len(rows) < 30 {
		t.Errorf("%d attacks, want at least 30", len(rows))
	}

	t.Run("the reserve is the seller's", func(t *testing.T) {
		for _, who := range []struct {
			name    string
			headers []string
			sees    bool
		}{{"anonymous", nil, false}, {"a bidder", as("bob"), false}, {"another seller", as("mallory", "seller"), false},
			{"the seller", as("sam", "seller"), true}, {"the seller without the role", as("sam"), true}, {"an admin", admin, true}} {
			a := do(t, "GET", g.url+"/api/v1/items/hs_lot", "", who.headers...)
			_, shown := a.JSON["reserve_price"]
			if a.Status != 200 || shown != who.sees || a.str("reserve_met") != "false" || a.str("seller_id") != "sam" {
				t.Errorf("%s reads %d %s; want reserve_price shown: %v, reserve_met false, seller_id sam", who.name, a.Status, a.Body, who.sees)
			}
		}
	})

	t.Run("made-up methods add no metric series", func(t *testing.T) {
		// One made-up method and one scrape first: their series are
		// the ones every later request of their kind shares.
		do(t, "WARMUP", g.url+"/api/v1/items/hs_lot", "")
		requestSeries(t, g)
		before := requestSeries(t, g)
		for _, m := range []string{"FOO", "BREW", "X-RANDOM-1", "PROPFIND", "x9"} {
			before := stateOf(t, g, admin, "hs_lot")
			if a := do(t, m, g.url+"/api/v1/items/hs_lot", ""); a.Status != http.StatusMethodNotAllowed {
				t.Errorf("%s = %d %s, want 405", m, a.Status, a.Body)
			}
			if after := stateOf(t, g, admin, "hs_lot"); after != before {
				t.Errorf("%s changed the item: %s", m, after)
			}
		}
		if after := requestSeries(t, g); after != before {
			t.Errorf("request series %d after made-up methods, %d before", after, before)
		}
		if m := do(t, "GET", g.url+"/metrics", ""); !strings.Contains(string(m.Body), `method="other"`) || strings.Contains(string(m.Body), `method="BREW"`) {
			t.Errorf("metrics do not fold made-up methods into \"other\"")
		}
	})

	// Only the accepted bid reached the log: every refusal above changed
	// nothing there either.
	waitEvents(t, n.JetStream(), "hs_lot", 1)
	waitEvents(t, n.JetStream(), "hs_fresh", 0)
}

func TestAttacksWithIdentityProviderKeys(t *testing.T) {
	t.Parallel()
	es, rs, stranger := authtest.ECKey(t), authtest.RSAKey(t), authtest.ECKey(t)
	_, edPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	idp := authtest.NewJWKS(t, map[string]any{"es-1": &es.PublicKey, "rs-1": &rs.PublicKey, "ed-1": edPriv.Public()})
	r, n := testenv.Redis(t), testenv.NATS(t)
	cfg := testConfig([]string{r.Addr()}, false, n.URL())
	cfg.Auth.Disabled, cfg.Auth.JWKSURL = false, idp.URL
	cfg.Auth.Issuer, cfg.Auth.Audience = testIssuer, testAudience
	g := startGateway(t, cfg)
	valid := func(c jwt.MapClaims) string { return authtest.Sign(t, jwt.SigningMethodES256, es, "es-1", c) }
	as := func(sub string, roles ...string) []string { return bearerOf(valid(claims(sub, roles, nil))) }
	// Each key type, by its kid, is accepted for what it is.
	for _, tok := range []string{valid(claims("sam", []string{"seller"}, nil)),
		authtest.Sign(t, jwt.SigningMethodRS256, rs, "rs-1", claims("sam", []string{"seller"}, nil)),
		authtest.Sign(t, jwt.SigningMethodEdDSA, edPriv, "ed-1", claims("sam", []string{"seller"}, nil))} {
		testenv.WaitFor(t, 20*time.Second, "a token of the identity provider accepted", func() error {
			if a := do(t, "POST", g.url+"/api/v1/items/nosuch/bid", `{"user_id":"sam","amount":1}`, bearerOf(tok)...); a.Status != 404 {
				return fmt.Errorf("%d %s", a.Status, a.Body)
			}
			return nil
		})
	}
	setupItems(t, g, "jw_", as)
	bid := func(user string) (string, string) {
		return "/api/v1/items/jw_lot/bid", `{"user_id":"` + user + `","amount":30.00}`
	}
	rows := tokenRows(t, "jwks", valid, bid)
	path, body := bid("bob")
	c := claims("bob", nil, nil)
	row := func(name, tok, msg string) attack {
		return attack{name: "jwks/" + name, method: "POST", path: path, body: body, headers: bearerOf(tok), status: 401, msg: msg}
	}
	rows = append(rows,
		row("HS256 signed with the EC key's PEM", authtest.Sign(t, jwt.SigningMethodHS256, pemOf(t, &es.PublicKey), "es-1", c), "invalid token"),
		row("HS256 signed with the RSA key's PEM", authtest.Sign(t, jwt.SigningMethodHS256, pemOf(t, &rs.PublicKey), "rs-1", c), "invalid token"),
		row("HS256 signed with the RSA modulus", authtest.Sign(t, jwt.SigningMethodHS256, rs.PublicKey.N.Bytes(), "rs-1", c), "invalid token"),
		row("RS256 naming the EC key", authtest.Sign(t, jwt.SigningMethodRS256, rs, "es-1", c), "cannot be verified"),
		row("ES256 naming the RSA key", authtest.Sign(t, jwt.SigningMethodES256, es, "rs-1", c), "cannot be verified"),
		row("EdDSA naming the EC key", authtest.Sign(t, jwt.SigningMethodEdDSA, edPriv, "es-1", c), "cannot be verified"),
		row("ES256 by another key under a known kid", authtest.Sign(t, jwt.SigningMethodES256, stranger, "es-1", c), "signature"),
		row("unknown kid", authtest.Sign(t, jwt.SigningMethodES256, stranger, "es-9", c), "cannot be verified"),
		row("no kid, another key", authtest.Sign(t, jwt.SigningMethodES256, stranger, "", c), "invalid token"),
		row("ES384", authtest.Sign(t, jwt.SigningMethodES384, mustP384(t), "es-1", c), "invalid token"),
	)
	rows = append(rows, itemRows(t, "jw", as)...)
	runAttacks(t, g, as("root", "admin"), []string{"jw_lot", "jw_fresh"}, rows)
	waitEvents(t, n.JetStream(), "jw_lot", 1)
}

func mustP384(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// A key the identity provider adds is picked up on the next fetch of its
// key set, and one it removes stops working.
func TestIdentityProviderKeyRotation(t *testing.T) {
	t.Parallel()
	old, next, rsNext := authtest.ECKey(t), authtest.ECKey(t), authtest.RSAKey(t)
	idp := authtest.NewJWKS(t, map[string]any{"es-1": &old.PublicKey})
	r, n := testenv.Redis(t), testenv.NATS(t)
	cfg := testConfig([]string{r.Addr()}, false, n.URL())
	cfg.Auth.Disabled, cfg.Auth.JWKSURL, cfg.Auth.JWKSRefresh = false, idp.URL, time.Second
	g := startGateway(t, cfg)
	status := func(tok string) int {
		return do(t, "POST", g.url+"/api/v1/items/nosuch/bid", `{"user_id":"bob","amount":1}`, bearerOf(tok)...).Status
	}
	waitStatus := func(what, tok string, want int) {
		t.Helper()
		testenv.WaitFor(t, 30*time.Second, what, func() error {
			if got := status(tok); got != want {
				return fmt.Errorf("status %d, want %d", got, want)
			}
			return nil
		})
	}
	c := claims("bob", nil, func(c jwt.MapClaims) { delete(c, "iss"); delete(c, "aud") })
	oldTok := authtest.Sign(t, jwt.SigningMethodES256, old, "es-1", c)
	nextTok := authtest.Sign(t, jwt.SigningMethodES256, next, "es-2", c)
	rsTok := authtest.Sign(t, jwt.SigningMethodRS256, rsNext, "rs-2", c)
	waitStatus("the first key accepted", oldTok, 404)
	if got := status(nextTok); got != 401 {
		t.Fatalf("a key not yet published: %d, want 401", got)
	}
	idp.Set("es-2", &next.PublicKey)
	idp.Set("rs-2", &rsNext.PublicKey)
	waitStatus("the new EC key picked up", nextTok, 404)
	waitStatus("the new RSA key picked up", rsTok, 404)
	idp.Set("es-1", nil)
	waitStatus("the removed key refused", oldTok, 401)
	if got := status(nextTok); got != 404 {
		t.Errorf("the new key after the old one left: %d, want 404", got)
	}
}

// Cancelling: the seller before the first bid, an admin at any time; the
// event reaches the log; bids are refused afterwards; an item whose last
// event is the cancellation comes back cancelled when Redis lost it.
func TestCancel(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withAuth)
	g := e.gw
	seller := g.as(t, "sam", "seller")
	admin := g.as(t, "root", "admin")
	for _, id := range []string{"quiet", "busy"} {
		if a := do(t, "POST", g.url+"/api/v1/items", `{"id":"`+id+`","name":"Lot","starting_price":1,"reserve_price":50}`, seller...); a.Status != 201 {
			t.Fatalf("create %s = %d %s", id, a.Status, a.Body)
		}
	}
	if a := g.bid(t, "busy", "bob", "5.00"); a.Status != 200 {
		t.Fatalf("bid on busy = %d %s", a.Status, a.Body)
	}

	a := do(t, "POST", g.url+"/api/v1/items/quiet/cancel", "", seller...)
	if a.Status != 200 || a.str("status") != "cancelled" || a.str("seq") != "1" || a.str("reserve_price") != "50.00" {
		t.Fatalf("the seller cancels before any bid = %d %s, want 200 cancelled at seq 1", a.Status, a.Body)
	}
	if a := do(t, "POST", g.url+"/api/v1/items/quiet/cancel", "", seller...); a.Status != 409 || !strings.Contains(a.str("message"), "already closed or cancelled") {
		t.Errorf("cancel twice = %d %s, want 409", a.Status, a.Body)
	}
	for _, via := range httpPaths {
		h := append(g.as(t, "bob"), via.headers...)
		a := do(t, "POST", g.url+"/api/v1/items/quiet/bid", `{"user_id":"bob","amount":9.00}`, h...)
		if a.Status != 409 || !strings.Contains(a.str("message"), "cancelled") {
			t.Errorf("%s: bid after cancel = %d %s, want 409 saying cancelled", via.name, a.Status, a.Body)
		}
	}
	if a := do(t, "POST", g.url+"/api/v1/items/busy/cancel", "", admin...); a.Status != 200 || a.str("status") != "cancelled" || a.str("bid_count") != "1" {
		t.Errorf("an admin cancels after a bid = %d %s, want 200", a.Status, a.Body)
	}
	if a := g.bid(t, "busy", "carol", "50.00"); a.Status != 409 {
		t.Errorf("bid after the admin's cancel = %d %s", a.Status, a.Body)
	}

	js := e.nats.JetStream()
	evs := waitEvents(t, js, "quiet", 1)
	if ev := evs[0]; ev.Type != "auction_cancelled" || ev.Seq != 1 || ev.UserID != "sam" || ev.SellerID != "sam" || ev.Name != "Lot" {
		t.Errorf("cancel event = %+v", ev)
	}
	evs = waitEvents(t, js, "busy", 2)
	if ev := evs[1]; ev.Type != "auction_cancelled" || ev.Seq != 2 || ev.UserID != "root" || ev.WinnerID != "" || ev.Amount != 500 {
		t.Errorf("admin's cancel event = %+v", ev)
	}
	// The closer never closes a cancelled item: after the end passes it is
	// still cancelled, with no further event.

	// Redis loses both items: they come back from the log, cancelled, with
	// their seller.
	ctx := context.Background()
	for _, id := range []string{"quiet", "busy"} {
		if err := e.redis.Client().Del(ctx, g.cfg.RedisKeyPrefix+"item:{"+id+"}").Err(); err != nil {
			t.Fatal(err)
		}
		a := do(t, "GET", g.url+"/api/v1/items/"+id, "", seller...)
		if a.Status != 200 || a.str("status") != "cancelled" || a.str("seller_id") != "sam" || a.str("reserve_price") != "50.00" {
			t.Errorf("%s after Redis lost it = %d %s, want cancelled, sold by sam", id, a.Status, a.Body)
		}
		if a := g.bid(t, id, "dave", "90.00"); a.Status != 409 {
			t.Errorf("bid on restored %s = %d %s, want 409", id, a.Status, a.Body)
		}
	}
	waitEvents(t, js, "busy", 2)
}

// The development token endpoint signs what the live page's sign-in asks
// for, and only when turned on.
func TestDevTokens(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config) {
		withAuth(c)
		c.Auth.DevTokens = true
		c.Auth.Issuer, c.Auth.Audience = testIssuer, testAudience
	})
	g := e.gw
	a := do(t, "POST", g.url+"/api/v1/dev/token", `{"user_id":"alice","roles":["bidder"]}`)
	exp, err := time.Parse(time.RFC3339, a.str("expires_at"))
	if a.Status != 200 || a.str("user_id") != "alice" || a.str("token") == "" || err != nil ||
		exp.Before(time.Now().Add(11*time.Hour)) || exp.After(time.Now().Add(13*time.Hour)) {
		t.Fatalf("dev token = %d %s, want 200 with a 12h token for alice", a.Status, a.Body)
	}
	var c jwt.MapClaims
	if _, err := jwt.ParseWithClaims(a.str("token"), &c, func(*jwt.Token) (any, error) { return []byte(testSecret), nil },
		jwt.WithValidMethods([]string{"HS256"}), jwt.WithIssuer(testIssuer), jwt.WithAudience(testAudience)); err != nil {
		t.Errorf("the token does not verify with iss and aud: %v", err)
	}
	tok := []string{"Authorization", "Bearer " + a.str("token")}
	g.createItem(t, "dev_lot", "1.00", "1.00")
	if b := g.bid(t, "dev_lot", "alice", "2.00", tok...); b.Status != 200 {
		t.Errorf("bid with the dev token = %d %s", b.Status, b.Body)
	}
	if b := do(t, "POST", g.url+"/api/v1/items", `{"name":"X","starting_price":1}`, tok...); b.Status != 403 {
		t.Errorf("create with a bidder's dev token = %d %s, want 403", b.Status, b.Body)
	}
	s := do(t, "POST", g.url+"/api/v1/dev/token", `{"user_id":"sally","roles":["seller","seller"]}`)
	if b := do(t, "POST", g.url+"/api/v1/items", `{"name":"X","starting_price":1}`, "Authorization", "Bearer "+s.str("token")); b.Status != 201 || b.str("seller_id") != "sally" {
		t.Errorf("create with a seller's dev token = %d %s, want 201 sold by sally", b.Status, b.Body)
	}
	for _, bad := range []struct{ body, msg string }{
		{`{}`, "user_id is required"},
		{`{"user_id":"a b"}`, "user_id: id must be"},
		{`{"user_id":"eve","roles":["root"]}`, "roles: each must be"},
		{`{"user_id":"eve","roles":"admin"}`, `"roles"`},
		{`{"user_id":"eve","admin":true}`, "unknown field"},
	} {
		if b := do(t, "POST", g.url+"/api/v1/dev/token", bad.body); b.Status != 400 || !strings.Contains(b.str("message"), bad.msg) {
			t.Errorf("dev token for %s = %d %s, want 400 %q", bad.body, b.Status, b.Body, bad.msg)
		}
	}
	pre := do(t, "OPTIONS", g.url+"/api/v1/dev/token", "", "Origin", "http://localhost:8081", "Access-Control-Request-Method", "POST",
		"Access-Control-Request-Headers", "content-type")
	if pre.Status != 204 || pre.Header.Get("Access-Control-Allow-Origin") != "http://localhost:8081" {
		t.Errorf("preflight of the live page = %d %v", pre.Status, pre.Header)
	}
	if b := do(t, "POST", g.url+"/api/v1/dev/token", `{"user_id":"alice"}`, "Origin", "http://localhost:8081"); b.Status != 200 ||
		b.Header.Get("Access-Control-Allow-Origin") != "http://localhost:8081" {
		t.Errorf("dev token from the live page = %d %v", b.Status, b.Header)
	}
}
