package app

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/bidding-platform/shared/testenv"
)

// httpPaths are the gateway's two ways to a bid: API clients' take the
// native fasthttp path, a browser's (it sends Origin) goes through chi for
// CORS.
var httpPaths = []struct {
	name    string
	headers []string
}{{"native", nil}, {"chi", []string{"Origin", "http://page.test"}}}

// The README's curl sequence, answered with the documented bodies.
func TestReadmeCurlSequence(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withAuth)
	g := e.gw

	h := do(t, "GET", g.url+"/health", "")
	if h.Status != 200 || h.str("status") != "healthy" || h.str("service") != "api-gateway" || h.str("time") == "" {
		t.Errorf("GET /health = %d %s", h.Status, h.Body)
	}
	it := do(t, "GET", g.url+"/api/v1/items/test_item", "")
	if it.Status != 200 || it.str("id") != "test_item" || it.str("status") != "active" || it.str("current_bid") != "0.00" {
		t.Fatalf("GET item = %d %s", it.Status, it.Body)
	}

	first := g.bid(t, "test_item", "user_123", "100.00")
	wantBody(t, first, 200, `{"success":true,"message":"Bid accepted","current_bid":100.00,"your_bid":100.00,"is_highest":true,"event_id":"EVT","min_next_bid":101.00}`)
	second := g.bid(t, "test_item", "user_456", "150.00")
	wantBody(t, second, 200, `{"success":true,"message":"Bid accepted","current_bid":150.00,"your_bid":150.00,"is_highest":true,"event_id":"EVT","min_next_bid":151.00}`)
	low := g.bid(t, "test_item", "user_123", "120.00")
	wantBody(t, low, 409, `{"success":false,"message":"Bid amount must be higher than current bid","current_bid":150.00,"your_bid":120.00,"is_highest":false,"min_next_bid":151.00}`)
	tie := g.bid(t, "test_item", "user_789", "150.00")
	wantBody(t, tie, 409, `{"success":false,"message":"Bid amount must be higher than current bid","current_bid":150.00,"your_bid":150.00,"is_highest":false,"min_next_bid":151.00}`)

	got := g.item(t, "test_item")
	if got.CurrentBid != 15000 || got.HighestBidderID != "user_456" || got.BidCount != 2 || got.Seq != 2 {
		t.Errorf("item after the sequence = %+v, want 150.00 by user_456, 2 bids, seq 2", got)
	}
	evs := waitEvents(t, e.nats.JetStream(), "test_item", 2)
	if evs[0].EventID != first.str("event_id") || evs[1].EventID != second.str("event_id") {
		t.Errorf("JetStream events %s, %s; want the answers' %s, %s", evs[0].EventID, evs[1].EventID, first.str("event_id"), second.str("event_id"))
	}
	if evs[1].Type != "bid" || evs[1].Seq != 2 || evs[1].Amount != 15000 || evs[1].PreviousBid != 10000 || evs[1].UserID != "user_456" {
		t.Errorf("second event = %+v", evs[1])
	}

	m := do(t, "GET", g.url+"/metrics", "")
	for _, want := range []string{
		`gateway_http_requests_total{method="POST",route="/api/v1/items/{id}/bid",status="200"} 2`,
		`gateway_http_requests_total{method="POST",route="/api/v1/items/{id}/bid",status="409"} 2`,
		`gateway_bids_total{outcome="accepted"} 2`,
		`gateway_bids_total{outcome="too_low"} 2`,
		`gateway_redis_seconds_count`,
		`gateway_outbox_backlog`,
		`gateway_publish_failures_total 0`,
	} {
		if !strings.Contains(string(m.Body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if r := do(t, "GET", g.url+"/ready", ""); r.Status != 200 || r.str("status") == "not_ready" || !strings.Contains(string(r.Body), `"redis":"ok"`) || !strings.Contains(string(r.Body), `"nats":"ok"`) {
		t.Errorf("/ready = %d %s", r.Status, r.Body)
	}
}

var eventIDPattern = regexp.MustCompile(`"event_id":"evt_[0-9a-z]{26}"`)

// wantBody compares an answer with the exact documented body; EVT stands
// for any generated event id.
func wantBody(t *testing.T, a answer, status int, want string) {
	t.Helper()
	got := strings.TrimSpace(string(a.Body))
	got = eventIDPattern.ReplaceAllString(got, `"event_id":"EVT"`)
	if a.Status != status || got != want {
		t.Errorf("answer %d %s\nwant   %d %s", a.Status, got, status, want)
	}
}

// Bad requests are answered 400 with a message naming the rule, before
// anything reaches Redis: the item is unchanged afterwards.
func TestMalformedBids(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withAuth)
	g := e.gw
	g.createItem(t, "lot1", "10.00", "1.00")
	if a := g.bid(t, "lot1", "alice", "20.00"); a.Status != 200 {
		t.Fatalf("setup bid = %d %s", a.Status, a.Body)
	}
	before := g.item(t, "lot1")

	tests := []struct {
		name, path, body string
		headers          []string
		status           int
		msg              string
	}{
		{name: "empty body", body: "", status: 400, msg: "request body is empty"},
		{name: "not json", body: "user_id=bob&amount=30", status: 400, msg: "not valid JSON"},
		{name: "truncated", body: `{"user_id":"bob","amount":30`, status: 400, msg: "not valid JSON"},
		{name: "array", body: `[1,2]`, status: 400, msg: "must be a JSON object"},
		{name: "string body", body: `"bid"`, status: 400, msg: "must be a JSON object"},
		{name: "unknown field", body: `{"user_id":"bob","amount":30,"admin":true}`, status: 400, msg: `unknown field "admin"`},
		{name: "two objects", body: `{"user_id":"bob","amount":30}{"user_id":"bob","amount":31}`, status: 400, msg: "exactly one JSON object"},
		{name: "missing user", body: `{"amount":30}`, status: 400, msg: "user_id is required"},
		{name: "numeric user", body: `{"user_id":7,"amount":30}`, status: 400, msg: `"user_id" must be a string`},
		{name: "empty user", body: `{"user_id":"","amount":30}`, status: 400, msg: "user_id: id must be 1-64 characters"},
		{name: "user with space", body: `{"user_id":"bob smith","amount":30}`, status: 400, msg: "user_id: id must be"},
		{name: "user too long", body: fmt.Sprintf(`{"user_id":%q,"amount":30}`, strings.Repeat("u", 65)), status: 400, msg: "user_id: id must be"},
		{name: "missing amount", body: `{"user_id":"bob"}`, status: 400, msg: "amount is required"},
		{name: "null amount", body: `{"user_id":"bob","amount":null}`, status: 400, msg: "amount: amount must be a plain decimal number"},
		{name: "amount as string", body: `{"user_id":"bob","amount":"30.00"}`, status: 400, msg: "amount: amount must be a plain decimal number"},
		{name: "three decimals", body: `{"user_id":"bob","amount":30.001}`, status: 400, msg: "at most two decimal places"},
		{name: "zero", body: `{"user_id":"bob","amount":0}`, status: 400, msg: "greater than zero"},
		{name: "negative", body: `{"user_id":"bob","amount":-30}`, status: 400, msg: "greater than zero"},
		{name: "exponent", body: `{"user_id":"bob","amount":3e1}`, status: 400, msg: "plain decimal number"},
		{name: "huge", body: `{"user_id":"bob","amount":1000000000000}`, status: 400, msg: "must not exceed 1000000000.00"},
		{name: "very long number", body: `{"user_id":"bob","amount":` + strings.Repeat("9", 300) + `}`, status: 400, msg: "must not exceed"},
		{name: "NaN", body: `{"user_id":"bob","amount":NaN}`, status: 400, msg: "not valid JSON"},
		{name: "oversized body", body: `{"user_id":"bob","amount":30,"pad":"` + strings.Repeat("x", 5000) + `"}`, status: 400, msg: "must not exceed 4096 bytes"},
		{name: "bad item id", path: "/api/v1/items/lot.1/bid", body: `{"user_id":"bob","amount":30}`, status: 400, msg: "item id: id must be"},
		{name: "bad idempotency key", body: `{"user_id":"bob","amount":30}`, headers: []string{"Idempotency-Key", strings.Repeat("k", 129)}, status: 400, msg: "Idempotency-Key must be"},
		{name: "unknown item", path: "/api/v1/items/nosuch/bid", body: `{"user_id":"bob","amount":30}`, status: 404, msg: "Item not found"},
	}
	// Both must answer alike; chi's CORS middleware then says Vary: Origin.
	for _, via := range httpPaths {
		for _, tt := range tests {
			t.Run(via.name+"/"+tt.name, func(t *testing.T) {
				path := tt.path
				if path == "" {
					path = "/api/v1/items/lot1/bid"
				}
				a := do(t, "POST", g.url+path, tt.body, append(append(g.as(t, "bob"), tt.headers...), via.headers...)...)
				if a.Status != tt.status || !strings.Contains(a.str("message"), tt.msg) || a.str("success") != "false" {
					t.Errorf("POST %.80s\n got %d %s\nwant %d with message containing %q", tt.body, a.Status, a.Body, tt.status, tt.msg)
				}
				if chi := a.Header.Get("Vary") == "Origin"; chi != (via.name == "chi") {
					t.Errorf("answered by the chi router: %v, want %v", chi, via.name == "chi")
				}
				if ct := a.Header.Get("Content-Type"); ct != "application/json" {
					t.Errorf("Content-Type = %q", ct)
				}
			})
		}
	}
	after := g.item(t, "lot1")
	if after != before {
		t.Errorf("item changed by bad requests:\n got %+v\nwant %+v", after, before)
	}
}

// Oversized requests get the API's error shape and change nothing: bodies
// the server still reads are refused by the handler, larger ones by the
// server before it reads them.
func TestOversizedRequests(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withAuth)
	g := e.gw
	g.createItem(t, "lot", "10.00", "1.00")
	big := `{"user_id":"bob","amount":30,"pad":"` + strings.Repeat("x", 100<<10) + `"}`
	if a := do(t, "POST", g.url+"/api/v1/items/lot/bid", big, g.as(t, "bob")...); a.Status != 400 || !strings.Contains(a.str("message"), "must not exceed 4096 bytes") {
		t.Errorf("100 KiB body: got %d %s", a.Status, a.Body)
	}
	// Only the headers are sent: a server that refuses the body must say so
	// without waiting for it (a client still sending would see its close).
	conn := g.dial(t)
	if _, err := fmt.Fprintf(conn, "POST /api/v1/items/lot/bid HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", 10<<20); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("10 MiB body announced: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 413 || !strings.Contains(string(body), "must not exceed 4096 bytes") || resp.Header.Get("Content-Type") != "application/json" {
		t.Errorf("10 MiB body announced: got %d %s %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	// A long header (a large bearer token, cookies) is still served.
	if a := g.bid(t, "lot", "bob", "12.00", "X-Padding", strings.Repeat("k", 8<<10)); a.Status != 200 {
		t.Errorf("bid with an 8 KiB header: got %d %s", a.Status, a.Body)
	}
	if it := g.item(t, "lot"); it.BidCount != 1 {
		t.Errorf("bid count = %d, want 1 (only the last bid)", it.BidCount)
	}
}

// Requests pipelined on one connection are answered in order, each with
// its own body, whichever path serves them.
func TestPipelinedRequests(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withAuth)
	g := e.gw
	g.createItem(t, "lot", "1.00", "1.00")
	conn := g.dial(t)
	post := func(body string, extra string) string {
		return "POST /api/v1/items/lot/bid HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n" + extra +
			"Content-Length: " + fmt.Sprint(len(body)) + "\r\n\r\n" + body
	}
	auth := func(user string) string { return "Authorization: Bearer " + g.token(t, user) + "\r\n" }
	batch := post(`{"user_id":"alice","amount":5.00}`, auth("alice")) +
		post(`{"user_id":"bob","amount":4.00}`, auth("bob")) +
		"GET /api/v1/items/lot HTTP/1.1\r\nHost: gw\r\n\r\n" +
		post(`{"user_id":"carol","amount":9.00}`, "Origin: http://page.test\r\n"+auth("carol"))
	if _, err := io.WriteString(conn, batch); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(conn)
	want := []struct {
		status int
		body   string
	}{
		{200, `"your_bid":5.00`},
		{409, `"your_bid":4.00,"is_highest":false`},
		{200, `"current_bid":5.00`},
		{200, `"your_bid":9.00`},
	}
	for i, w := range want {
		resp, err := http.ReadResponse(r, nil)
		if err != nil {
			t.Fatalf("answer %d: %v", i+1, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != w.status || !strings.Contains(string(b), w.body) {
			t.Errorf("answer %d = %d %s, want %d containing %s", i+1, resp.StatusCode, b, w.status, w.body)
		}
	}
}

func TestAuth(t *testing.T) {
	t.Parallel()
	const secret = testSecret
	e := newEnv(t, withAuth)
	g := e.gw
	g.createItem(t, "lot", "1.00", "1.00")
	token := func(sub string, exp time.Time, key string) string {
		s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.RegisteredClaims{Subject: sub, ExpiresAt: jwt.NewNumericDate(exp)}).SignedString([]byte(key))
		if err != nil {
			t.Fatal(err)
		}
		return "Bearer " + s
	}
	hour := time.Now().Add(time.Hour)
	none, err := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.RegisteredClaims{Subject: "alice"}).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, auth string
		status     int
		msg        string
	}{
		{"no token", "", 401, "authentication required"},
		{"not bearer", "Basic YWxpY2U6eA==", 401, "authentication required"},
		{"garbage", "Bearer not.a.jwt", 401, "invalid token"},
		{"wrong key", token("alice", hour, "other"), 401, "invalid token"},
		{"alg none", "Bearer " + none, 401, "invalid token"},
		{"expired", token("alice", time.Now().Add(-time.Minute), secret), 401, "token expired"},
		{"someone else", token("mallory", hour, secret), 403, "authenticated user"},
		{"ok", token("alice", hour, secret), 200, "Bid accepted"},
	}
	for _, tt := range tests {
		var h []string
		if tt.auth != "" {
			h = []string{"Authorization", tt.auth}
		}
		// Not g.bid, which signs what carries no token.
		a := do(t, "POST", g.url+"/api/v1/items/lot/bid", `{"user_id":"alice","amount":5.00}`, h...)
		if a.Status != tt.status || !strings.Contains(a.str("message"), tt.msg) {
			t.Errorf("%s: got %d %s, want %d %q", tt.name, a.Status, a.Body, tt.status, tt.msg)
		}
		if a.Status == 401 && a.Header.Get("WWW-Authenticate") == "" {
			t.Errorf("%s: 401 without WWW-Authenticate", tt.name)
		}
	}
	if it := g.item(t, "lot"); it.BidCount != 1 {
		t.Errorf("bid count = %d, want 1 (only the authenticated bid)", it.BidCount)
	}
}

func TestIdempotency(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withAuth)
	g := e.gw
	g.createItem(t, "lot", "1.00", "1.00")
	first := g.bid(t, "lot", "alice", "10.00", "Idempotency-Key", "k-1")
	if first.Status != 200 {
		t.Fatalf("first = %d %s", first.Status, first.Body)
	}
	if a := g.bid(t, "lot", "bob", "20.00"); a.Status != 200 {
		t.Fatalf("bob = %d %s", a.Status, a.Body)
	}
	again := g.bid(t, "lot", "alice", "10.00", "Idempotency-Key", "k-1")
	if again.Status != 200 || string(again.Body) != string(first.Body) {
		t.Errorf("retry = %d %s, want the first answer %s", again.Status, again.Body, first.Body)
	}
	other := g.bid(t, "lot", "alice", "30.00", "Idempotency-Key", "k-1")
	if other.Status != 422 || !strings.Contains(other.str("message"), "different bid") {
		t.Errorf("same key, other amount = %d %s, want 422", other.Status, other.Body)
	}
	// The key is per user: bob may use the same one.
	if a := g.bid(t, "lot", "bob", "40.00", "Idempotency-Key", "k-1"); a.Status != 200 {
		t.Errorf("bob with alice's key = %d %s, want 200", a.Status, a.Body)
	}
	// A too-low answer is replayed too, even after the price moved on.
	low := g.bid(t, "lot", "carol", "2.00", "Idempotency-Key", "k-2")
	g.bid(t, "lot", "dave", "50.00")
	lowAgain := g.bid(t, "lot", "carol", "2.00", "Idempotency-Key", "k-2")
	if low.Status != 409 || string(lowAgain.Body) != string(low.Body) {
		t.Errorf("too-low retry = %d %s, want %d %s", lowAgain.Status, lowAgain.Body, low.Status, low.Body)
	}
	it := g.item(t, "lot")
	if it.BidCount != 4 || it.CurrentBid != 5000 {
		t.Errorf("item = %+v, want 4 bids, 50.00", it)
	}
	waitEvents(t, e.nats.JetStream(), "lot", 4)
}

func TestRateLimitAndCORS(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config) { withAuth(c); c.RatePerUser = 1 })
	g := e.gw
	g.createItem(t, "lot", "1.00", "1.00")
	if a := g.bid(t, "lot", "alice", "5.00"); a.Status != 200 {
		t.Fatalf("first bid = %d %s", a.Status, a.Body)
	}
	a := g.bid(t, "lot", "alice", "6.00")
	if a.Status != http.StatusTooManyRequests || a.Header.Get("Retry-After") == "" {
		t.Errorf("second bid within a second = %d %s (Retry-After %q), want 429 with Retry-After", a.Status, a.Body, a.Header.Get("Retry-After"))
	}
	if a := g.bid(t, "lot", "bob", "6.00"); a.Status != 200 {
		t.Errorf("another user = %d %s, want 200", a.Status, a.Body)
	}

	pre := do(t, "OPTIONS", g.url+"/api/v1/items/lot/bid", "", "Origin", "http://localhost:8081", "Access-Control-Request-Method", "POST")
	if pre.Status != 204 || pre.Header.Get("Access-Control-Allow-Origin") != "http://localhost:8081" || !strings.Contains(pre.Header.Get("Access-Control-Allow-Headers"), "Idempotency-Key") {
		t.Errorf("preflight = %d %v", pre.Status, pre.Header)
	}
	evil := do(t, "OPTIONS", g.url+"/api/v1/items/lot/bid", "", "Origin", "http://evil.example", "Access-Control-Request-Method", "POST")
	if evil.Status != 403 || evil.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("preflight from another origin = %d %v", evil.Status, evil.Header)
	}
}

// The per-IP limit counts the load balancer's client address (the last
// X-Forwarded-For entry) on both HTTP paths: API clients' bids and
// browsers' (Origin, through chi).
func TestRateLimitPerClientAddress(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config) { withAuth(c); c.RatePerIP, c.RatePerUser, c.TrustProxy = 1, 0, true })
	g := e.gw
	g.createItem(t, "lot", "1.00", "1.00")
	for _, via := range httpPaths {
		client := "spoofed, 203.0.113." + map[string]string{"native": "7", "chi": "8"}[via.name]
		h := append([]string{"X-Forwarded-For", client}, via.headers...)
		if a := g.bid(t, "lot", "alice_"+via.name, "100.00", h...); a.Status != 409 && a.Status != 200 {
			t.Fatalf("%s: first bid = %d %s", via.name, a.Status, a.Body)
		}
		a := g.bid(t, "lot", "bob_"+via.name, "200.00", h...)
		if a.Status != http.StatusTooManyRequests || a.Header.Get("Retry-After") == "" || !strings.Contains(a.str("message"), "client address") {
			t.Errorf("%s: second bid from %q within a second = %d %s (Retry-After %q), want 429", via.name, client, a.Status, a.Body, a.Header.Get("Retry-After"))
		}
		other := append([]string{"X-Forwarded-For", "spoofed, 198.51.100." + map[string]string{"native": "1", "chi": "2"}[via.name]}, via.headers...)
		if a := g.bid(t, "lot", "carol_"+via.name, "300.00", other...); a.Status == http.StatusTooManyRequests {
			t.Errorf("%s: a bid from another client address was limited: %s", via.name, a.Body)
		}
	}
}

func TestItems(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config) { withAuth(c); c.AutoCreate, c.SoftClose = false, 0 })
	g := e.gw
	if a := do(t, "GET", g.url+"/api/v1/items/unknown", ""); a.Status != 404 {
		t.Errorf("GET unknown without auto-create = %d %s, want 404", a.Status, a.Body)
	}
	seller := g.as(t, "watchmaker", "seller")
	a := do(t, "POST", g.url+"/api/v1/items", `{"id":"watch","name":"Vintage Watch","starting_price":100.00,"min_increment":1.00,"reserve_price":500.00,"ends_at":"`+time.Now().Add(time.Hour).UTC().Format(time.RFC3339)+`"}`, seller...)
	if a.Status != 201 || a.str("starting_price") != "100.00" || a.str("reserve_price") != "500.00" || a.str("status") != "active" ||
		a.str("seller_id") != "watchmaker" || a.str("reserve_met") != "false" {
		t.Errorf("create = %d %s", a.Status, a.Body)
	}
	if a := do(t, "POST", g.url+"/api/v1/items", `{"id":"watch","name":"Again","starting_price":1}`, seller...); a.Status != 409 {
		t.Errorf("create twice = %d %s, want 409", a.Status, a.Body)
	}
	for _, bad := range []struct{ body, msg string }{
		{`{"starting_price":1}`, "name is required"},
		{`{"name":"x"}`, "starting_price is required"},
		{`{"name":"x","starting_price":1.001}`, "starting_price: amount must have at most two decimal places"},
		{`{"name":"x","starting_price":1,"ends_at":"tomorrow"}`, "ends_at must be an RFC 3339 time"},
		{`{"name":"x","starting_price":1,"ends_at":"2001-01-01T00:00:00Z"}`, "ends_at must be"},
		{`{"name":"x","starting_price":1,"colour":"red"}`, `unknown field "colour"`},
	} {
		if a := do(t, "POST", g.url+"/api/v1/items", bad.body, seller...); a.Status != 400 || !strings.Contains(a.str("message"), bad.msg) {
			t.Errorf("create %s = %d %s, want 400 %q", bad.body, a.Status, a.Body, bad.msg)
		}
	}
	// A closed auction answers 409 not active, and the closer published
	// its auction_closed event.
	ends := time.Now().Add(1500 * time.Millisecond).UTC().Format(time.RFC3339Nano)
	if a := do(t, "POST", g.url+"/api/v1/items", `{"id":"short","name":"Short","starting_price":1,"ends_at":"`+ends+`"}`, seller...); a.Status != 201 {
		t.Fatalf("create short = %d %s", a.Status, a.Body)
	}
	if a := g.bid(t, "short", "alice", "2.00"); a.Status != 200 {
		t.Fatalf("bid on short = %d %s", a.Status, a.Body)
	}
	testenv.WaitFor(t, 10*time.Second, "auction to close", func() error {
		if it := g.item(t, "short"); it.Status != "closed" {
			return fmt.Errorf("status %s", it.Status)
		}
		return nil
	})
	if a := g.bid(t, "short", "bob", "9.00"); a.Status != 409 || !strings.Contains(a.str("message"), "not active") {
		t.Errorf("bid after close = %d %s, want 409 not active", a.Status, a.Body)
	}
	evs := waitEvents(t, e.nats.JetStream(), "short", 2)
	if evs[1].Type != "auction_closed" || evs[1].WinnerID != "alice" || evs[1].SellerID != "watchmaker" {
		t.Errorf("close event = %+v, want auction_closed won by alice", evs[1])
	}
}

// A bid inside the soft-close window moves the end to SOFT_CLOSE after the
// bid; a bid earlier leaves the end alone.
func TestSoftCloseThroughHTTP(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config) { withAuth(c); c.AutoCreate, c.SoftClose = false, time.Minute })
	g := e.gw
	create := func(id string, endsAt time.Time) time.Time {
		t.Helper()
		a := do(t, "POST", g.url+"/api/v1/items", `{"id":"`+id+`","name":"Lot","starting_price":10,"ends_at":"`+endsAt.UTC().Format(time.RFC3339Nano)+`"}`, g.as(t, "s1", "seller")...)
		if a.Status != 201 {
			t.Fatalf("create %s = %d %s", id, a.Status, a.Body)
		}
		return endsAtOf(t, a)
	}
	bid := func(id string) {
		t.Helper()
		if a := do(t, "POST", g.url+"/api/v1/items/"+id+"/bid", `{"user_id":"u1","amount":10}`, g.as(t, "u1")...); a.Status != 200 {
			t.Fatalf("bid on %s = %d %s", id, a.Status, a.Body)
		}
	}

	closing := create("closing", time.Now().Add(20*time.Second))
	before := time.Now()
	bid("closing")
	moved := endsAtOf(t, do(t, "GET", g.url+"/api/v1/items/closing", ""))
	if !moved.After(closing) || moved.Before(before.Add(time.Minute-2*time.Second)) {
		t.Errorf("ends_at after a bid 20s before the end = %v, want about a minute after the bid (was %v)", moved, closing)
	}

	far := create("far", time.Now().Add(time.Hour))
	bid("far")
	if got := endsAtOf(t, do(t, "GET", g.url+"/api/v1/items/far", "")); !got.Equal(far) {
		t.Errorf("ends_at after a bid an hour before the end = %v, want unchanged %v", got, far)
	}
}

func endsAtOf(t *testing.T, a answer) time.Time {
	t.Helper()
	ts, err := time.Parse(time.RFC3339Nano, a.str("ends_at"))
	if err != nil {
		t.Fatalf("ends_at in %s: %v", a.Body, err)
	}
	return ts
}
