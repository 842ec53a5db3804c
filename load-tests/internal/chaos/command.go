package chaos

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"
	"testing"
)

// Main runs the suite outside go test, for cmd/chaos: the test servers
// (shared/testenv) and the services are set up and torn down as a test
// would, with progress written to log. An error means the system could not
// be set up; what the faults broke is in the report.
func Main(ctx context.Context, cfg Config, log io.Writer) (rep *Report, err error) {
	tb := &commandTB{log: log}
	defer tb.cleanup()
	defer func() {
		if r := recover(); r != nil {
			f, ok := r.(fatal)
			if !ok {
				panic(r)
			}
			err = errors.New(string(f))
		}
	}()
	return Run(ctx, tb, cfg), nil
}

// fatal carries a Fatalf of the command's testing.TB up to Main.
type fatal string

// commandTB is the testing.TB that shared/testenv and Run need, for a
// command: Fatalf ends the run, Cleanup runs when Main returns. Run and
// testenv call it only from the goroutine that called Main.
type commandTB struct {
	testing.TB
	log io.Writer

	mu       sync.Mutex
	cleanups []func()
	failed   bool
}

func (t *commandTB) Helper()      {}
func (t *commandTB) Name() string { return "chaos" }

func (t *commandTB) Logf(format string, args ...any) {
	fmt.Fprintf(t.log, format+"\n", args...)
}

func (t *commandTB) Log(args ...any) { fmt.Fprintln(t.log, args...) }

func (t *commandTB) Errorf(format string, args ...any) {
	t.mu.Lock()
	t.failed = true
	t.mu.Unlock()
	t.Logf(format, args...)
}

func (t *commandTB) Fatalf(format string, args ...any) { panic(fatal(fmt.Sprintf(format, args...))) }
func (t *commandTB) Fatal(args ...any)                 { panic(fatal(fmt.Sprint(args...))) }
func (t *commandTB) FailNow()                          { panic(fatal("failed")) }

func (t *commandTB) Failed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.failed
}

func (t *commandTB) Cleanup(f func()) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.cleanups = append(t.cleanups, f)
}

func (t *commandTB) TempDir() string {
	dir, err := os.MkdirTemp("", "chaos-")
	if err != nil {
		t.Fatalf("temp dir: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func (t *commandTB) Context() context.Context { return context.Background() }

// cleanup runs the cleanups last registered first, as testing does.
func (t *commandTB) cleanup() {
	t.mu.Lock()
	fs := slices.Clone(t.cleanups)
	t.cleanups = nil
	t.mu.Unlock()
	for _, f := range slices.Backward(fs) {
		f()
	}
}
