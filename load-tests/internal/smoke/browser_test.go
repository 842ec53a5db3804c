package smoke

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/bidding-platform/shared/testenv"
	"github.com/bidding-platform/shared/testenv/browser"
)

// TestLivePageWithRealServices is the whole system in a browser: the live
// page served by the broadcast service posts bids across origins to the real
// gateway (CORS preflight, then the POST, both through its chi router), the
// gateway decides them in Redis and publishes to JetStream, and the page
// shows the price the broadcast service pushes, for its own bids and for
// bids placed by others through the API.
func TestLivePageWithRealServices(t *testing.T) {
	gatewayBin := buildService(t, "api-gateway")
	broadcastBin := buildService(t, "broadcast-service")
	rd := testenv.Redis(t)
	nt := testenv.NATS(t)

	// The page's origin must be known to the gateway before either starts.
	// Authentication is off here, so the page bids under a typed user id;
	// TestLivePageSignInWithRealServices runs it on.
	broadcastAddr := freeAddr(t)
	pageOrigin := "http://" + broadcastAddr
	gateway := "http://" + startService(t, gatewayBin,
		"REDIS_ADDR="+rd.Addr(), "NATS_URL="+nt.URL(), "CORS_ALLOWED_ORIGINS="+pageOrigin,
		"AUTH_DISABLED=true", noPostgres)
	startServiceOn(t, broadcastAddr, broadcastBin, "NATS_URL="+nt.URL(), "GATEWAY_URL="+gateway, "AUTH_DISABLED=true")

	resp, err := http.Post(gateway+"/api/v1/items", "application/json", strings.NewReader(
		`{"id":"e2e_lot","name":"Brass Telescope","starting_price":100.00,"min_increment":5.00}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("create item: status %d", resp.StatusCode)
	}

	bctx := browser.Open(t, 2*time.Minute)
	page := pageOrigin + "/items/e2e_lot"
	if err := chromedp.Do(bctx,
		chromedp.Navigate(page),
		chromedp.WaitVisible(chromedp.CSS(`#conn.pill-ok`)),
	); err != nil {
		t.Fatalf("open %s: %v", page, err)
	}
	browser.WaitText(t, bctx, "#name", "Brass Telescope", 10*time.Second)

	bidInPage := func(user, amount string) {
		t.Helper()
		// The form keeps what was typed last; empty it as a user would.
		if _, err := chromedp.Run(bctx, chromedp.Evaluate[bool](
			`document.getElementById('user-id').value = document.getElementById('amount').value = ''; true`)); err != nil {
			t.Fatalf("empty the bid form: %v", err)
		}
		if err := chromedp.Do(bctx,
			chromedp.SendKeys(chromedp.CSS(`#user-id`), user),
			chromedp.SendKeys(chromedp.CSS(`#amount`), amount),
		); err != nil {
			t.Fatalf("type a bid of %s as %s: %v", amount, user, err)
		}
		typed, err := chromedp.Run(bctx, chromedp.Evaluate[string](`document.getElementById('amount').value`))
		if err != nil || typed != amount {
			t.Fatalf("amount field holds %q (err %v), want %q", typed, err, amount)
		}
		if err := chromedp.Do(bctx, chromedp.Click(chromedp.CSS(`#bid-button`))); err != nil {
			t.Fatalf("submit the bid: %v", err)
		}
	}

	bidInPage("alice", "123.45")
	browser.WaitText(t, bctx, "#bid-result", "Bid accepted", 10*time.Second)
	browser.WaitText(t, bctx, "#price", "$123.45", 10*time.Second)
	if it := getItem(t, gateway, "e2e_lot"); it.CurrentBid.String() != "123.45" || it.HighestBidderID != "alice" {
		t.Fatalf("gateway holds %s by %q, want 123.45 by alice", it.CurrentBid, it.HighestBidderID)
	}

	// Someone else outbids through the API; the page learns it from the
	// broadcast service.
	resp, err = http.Post(gateway+"/api/v1/items/e2e_lot/bid", "application/json",
		strings.NewReader(`{"user_id":"bob","amount":150.00}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("bob's bid: status %d", resp.StatusCode)
	}
	browser.WaitText(t, bctx, "#price", "$150.00", 10*time.Second)
	browser.WaitText(t, bctx, "#bids", "bob", 10*time.Second)

	// A bid the gateway rejects shows its answer and changes nothing.
	bidInPage("alice", "151.00")
	browser.WaitText(t, bctx, "#bid-result", "must be higher", 10*time.Second)
	if it := getItem(t, gateway, "e2e_lot"); it.CurrentBid.String() != "150.00" || it.BidCount != 2 {
		t.Errorf("after the rejected bid the gateway holds %s with %d bids, want 150.00 with 2", it.CurrentBid, it.BidCount)
	}

	browser.Screenshot(t, bctx, "live-page-real-services.png")
}
