// Package browser drives Debian's headless Chromium for the tests of the
// live auction page.
package browser

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Chromium is where Debian's chromium package puts the browser.
const Chromium = "/usr/bin/chromium"

// Open starts a headless Chromium with an empty profile and returns a
// context for driving it that ends after timeout or with the test. Without
// Chromium the test is skipped, except under CI, where it fails: CI must
// run the browser tests.
func Open(t *testing.T, timeout time.Duration) context.Context {
	t.Helper()
	if _, err := os.Stat(Chromium); err != nil {
		if os.Getenv("CI") == "" {
			t.Skipf("%s not installed (scripts/install-deps.sh installs it; CI requires it)", Chromium)
		}
		t.Fatalf("CI needs %s: %v", Chromium, err)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(Chromium),
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
	bctx, cancelBrowser := chromedp.NewContext(allocCtx)
	bctx, cancelTimeout := context.WithTimeout(bctx, timeout)
	t.Cleanup(func() {
		cancelTimeout()
		cancelBrowser()
		cancelAlloc()
	})
	return bctx
}

// WaitText polls the element's text until it contains want. opts narrow
// the query, e.g. chromedp.FromNode(iframe) for a page inside a frame.
func WaitText(t *testing.T, ctx context.Context, sel, want string, timeout time.Duration, opts ...chromedp.QueryOption) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel), opts...))
		if err == nil && strings.Contains(got, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s shows %q (err %v) after %s, want it to contain %q", sel, got, err, timeout, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Screenshot saves the whole page as name in the test's artifact folder
// (go test -artifacts -outputdir DIR keeps it; otherwise it is temporary)
// and logs where.
func Screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	shot := filepath.Join(t.ArtifactDir(), name)
	if err := os.WriteFile(shot, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", shot)
}
