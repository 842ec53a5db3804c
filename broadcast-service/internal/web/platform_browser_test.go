package web_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	gws "github.com/gorilla/websocket"

	"github.com/bidding-platform/broadcast-service/internal/app"
	"github.com/bidding-platform/shared/testenv"
	"github.com/bidding-platform/shared/testenv/browser"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// platform is the whole system for the page: the real gateway and
// archival worker, built from this repository and run as processes, this
// service in the test, on real Redis, NATS and PostgreSQL.
type platform struct {
	gateway string // http://host:port
	page    string // http://host:port of this service
}

// testSecret signs the gateway's development tokens; it is at least the 32
// bytes the gateway requires.
const testSecret = "page-test-secret-0123456789abcdef"

// startPlatform starts it; tune adjusts this service's configuration and
// gatewayEnv the gateway's environment, after the defaults.
func startPlatform(t *testing.T, tune func(*app.Config), gatewayEnv ...string) *platform {
	t.Helper()
	root := repoRoot(t)
	gatewayBin := buildService(t, root, "api-gateway")
	workerBin := buildService(t, root, "archival-worker")
	rd := testenv.Redis(t)
	n := testenv.NATS(t)
	pg := testenv.PostgresDB(t)

	// The page needs the gateway's address and the gateway needs the
	// page's origin (CORS), so the gateway's port is chosen first.
	gatewayAddr := freeAddr(t)
	pageAddr, stop := startService(t, "127.0.0.1:0", n.URL(), "http://"+gatewayAddr, func(c *app.Config) {
		c.DevSignIn = true
		// Personal channels check the gateway's tokens.
		c.Auth.Disabled, c.Auth.Secret, c.Auth.DevTokens = false, testSecret, true
		// Notices are checked for the gateway's item names, not for how
		// soon a busy machine's gateway gives them.
		c.NameTimeout = 30 * time.Second
		if tune != nil {
			tune(c)
		}
	})
	t.Cleanup(stop)
	runService(t, gatewayBin, gatewayAddr, append([]string{
		"SERVER_ADDR=" + gatewayAddr, "REDIS_ADDR=" + rd.Addr(), "NATS_URL=" + n.URL(), "POSTGRES_URL=" + pg,
		"AUTH_JWT_SECRET=" + testSecret, "AUTH_DEV_TOKENS=true", "CORS_ALLOWED_ORIGINS=http://" + pageAddr,
		"RATE_LIMIT_PER_USER=0", "RATE_LIMIT_PER_IP=0"}, gatewayEnv...)...)
	// The gateway creates the event stream the worker reads, so it starts
	// first.
	workerAddr := freeAddr(t)
	runService(t, workerBin, workerAddr, "HTTP_ADDR="+workerAddr, "NATS_URL="+n.URL(), "POSTGRES_URL="+pg,
		"BATCH_WAIT=20ms")
	return &platform{gateway: "http://" + gatewayAddr, page: "http://" + pageAddr}
}

// call sends a JSON request to the gateway and decodes the answer into out
// (when not nil); it fails the test unless the status is want.
func (p *platform) call(t *testing.T, method, path, token string, body any, want int, out any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, p.gateway+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("%s %s = %d %s, want %d", method, path, resp.StatusCode, data, want)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("%s %s: decode %s: %v", method, path, data, err)
		}
	}
}

// token is a development token for user with roles.
func (p *platform) token(t *testing.T, user string, roles ...string) string {
	t.Helper()
	var out struct {
		Token string `json:"token"`
	}
	p.call(t, http.MethodPost, "/api/v1/dev/token", "", map[string]any{"user_id": user, "roles": roles}, http.StatusOK, &out)
	return out.Token
}

func (p *platform) createItem(t *testing.T, token, id, name string, ends time.Duration) {
	t.Helper()
	p.call(t, http.MethodPost, "/api/v1/items", token, map[string]any{
		"id": id, "name": name, "starting_price": json.Number("10.00"), "min_increment": json.Number("1.00"),
		"ends_at": time.Now().Add(ends).UTC().Format(time.RFC3339),
	}, http.StatusCreated, nil)
}

// bid places a bid as the token's subject: field is "amount" or
// "max_amount".
func (p *platform) bid(t *testing.T, token, user, item, field, amount string) {
	t.Helper()
	p.call(t, http.MethodPost, "/api/v1/items/"+item+"/bid", token,
		map[string]any{"user_id": user, field: json.Number(amount)}, http.StatusOK, nil)
}

// waitArchived waits until the archive holds n bids of item.
func (p *platform) waitArchived(t *testing.T, item string, n int) {
	t.Helper()
	testenv.WaitFor(t, 30*time.Second, fmt.Sprintf("%d bids of %s archived", n, item), func() error {
		resp, err := http.Get(p.gateway + "/api/v1/items/" + item + "/bids")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var out struct {
			Bids []json.RawMessage `json:"bids"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			return err
		}
		if len(out.Bids) < n {
			return fmt.Errorf("%d archived", len(out.Bids))
		}
		return nil
	})
}

// TestBrowserPlatform drives the page against the real gateway, archive
// and this service: the list of active auctions, live prices on it, an
// item's history on open, a maximum bid from the form, an outbid notice and
// My bids. Screenshots of each go to the test's artifact folder. The parts
// run in order in one browser, as one user would go through them.
func TestBrowserPlatform(t *testing.T) {
	bctx := browser.Open(t, 5*time.Minute)
	// No soft close: the auction the test lets end ends when it says.
	p := startPlatform(t, nil, "SOFT_CLOSE=0")
	seller := p.token(t, "sam", "seller")
	bob := p.token(t, "bob")
	carol := p.token(t, "carol")
	// Alice's channel, open before she bids: her notices name items the
	// service learns of from her bids, through the gateway.
	aliceChannel := p.personalChannel(t, "alice", p.token(t, "alice"), nil)

	// Three auctions to look at, ending one after the other, and enough
	// others behind them for a second page of the list.
	p.createItem(t, seller, "telescope", "Brass Telescope", 2*time.Hour)
	p.createItem(t, seller, "watch", "Vintage Watch", 3*time.Hour)
	// A name that would be markup if the page ever took it as HTML.
	hostile := `Lamp <img src=x onerror="document.title='owned'"> & "friends"`
	p.createItem(t, seller, "lamp", hostile, 4*time.Hour)
	for i := range 19 {
		p.createItem(t, seller, fmt.Sprintf("filler_%02d", i), fmt.Sprintf("Filler %02d", i), 5*time.Hour+time.Duration(i)*time.Minute)
	}
	p.bid(t, bob, "bob", "telescope", "amount", "20.00")
	p.bid(t, carol, "carol", "telescope", "amount", "25.00")
	p.waitArchived(t, "telescope", 2)

	t.Run("list", func(t *testing.T) {
		// The first page, soonest ending first, with prices, bid counts
		// and a countdown; the rest behind "Load more".
		if err := chromedp.Do(bctx, chromedp.Navigate(p.page+"/")); err != nil {
			t.Fatalf("open the list: %v", err)
		}
		testenv.WaitFor(t, 20*time.Second, "the list's first page", func() error {
			if n := evaluate[int](t, bctx, `document.querySelectorAll('#auctions li').length`); n == 0 {
				return fmt.Errorf("no items; the page says %q", evaluate[string](t, bctx, `document.getElementById('auctions-status').textContent`))
			}
			return nil
		})
		ids := evaluate[[]string](t, bctx, `Array.from(document.querySelectorAll('#auctions li')).map(function (li) { return li.dataset.itemId; })`)
		if len(ids) != 20 || strings.Join(ids[:3], ",") != "telescope,watch,lamp" {
			t.Fatalf("the list's first page = %v, want 20 items starting telescope, watch, lamp", ids)
		}
		waitRow(t, bctx, "auctions", "telescope", ".auction-name a", "Brass Telescope")
		if got := rowText(t, bctx, "auctions", "telescope", ".auction-name a[href]", "href"); got != p.page+"/items/telescope" {
			t.Errorf("the telescope links to %q, want its page", got)
		}
		waitRow(t, bctx, "auctions", "telescope", ".price-sm", "$25.00")
		waitRow(t, bctx, "auctions", "telescope", ".bid-count", "2 bids")
		waitRow(t, bctx, "auctions", "watch", ".price-sm", "$10.00")
		waitRow(t, bctx, "auctions", "watch", ".price-label", "Starting bid")
		if got := rowText(t, bctx, "auctions", "lamp", ".auction-name a", ""); got != hostile {
			t.Errorf("the lamp's name shows as %q, want the text %q", got, hostile)
		}
		if n := evaluate[int](t, bctx, `document.querySelectorAll('#auctions img').length`); n != 0 {
			t.Errorf("an item's name became markup: %d img elements in the list", n)
		}
		clock := regexp.MustCompile(`^0[01]:\d\d:\d\d$`)
		first := ""
		testenv.WaitFor(t, 10*time.Second, "the telescope's countdown under 2h as hh:mm:ss", func() error {
			if first = rowText(t, bctx, "auctions", "telescope", ".countdown-sm", ""); !clock.MatchString(first) {
				return fmt.Errorf("shows %q", first)
			}
			return nil
		})
		testenv.WaitFor(t, 10*time.Second, "the countdown to tick", func() error {
			if got := rowText(t, bctx, "auctions", "telescope", ".countdown-sm", ""); got == first || !clock.MatchString(got) {
				return fmt.Errorf("shows %q", got)
			}
			return nil
		})
		// A bid moves the price on the list, live.
		p.bid(t, bob, "bob", "watch", "amount", "12.00")
		waitRow(t, bctx, "auctions", "watch", ".price-sm", "$12.00")
		waitRow(t, bctx, "auctions", "watch", ".bid-count", "1 bid")
		waitRow(t, bctx, "auctions", "watch", ".price-label", "Current bid")
		browser.Screenshot(t, bctx, "list.png")
		if err := chromedp.Do(bctx, chromedp.Click(chromedp.CSS(`#load-more`))); err != nil {
			t.Fatalf("load more: %v", err)
		}
		testenv.WaitFor(t, 10*time.Second, "the second page", func() error {
			n := evaluate[int](t, bctx, `document.querySelectorAll('#auctions li').length`)
			if more := evaluate[bool](t, bctx, `document.getElementById('load-more').hidden`); n != 22 || !more {
				return fmt.Errorf("%d items listed, Load more hidden: %v; want all 22 and no more to load", n, more)
			}
			return nil
		})
	})

	t.Run("item", func(t *testing.T) {
		// The page lists the bids so far as soon as it opens.
		if err := chromedp.Do(bctx,
			chromedp.Navigate(p.page+"/items/telescope"),
			chromedp.WaitVisible(chromedp.CSS(`#conn.pill-ok`)),
		); err != nil {
			t.Fatalf("open the telescope: %v", err)
		}
		browser.WaitText(t, bctx, "#name", "Brass Telescope", 10*time.Second)
		waitBids(t, bctx, "2 carol $25.00, 1 bob $20.00")
		if evaluate[bool](t, bctx, `document.getElementById('no-bids').offsetParent !== null`) {
			t.Error(`"Waiting for the first bid" shown beside the item's bids`)
		}

		// Alice signs in and sets a maximum: she leads one increment above
		// carol.
		if err := chromedp.Do(bctx,
			chromedp.SendKeys(chromedp.CSS(`#user-id`), "alice"),
			chromedp.Click(chromedp.CSS(`#sign-in`)),
		); err != nil {
			t.Fatal(err)
		}
		browser.WaitText(t, bctx, "#signed-in-user", "alice", 10*time.Second)
		if err := chromedp.Do(bctx,
			chromedp.Click(chromedp.CSS(`#kind-max`)),
			chromedp.SetValue(chromedp.CSS(`#amount`), "50.00"),
			chromedp.Click(chromedp.CSS(`#bid-button`)),
		); err != nil {
			t.Fatal(err)
		}
		browser.WaitText(t, bctx, "#bid-result", "your maximum $50.00", 10*time.Second)
		browser.WaitText(t, bctx, "#price", "$26.00", 10*time.Second)
		// Bob bids below her maximum: her automatic bid answers, marked.
		p.bid(t, bob, "bob", "telescope", "amount", "40.00")
		browser.WaitText(t, bctx, "#price", "$41.00", 10*time.Second)
		waitBids(t, bctx, "5 alice auto $41.00, 4 bob $40.00, 3 alice $26.00, 2 carol $25.00, 1 bob $20.00")
		browser.Screenshot(t, bctx, "item.png")
	})

	t.Run("outbid notice", func(t *testing.T) {
		// Bob's maximum beats hers: the personal channel tells her.
		p.bid(t, bob, "bob", "telescope", "max_amount", "100.00")
		waitNotice(t, bctx, "outbid", "Brass Telescope")
		waitNotice(t, bctx, "outbid", "$51.00")
		browser.Screenshot(t, bctx, "outbid-notice.png")

		// Her plain bid below bob's maximum is taken, and answered at once:
		// the form says so, and her channel tells her (and her other tabs)
		// that his automatic bid took the lead from her.
		if err := chromedp.Do(bctx,
			chromedp.Click(chromedp.CSS(`#kind-amount`)),
			chromedp.SetValue(chromedp.CSS(`#amount`), "60.00"),
			chromedp.Click(chromedp.CSS(`#bid-button`)),
		); err != nil {
			t.Fatal(err)
		}
		browser.WaitText(t, bctx, "#bid-result", "an automatic bid outbid it", 10*time.Second)
		browser.WaitText(t, bctx, "#price", "$61.00", 10*time.Second)
		waitNotice(t, bctx, "outbid", "$61.00")
		if n := evaluate[int](t, bctx, `document.querySelectorAll('#notices .toast').length`); n != 2 {
			t.Errorf("%d notices, want the two outbids", n)
		}
	})

	t.Run("my bids", func(t *testing.T) {
		// Outbid on the telescope, leading on the watch.
		alice := evaluate[string](t, bctx, `String(sessionStorage.getItem('auction-token'))`)
		p.bid(t, alice, "alice", "watch", "amount", "15.00")
		p.waitArchived(t, "watch", 1)
		p.waitArchived(t, "telescope", 8)
		if err := chromedp.Do(bctx, chromedp.Navigate(p.page+"/me"), chromedp.WaitVisible(chromedp.CSS(`#signed-in`))); err != nil {
			t.Fatalf("open my bids: %v", err)
		}
		waitRow(t, bctx, "bidding", "watch", ".state", "Leading")
		waitRow(t, bctx, "bidding", "telescope", ".state", "Outbid")
		want := "watch $15.00 Leading, telescope $60.00 Outbid, telescope $41.00 auto Outbid, telescope $26.00 Outbid"
		testenv.WaitFor(t, 10*time.Second, "my bids "+want, func() error {
			got := evaluate[string](t, bctx, `Array.from(document.querySelectorAll('#my-bids li')).map(function (li) {
				return li.dataset.itemId + ' ' + li.querySelector('.mine-amount').textContent + ' ' + li.querySelector('.state').textContent;
			}).join(', ')`)
			if got != want {
				return fmt.Errorf("the list shows %q", got)
			}
			return nil
		})
		browser.Screenshot(t, bctx, "my-bids.png")

		// Notices come on this page too, and the lists follow them.
		p.bid(t, carol, "carol", "watch", "amount", "16.00")
		waitNotice(t, bctx, "outbid", "Vintage Watch")
		waitRow(t, bctx, "bidding", "watch", ".state", "Outbid")
	})

	t.Run("notices named by the service", func(t *testing.T) {
		for _, want := range []string{"Brass Telescope $51.00", "Brass Telescope $61.00", "Vintage Watch $16.00"} {
			var m struct {
				Type       string      `json:"type"`
				ItemName   string      `json:"item_name"`
				CurrentBid json.Number `json:"current_bid"`
			}
			if err := aliceChannel.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
				t.Fatal(err)
			}
			if err := aliceChannel.ReadJSON(&m); err != nil {
				t.Fatalf("alice's channel, waiting for outbid on %s: %v", want, err)
			}
			if got := fmt.Sprintf("%s $%s", m.ItemName, m.CurrentBid); m.Type != "outbid" || got != want {
				t.Errorf("alice's notice: %s %s, want outbid on %s", m.Type, got, want)
			}
		}
	})

	t.Run("won and cancelled", func(t *testing.T) {
		// On My bids, an auction she wins and one an admin cancels: a
		// notice each, and the lists show both ends once archived.
		alice := evaluate[string](t, bctx, `String(sessionStorage.getItem('auction-token'))`)
		p.createItem(t, seller, "clock", "Mantel Clock", 6*time.Second)
		p.createItem(t, seller, "vase", "Blue Vase", 2*time.Hour)
		p.bid(t, alice, "alice", "clock", "amount", "20.00")
		p.bid(t, alice, "alice", "vase", "amount", "30.00")
		p.call(t, http.MethodPost, "/api/v1/items/vase/cancel", p.token(t, "root", "admin"), nil, http.StatusOK, nil)
		waitNotice(t, bctx, "auction_cancelled", "Blue Vase was cancelled")
		waitRow(t, bctx, "my-bids", "vase", ".state", "Cancelled")
		waitNotice(t, bctx, "auction_won", "Mantel Clock for $20.00")
		waitRow(t, bctx, "won", "clock", ".state", "Won")
		waitRow(t, bctx, "my-bids", "clock", ".state", "Won")
		browser.Screenshot(t, bctx, "won-notice.png")
	})
}

// personalChannel opens user's personal channel with token and header
// and reads its "ready".
func (p *platform) personalChannel(t *testing.T, user, token string, header http.Header) *gws.Conn {
	t.Helper()
	u := strings.Replace(p.page, "http://", "ws://", 1) + "/ws/users/" + user + "?access_token=" + token
	c, _, err := gws.DefaultDialer.Dial(u, header)
	if err != nil {
		t.Fatalf("open %s's channel: %v", user, err)
	}
	t.Cleanup(func() { c.Close() })
	var ready struct {
		Type string `json:"type"`
	}
	if err := c.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := c.ReadJSON(&ready); err != nil || ready.Type != "ready" {
		t.Fatalf("%s's channel: first message %+v, %v; want ready", user, ready, err)
	}
	return c
}

// rowText is the text of sel (or its attribute attr) in item's row of the
// list with id list.
func rowText(t *testing.T, ctx context.Context, list, item, sel, attr string) string {
	t.Helper()
	return evaluate[string](t, ctx, fmt.Sprintf(`(function () {
		var e = document.querySelector('#%s li[data-item-id=%q] %s');
		return !e ? '' : %q ? String(e[%q]) : e.textContent;
	})()`, list, item, sel, attr, attr))
}

func waitRow(t *testing.T, ctx context.Context, list, item, sel, want string) {
	t.Helper()
	testenv.WaitFor(t, 20*time.Second, fmt.Sprintf("%s of %s in #%s showing %q", sel, item, list, want), func() error {
		if got := rowText(t, ctx, list, item, sel, ""); !strings.Contains(got, want) {
			return fmt.Errorf("shows %q", got)
		}
		return nil
	})
}

// waitNotice waits for a notice of type (outbid, auction_won, ...) that
// says want.
func waitNotice(t *testing.T, ctx context.Context, typ, want string) {
	t.Helper()
	testenv.WaitFor(t, 20*time.Second, fmt.Sprintf("an %s notice saying %q", typ, want), func() error {
		got := evaluate[[]string](t, ctx, fmt.Sprintf(`Array.from(document.querySelectorAll('#notices .toast[data-type=%q]')).map(function (e) { return e.textContent; })`, typ))
		for _, text := range got {
			if strings.Contains(text, want) {
				return nil
			}
		}
		return fmt.Errorf("notices %q", got)
	})
}

// waitBids waits for the item page's bid list to be want: "seq user
// amount" of each bid, newest first.
func waitBids(t *testing.T, ctx context.Context, want string) {
	t.Helper()
	testenv.WaitFor(t, 20*time.Second, "bids "+want, func() error {
		got := evaluate[string](t, ctx, `Array.from(document.querySelectorAll('#bids li')).map(function (li) {
			return li.dataset.seq + ' ' + li.querySelector('.who').textContent + ' ' + li.querySelector('.amt').textContent;
		}).join(', ')`)
		if got != want {
			return fmt.Errorf("the list shows %q", got)
		}
		return nil
	})
}

// evaluate runs js in the page and returns its value.
func evaluate[T any](t *testing.T, ctx context.Context, js string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js))
	if err != nil {
		t.Fatalf("evaluate %s: %v", js, err)
	}
	return v
}

// repoRoot is the folder above the test that holds go.work.
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.work")); err == nil {
			return d
		}
		if filepath.Dir(d) == d {
			t.Fatalf("no go.work above %s", dir)
		}
	}
}

// buildService builds another service of the repository; services never
// import each other, so this one runs theirs as programs.
func buildService(t *testing.T, root, name string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), name)
	cmd := exec.Command("go", "build", "-o", bin, "./cmd")
	cmd.Dir = filepath.Join(root, name)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", name, err, out)
	}
	return bin
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// runService runs bin with env until the test ends and waits for its
// /health on addr. Its log goes to the test's output if the test fails.
func runService(t *testing.T, bin, addr string, env ...string) {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), filepath.Base(bin)+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), append([]string{"LOG_FORMAT=text", "LOG_LEVEL=warn"}, env...)...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		logFile.Close()
		if t.Failed() {
			if b, err := os.ReadFile(logPath); err == nil {
				t.Logf("%s log:\n%s", filepath.Base(bin), b)
			}
		}
	})
	testenv.WaitFor(t, 60*time.Second, filepath.Base(bin)+" healthy", func() error {
		select {
		case <-done:
			b, _ := os.ReadFile(logPath)
			t.Fatalf("%s exited:\n%s", filepath.Base(bin), b)
		default:
		}
		resp, err := http.Get("http://" + addr + "/health")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	})
}
