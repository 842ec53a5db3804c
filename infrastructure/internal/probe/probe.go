// Package probe checks that an HTTP endpoint answers 2xx. The service images
// are distroless (no shell, no curl), so their container health checks run a
// small static binary built from this package instead.
package probe

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
)

// maxBody bounds what is read of a health answer: the status code is what
// counts, and a misbehaving endpoint must not make the probe hang or grow.
const maxBody = 64 << 10

// Check sends GET url and returns nil when the answer is 2xx. The caller's
// context carries the deadline, so a hung service fails the check.
func Check(ctx context.Context, client *http.Client, rawURL string) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		return fmt.Errorf("parse url %q: %w", rawURL, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return fmt.Errorf("url %q: want http(s)://host[:port]/path", rawURL)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("get %s: %w", u, err)
	}
	defer resp.Body.Close()
	// Drain a little so the connection closes cleanly; the content is not needed.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxBody))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("get %s: status %d", u, resp.StatusCode)
	}
	return nil
}
