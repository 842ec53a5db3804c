package web_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/bidding-platform/broadcast-service/internal/app"
	"github.com/bidding-platform/shared/models"
	"github.com/bidding-platform/shared/stream"
	"github.com/bidding-platform/shared/testenv"
	"github.com/bidding-platform/shared/testenv/browser"
)

// TestBrowserSignIn: the page signs in through the gateway's development
// token endpoint, from a #token= fragment and from the site that frames it,
// sends the token with every bid as the token's subject, and says what to
// do when the gateway answers 401 or 403. Refused bids change nothing.
func TestBrowserSignIn(t *testing.T) {
	bctx := browser.Open(t, 2*time.Minute)
	n := testenv.NATS(t)
	gw := &fakeGateway{js: n.JetStream(), published: make(chan models.Event, 1), devTokens: true, secret: []byte("first-secret")}
	{
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := stream.Ensure(ctx, gw.js, 1)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
	}
	gwSrv := httptest.NewServer(gw)
	defer gwSrv.Close()
	// The shop that frames the page; its answer is set once the page's
	// address is known.
	var shopPage atomic.Pointer[string]
	shop := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, *shopPage.Load())
	}))
	defer shop.Close()

	addr, stop := startService(t, "127.0.0.1:0", n.URL(), gwSrv.URL, func(c *app.Config) {
		c.DevSignIn = true
		c.EmbedOrigins = []string{shop.URL}
	})
	defer stop()
	origin := "http://" + addr
	page := origin + "/items/signin_item"

	nothingPublished := func(what string) {
		t.Helper()
		select {
		case ev := <-gw.published:
			t.Fatalf("%s: the gateway accepted a bid (%+v), want it refused", what, ev)
		default:
		}
	}
	bid := func(amount string, opts ...chromedp.QueryOption) {
		t.Helper()
		if err := chromedp.Do(bctx,
			// The form keeps what was typed last; replace it.
			chromedp.SetValue(chromedp.CSS(`#amount`), amount, opts...),
			chromedp.Click(chromedp.CSS(`#bid-button`), opts...),
		); err != nil {
			t.Fatalf("bid %s: %v", amount, err)
		}
	}
	accepted := func(user string, amount models.Money) {
		t.Helper()
		select {
		case ev := <-gw.published:
			if ev.UserID != user || ev.Amount != amount {
				t.Fatalf("gateway accepted %s for %s, want %s for %s", ev.Amount, ev.UserID, amount, user)
			}
		case <-time.After(30 * time.Second):
			res, _ := chromedp.Run(bctx, chromedp.Evaluate[string](`document.getElementById('bid-result').textContent + ' | ' + document.getElementById('amount').value`))
			t.Fatalf("the bid of %s never reached the gateway: %s", user, res)
		}
	}
	eval := func(js string) string {
		t.Helper()
		v, err := chromedp.Run(bctx, chromedp.Evaluate[string](js))
		if err != nil {
			t.Fatalf("evaluate %s: %v", js, err)
		}
		return v
	}
	storedToken := `String(sessionStorage.getItem('auction-token'))`

	if err := chromedp.Do(bctx,
		chromedp.Navigate(page),
		chromedp.WaitVisible(chromedp.CSS(`#conn.pill-ok`)),
		chromedp.WaitVisible(chromedp.CSS(`#sign-in`)),
	); err != nil {
		t.Fatalf("open %s with the development sign-in: %v", page, err)
	}

	// Not signed in: the gateway wants a token.
	if err := chromedp.Do(bctx, chromedp.SendKeys(chromedp.CSS(`#user-id`), "alice")); err != nil {
		t.Fatal(err)
	}
	bid("10.00")
	browser.WaitText(t, bctx, "#bid-result", "sign in again", 10*time.Second)
	nothingPublished("a bid without a token")

	// Development sign-in as the typed user; the bid carries the token.
	if err := chromedp.Do(bctx, chromedp.Click(chromedp.CSS(`#sign-in`))); err != nil {
		t.Fatal(err)
	}
	browser.WaitText(t, bctx, "#signed-in-user", "alice", 10*time.Second)
	aliceToken := eval(storedToken)
	if claims := strings.Split(aliceToken, "."); len(claims) != 3 {
		t.Fatalf("sessionStorage holds %q after signing in, want the gateway's token", aliceToken)
	}
	bid("20.00")
	accepted("alice", 2000)
	browser.WaitText(t, bctx, "#price", "$20.00", 10*time.Second)
	browser.WaitText(t, bctx, "#bid-result", "Bid accepted", 10*time.Second)
	gw.mu.Lock()
	bearer := gw.bearer
	gw.mu.Unlock()
	if bearer != "Bearer "+aliceToken {
		t.Errorf("the bid's Authorization = %q, want the token the page got from the gateway", bearer)
	}

	// The tab keeps the sign-in across a reload.
	if err := chromedp.Do(bctx, chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS(`#conn.pill-ok`))); err != nil {
		t.Fatal(err)
	}
	browser.WaitText(t, bctx, "#signed-in-user", "alice", 10*time.Second)

	// The gateway no longer accepts the token (its key changed): 401, and
	// the page forgets the token and asks to sign in again.
	gw.setSecret("second-secret")
	bid("30.00")
	browser.WaitText(t, bctx, "#bid-result", "sign in again", 10*time.Second)
	nothingPublished("a bid with a token the gateway no longer accepts")
	if got := eval(storedToken); got != "null" {
		t.Errorf("sessionStorage still holds %q after the gateway refused the token", got)
	}
	if err := chromedp.Do(bctx, chromedp.WaitNotVisible(chromedp.CSS(`#signed-in`))); err != nil {
		t.Fatal(err)
	}

	// A token handed over in the fragment, here one without the bidder
	// role: the page signs in as its subject, takes the token out of the
	// address, and shows the gateway's 403 plainly.
	carol := gw.sign("carol", []string{"viewer"})
	if err := chromedp.Do(bctx,
		chromedp.Navigate(page+"#token="+carol),
		chromedp.WaitVisible(chromedp.CSS(`#conn.pill-ok`)),
	); err != nil {
		t.Fatal(err)
	}
	browser.WaitText(t, bctx, "#signed-in-user", "carol", 10*time.Second)
	if loc := eval(`location.href`); strings.Contains(loc, "token") {
		t.Errorf("the address still holds the token: %s", loc)
	}
	bid("40.00")
	browser.WaitText(t, bctx, "#bid-result", "Not allowed", 10*time.Second)
	browser.WaitText(t, bctx, "#bid-result", "bidder role", 10*time.Second)
	nothingPublished("a bid refused with 403")
	if err := chromedp.Do(bctx, chromedp.Click(chromedp.CSS(`#sign-out`)), chromedp.WaitNotVisible(chromedp.CSS(`#signed-in`))); err != nil {
		t.Fatal(err)
	}
	if got := eval(storedToken); got != "null" {
		t.Errorf("sessionStorage holds %q after signing out", got)
	}

	// The shop frames the page and hands it the signed-in user's token once
	// the page says it is ready.
	dave := gw.sign("dave", nil)
	html := fmt.Sprintf(`<!doctype html><title>Shop</title>
<iframe id="live" src=%q width="1100" height="850"></iframe>
<script>
var frame = document.getElementById('live');
window.addEventListener('message', function (e) {
  if (e.origin === %q && e.data && e.data.type === 'auction-ready') {
    frame.contentWindow.postMessage({type: 'auction-token', token: %q}, %q);
  }
});
</script>`, page, origin, dave, origin)
	shopPage.Store(&html)
	if err := chromedp.Do(bctx, chromedp.Navigate(shop.URL), chromedp.WaitVisible(chromedp.CSS(`#live`))); err != nil {
		t.Fatal(err)
	}
	frames, err := chromedp.Run(bctx, chromedp.Nodes(chromedp.CSS(`#live`)))
	if err != nil || len(frames) != 1 {
		t.Fatalf("find the frame: %v", err)
	}
	in := chromedp.FromNode(frames[0])
	if err := chromedp.Do(bctx, chromedp.WaitVisible(chromedp.CSS(`#conn.pill-ok`), in)); err != nil {
		t.Fatalf("the framed page: %v", err)
	}
	browser.WaitText(t, bctx, "#signed-in-user", "dave", 10*time.Second, in)
	if err := chromedp.Do(bctx, chromedp.WaitNotVisible(chromedp.CSS(`#sign-in`), in)); err != nil {
		t.Fatalf("the development sign-in still shown once signed in: %v", err)
	}
	bid("50.00", in)
	accepted("dave", 5000)
	browser.WaitText(t, bctx, "#price", "$50.00", 10*time.Second, in)
	browser.WaitText(t, bctx, "#bid-result", "Bid accepted", 10*time.Second, in)
	browser.Screenshot(t, bctx, "signed-in-frame.png")
}

// TestBrowserWithoutAuth: with the gateway's authentication off
// (AUTH_DISABLED=true) and no development sign-in, the page bids under the
// typed user id with no token, as before sign-in existed.
func TestBrowserWithoutAuth(t *testing.T) {
	bctx := browser.Open(t, 90*time.Second)
	n := testenv.NATS(t)
	gw := &fakeGateway{js: n.JetStream(), published: make(chan models.Event, 1)}
	{
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := stream.Ensure(ctx, gw.js, 1)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
	}
	gwSrv := httptest.NewServer(gw)
	defer gwSrv.Close()
	addr, stop := startService(t, "127.0.0.1:0", n.URL(), gwSrv.URL, nil)
	defer stop()

	if err := chromedp.Do(bctx,
		chromedp.Navigate("http://"+addr+"/items/open_item"),
		chromedp.WaitVisible(chromedp.CSS(`#conn.pill-ok`)),
		chromedp.SendKeys(chromedp.CSS(`#user-id`), "erin"),
		chromedp.SendKeys(chromedp.CSS(`#amount`), "12.00"),
		chromedp.Click(chromedp.CSS(`#bid-button`)),
	); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-gw.published:
		if ev.UserID != "erin" || ev.Amount != 1200 {
			t.Fatalf("gateway accepted %s for %s, want 12.00 for erin", ev.Amount, ev.UserID)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the bid never reached the gateway")
	}
	browser.WaitText(t, bctx, "#bid-result", "Bid accepted", 10*time.Second)
	// Not rendered at all, whatever the style sheet says of the elements.
	hidden, err := chromedp.Run(bctx, chromedp.Evaluate[bool](
		`['sign-in-row', 'signed-in'].every(function (id) { return document.getElementById(id).offsetParent === null; })`))
	if err != nil || !hidden {
		t.Errorf("sign-in controls shown without the development sign-in (err %v)", err)
	}
	gw.mu.Lock()
	bearer := gw.bearer
	gw.mu.Unlock()
	if bearer != "" {
		t.Errorf("the bid carried Authorization %q without a sign-in", bearer)
	}
}
