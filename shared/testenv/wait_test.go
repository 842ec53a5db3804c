package testenv

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestWaitFor(t *testing.T) {
	t.Parallel()
	t.Run("returns once the condition holds", func(t *testing.T) {
		t.Parallel()
		calls := 0
		WaitFor(t, 10*time.Second, "the third call", func() error {
			if calls++; calls < 3 {
				return fmt.Errorf("call %d", calls)
			}
			return nil
		})
		if got, want := calls, 3; got != want {
			t.Errorf("cond called %d times, want %d", got, want)
		}
	})
	t.Run("fails with what it waited for and the last error", func(t *testing.T) {
		t.Parallel()
		rec := &fatalRecorder{TB: t}
		start := time.Now()
		WaitFor(rec, 50*time.Millisecond, "the impossible", func() error { return errors.New("still no") })
		if took := time.Since(start); took < 50*time.Millisecond {
			t.Errorf("gave up after %v, want at least the 50ms timeout", took)
		}
		if !strings.Contains(rec.msg, "the impossible") || !strings.Contains(rec.msg, "still no") {
			t.Errorf("failure %q, want one naming what was awaited and the last error", rec.msg)
		}
	})
}

// fatalRecorder keeps a Fatalf message instead of ending the test.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (r *fatalRecorder) Fatalf(format string, args ...any) { r.msg = fmt.Sprintf(format, args...) }
