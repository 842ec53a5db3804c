package smoke

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/bidding-platform/shared/testenv"
	"github.com/bidding-platform/shared/testenv/browser"
)

// TestLivePageSignInWithRealServices is the local stack as `make dev` and
// Docker Compose run it, authentication on: the gateway checks HS256 tokens
// (AUTH_JWT_SECRET) and issues development tokens (AUTH_DEV_TOKENS), and
// the broadcast service shows the page's development sign-in. The page gets
// its token from the real gateway across origins, a bid from the page is
// accepted and shows up live, and the gateway refuses a bid whose user_id
// is not the token's subject (403) or that carries no token (401), both
// changing nothing.
func TestLivePageSignInWithRealServices(t *testing.T) {
	gatewayBin := buildService(t, "api-gateway")
	broadcastBin := buildService(t, "broadcast-service")
	rd := testenv.Redis(t)
	nt := testenv.NATS(t)

	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		t.Fatal(err)
	}
	broadcastAddr := freeAddr(t)
	pageOrigin := "http://" + broadcastAddr
	gateway := "http://" + startService(t, gatewayBin,
		"REDIS_ADDR="+rd.Addr(), "NATS_URL="+nt.URL(), "CORS_ALLOWED_ORIGINS="+pageOrigin,
		"AUTH_JWT_SECRET="+hex.EncodeToString(secret), "AUTH_DEV_TOKENS=true", noPostgres)
	startServiceOn(t, broadcastAddr, broadcastBin, "NATS_URL="+nt.URL(), "GATEWAY_URL="+gateway,
		"AUTH_JWT_SECRET="+hex.EncodeToString(secret), "AUTH_DEV_TOKENS=true")

	const item = "e2e_signed_lot"
	create := `{"id":"` + item + `","name":"Signed Sextant","starting_price":100.00,"min_increment":5.00}`
	if got := postJSON(t, gateway+"/api/v1/items", "", create); got != http.StatusUnauthorized {
		t.Fatalf("create without a token: status %d, want 401", got)
	}
	if got := postJSON(t, gateway+"/api/v1/items", devToken(t, gateway, "seller_sam", "seller"), create); got != http.StatusCreated {
		t.Fatalf("create as a seller: status %d, want 201", got)
	}

	bctx := browser.Open(t, 2*time.Minute)
	page := pageOrigin + "/items/" + item
	if err := chromedp.Do(bctx,
		chromedp.Navigate(page),
		chromedp.WaitVisible(chromedp.CSS(`#conn.pill-ok`)),
		chromedp.WaitVisible(chromedp.CSS(`#sign-in`)),
	); err != nil {
		t.Fatalf("open %s with the development sign-in: %v", page, err)
	}
	browser.WaitText(t, bctx, "#name", "Signed Sextant", 10*time.Second)

	// The development sign-in asks the real gateway for alice's token.
	if err := chromedp.Do(bctx,
		chromedp.SendKeys(chromedp.CSS(`#user-id`), "alice"),
		chromedp.Click(chromedp.CSS(`#sign-in`)),
	); err != nil {
		t.Fatalf("sign in as alice: %v", err)
	}
	browser.WaitText(t, bctx, "#signed-in-user", "alice", 10*time.Second)
	aliceToken, err := chromedp.Run(bctx, chromedp.Evaluate[string](`String(sessionStorage.getItem('auction-token'))`))
	if err != nil || aliceToken == "null" {
		t.Fatalf("the page holds no token after signing in (%q, %v)", aliceToken, err)
	}

	if err := chromedp.Do(bctx,
		chromedp.SetValue(chromedp.CSS(`#amount`), "123.45"),
		chromedp.Click(chromedp.CSS(`#bid-button`)),
	); err != nil {
		t.Fatalf("bid from the page: %v", err)
	}
	browser.WaitText(t, bctx, "#bid-result", "Bid accepted", 10*time.Second)
	browser.WaitText(t, bctx, "#price", "$123.45", 10*time.Second)
	browser.WaitText(t, bctx, "#bids", "alice", 10*time.Second)
	if it := getItem(t, gateway, item); it.CurrentBid.String() != "123.45" || it.HighestBidderID != "alice" {
		t.Fatalf("gateway holds %s by %q, want 123.45 by alice", it.CurrentBid, it.HighestBidderID)
	}

	// Bob bids through the API with his own token; the page shows it live.
	bid := func(user string, amount string) string {
		return `{"user_id":"` + user + `","amount":` + amount + `}`
	}
	if got := postJSON(t, gateway+"/api/v1/items/"+item+"/bid", devToken(t, gateway, "bob"), bid("bob", "150.00")); got != http.StatusOK {
		t.Fatalf("bob's bid with his token: status %d, want 200", got)
	}
	browser.WaitText(t, bctx, "#price", "$150.00", 10*time.Second)
	browser.WaitText(t, bctx, "#bids", "bob", 10*time.Second)

	// Alice's token, from the page's own origin, bidding as bob: the
	// browser sends it across origins as the page would, and the gateway
	// refuses it.
	status, err := chromedp.Run(bctx, chromedp.Evaluate[int](`fetch(`+jsString(gateway+"/api/v1/items/"+item+"/bid")+`, {
		method: 'POST',
		headers: {'Content-Type': 'application/json', 'Authorization': 'Bearer ' + sessionStorage.getItem('auction-token')},
		body: `+jsString(bid("bob", "200.00"))+`
	}).then(function (r) { return r.status; })`, chromedp.EvalAwaitPromise))
	if err != nil || status != http.StatusForbidden {
		t.Errorf("alice's token bidding as bob from the page: status %d (err %v), want 403", status, err)
	}
	if got := postJSON(t, gateway+"/api/v1/items/"+item+"/bid", aliceToken, bid("bob", "210.00")); got != http.StatusForbidden {
		t.Errorf("alice's token bidding as bob: status %d, want 403", got)
	}
	if got := postJSON(t, gateway+"/api/v1/items/"+item+"/bid", "", bid("alice", "220.00")); got != http.StatusUnauthorized {
		t.Errorf("a bid without a token: status %d, want 401", got)
	}
	if it := getItem(t, gateway, item); it.CurrentBid.String() != "150.00" || it.HighestBidderID != "bob" || it.BidCount != 2 {
		t.Errorf("after the refused bids the gateway holds %s by %q with %d bids, want 150.00 by bob with 2",
			it.CurrentBid, it.HighestBidderID, it.BidCount)
	}

	browser.Screenshot(t, bctx, "live-page-signed-in-real-services.png")
}

// devToken asks the gateway's development endpoint for a token.
func devToken(t *testing.T, gateway, user string, roles ...string) string {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"user_id": user, "roles": roles})
	resp, err := http.Post(gateway+"/api/v1/dev/token", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var answer struct {
		Token  string `json:"token"`
		UserID string `json:"user_id"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&answer); err != nil || resp.StatusCode != http.StatusOK || answer.Token == "" || answer.UserID != user {
		t.Fatalf("dev token for %s %v: status %d, %+v, %v; want a token", user, roles, resp.StatusCode, answer, err)
	}
	return answer.Token
}

// postJSON posts body with token as the bearer (none when empty) and
// returns the status.
func postJSON(t *testing.T, url, token, body string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader([]byte(body)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
