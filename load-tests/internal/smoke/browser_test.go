package smoke

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/bidding-platform/shared/testenv"
)

const chromium = "/usr/bin/chromium"

// TestLivePageWithRealServices is the whole system in a browser: the live
// page served by the broadcast service posts bids across origins to the real
// gateway (CORS preflight, then the POST, both through its chi router), the
// gateway decides them in Redis and publishes to JetStream, and the page
// shows the price the broadcast service pushes, for its own bids and for
// bids placed by others through the API.
func TestLivePageWithRealServices(t *testing.T) {
	if _, err := os.Stat(chromium); err != nil {
		if os.Getenv("CI") == "" {
			t.Skipf("%s not installed (scripts/install-deps.sh installs it; CI requires it)", chromium)
		}
		t.Fatalf("CI needs %s: %v", chromium, err)
	}
	gatewayBin := buildService(t, "api-gateway")
	broadcastBin := buildService(t, "broadcast-service")
	rd := testenv.Redis(t)
	nt := testenv.NATS(t)

	// The page's origin must be known to the gateway before either starts.
	broadcastAddr := freeAddr(t)
	pageOrigin := "http://" + broadcastAddr
	gateway := "http://" + startService(t, gatewayBin,
		"REDIS_ADDR="+rd.Addr(), "NATS_URL="+nt.URL(), "CORS_ALLOWED_ORIGINS="+pageOrigin,
		"POSTGRES_URL=postgres://bidding:password@127.0.0.1:1/bidding?sslmode=disable&connect_timeout=1")
	startServiceOn(t, broadcastAddr, broadcastBin, "NATS_URL="+nt.URL(), "GATEWAY_URL="+gateway)

	resp, err := http.Post(gateway+"/api/v1/items", "application/json", strings.NewReader(
		`{"id":"e2e_lot","name":"Brass Telescope","starting_price":100.00,"min_increment":5.00}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("create item: status %d", resp.StatusCode)
	}

	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-first-run", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1200, 900),
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(allocCtx)
	defer cancelBrowser()
	bctx, cancelTimeout := context.WithTimeout(bctx, 2*time.Minute)
	defer cancelTimeout()

	page := pageOrigin + "/items/e2e_lot"
	if err := chromedp.Do(bctx,
		chromedp.Navigate(page),
		chromedp.WaitVisible(chromedp.CSS(`#conn.pill-ok`)),
	); err != nil {
		t.Fatalf("open %s: %v", page, err)
	}
	waitText(t, bctx, "#name", "Brass Telescope", 10*time.Second)

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
	waitText(t, bctx, "#bid-result", "Bid accepted", 10*time.Second)
	waitText(t, bctx, "#price", "$123.45", 10*time.Second)
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
	waitText(t, bctx, "#price", "$150.00", 10*time.Second)
	waitText(t, bctx, "#bids", "bob", 10*time.Second)

	// A bid the gateway rejects shows its answer and changes nothing.
	bidInPage("alice", "151.00")
	waitText(t, bctx, "#bid-result", "must be higher", 10*time.Second)
	if it := getItem(t, gateway, "e2e_lot"); it.CurrentBid.String() != "150.00" || it.BidCount != 2 {
		t.Errorf("after the rejected bid the gateway holds %s with %d bids, want 150.00 with 2", it.CurrentBid, it.BidCount)
	}

	png, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	// go test -artifacts -outputdir DIR keeps it; otherwise it is temporary.
	shot := filepath.Join(t.ArtifactDir(), "live-page-real-services.png")
	if err := os.WriteFile(shot, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", shot)
}

// waitText polls the element's text until it contains want.
func waitText(t *testing.T, ctx context.Context, sel, want string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		if err == nil && strings.Contains(got, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s shows %q (err %v) after %s, want it to contain %q", sel, got, err, timeout, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
