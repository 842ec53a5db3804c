package testenv

import (
	"testing"
	"time"
)

// WaitFor polls cond until it returns nil, and fails the test with what and
// cond's last error once timeout has passed. It polls every few milliseconds
// at first, so a condition that is nearly there is seen at once, and backs
// off to 100ms, so one that takes seconds does not keep a small machine
// busy. Call it from the test's goroutine: failing stops that goroutine.
func WaitFor(tb testing.TB, timeout time.Duration, what string, cond func() error) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	interval := 5 * time.Millisecond
	for {
		err := cond()
		if err == nil {
			return
		}
		if !time.Now().Before(deadline) {
			tb.Fatalf("waited %v for %s: %v", timeout, what, err)
			return
		}
		time.Sleep(min(interval, time.Until(deadline)))
		interval = min(2*interval, 100*time.Millisecond)
	}
}
