package smoke

import (
	"bytes"
	"context"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bidding-platform/load-tests/internal/auctiontest"
)

// python is Debian's interpreter, where python3-locust and
// python3-websockets live (the pyenv python on PATH has neither).
const python = "/usr/bin/python3"

var scripts = []string{"locustfile.py", "websocket_fanout_test.py", "run_experiment3.py"}

// loadTestsDir is the module root, where the scripts are.
func loadTestsDir(tb testing.TB) string {
	tb.Helper()
	dir, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		tb.Fatal(err)
	}
	return dir
}

func needPython(tb testing.TB, modules ...string) {
	tb.Helper()
	if _, err := os.Stat(python); err != nil {
		tb.Fatalf("%s is missing: install python3 (scripts/install-deps.sh)", python)
	}
	for _, m := range modules {
		if out, err := exec.Command(python, "-c", "import "+m).CombinedOutput(); err != nil {
			tb.Fatalf("python module %s is missing (apt-get install python3-%s): %v\n%s", m, m, err, out)
		}
	}
}

// runPython runs a script with a deadline and returns its combined output
// and exit code.
func runPython(t *testing.T, timeout time.Duration, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, python, args...)
	cmd.Dir = loadTestsDir(t)
	// Byte code goes to the test's folder, not next to the scripts.
	cmd.Env = append(os.Environ(), "PYTHONPYCACHEPREFIX="+t.TempDir(), "PYTHONUNBUFFERED=1")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("%v did not finish within %s:\n%s", args, timeout, out.String())
	}
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run %v: %v", args, err)
	}
	return out.String(), code
}

func TestPythonScriptsCompile(t *testing.T) {
	t.Parallel()
	needPython(t)
	for _, s := range scripts {
		t.Run(s, func(t *testing.T) {
			t.Parallel()
			out, code := runPython(t, time.Minute, "-m", "py_compile", s)
			if code != 0 {
				t.Errorf("py_compile %s: exit %d\n%s", s, code, out)
			}
		})
	}
}

func TestPythonScriptsHelpAndLoopbackGuard(t *testing.T) {
	t.Parallel()
	needPython(t, "websockets")
	for _, s := range []string{"websocket_fanout_test.py", "run_experiment3.py"} {
		t.Run(s, func(t *testing.T) {
			t.Parallel()
			out, code := runPython(t, time.Minute, s, "--help")
			if code != 0 || !strings.Contains(out, "usage:") {
				t.Errorf("%s --help: exit %d, want 0 and a usage text:\n%s", s, code, out)
			}
			out, code = runPython(t, time.Minute, s, "--gateway", "http://192.0.2.1:8080")
			if code != 2 || !strings.Contains(out, "loopback only") {
				t.Errorf("%s against a remote gateway: exit %d, want 2 and a loopback refusal:\n%s", s, code, out)
			}
		})
	}
}

func TestLocustScenarios(t *testing.T) {
	t.Parallel()
	needPython(t, "locust")
	for _, class := range []string{"ContendedItemBidder", "MixedWorkloadUser"} {
		t.Run(class, func(t *testing.T) {
			t.Parallel()
			fx := auctiontest.New()
			srv := httptest.NewServer(fx)
			defer srv.Close()
			out, code := runPython(t, 2*time.Minute, "-m", "locust", "-f", "locustfile.py", "--headless",
				"-H", srv.URL, "-u", "4", "-r", "4", "-t", "5s", "--only-summary", "--item-count", "3", class)
			if code != 0 {
				t.Fatalf("locust %s: exit %d, want 0 (no failed requests)\n%s", class, code, out)
			}
			c := fx.Counts()
			if c.Accepted == 0 {
				t.Errorf("locust %s: the fixture accepted no bid (requests %d)\n%s", class, c.Requests, out)
			}
			m := regexp.MustCompile(`bid answers: accepted=(\d+)`).FindStringSubmatch(out)
			if m == nil {
				t.Fatalf("locust %s: no bid answer summary in the output:\n%s", class, out)
			}
			// A bid in flight when the run ends is accepted by the fixture but
			// never counted by Locust, so the report may be short by the users'
			// last requests, never over.
			got, _ := strconv.Atoi(m[1])
			if got == 0 || got > c.Accepted || got < c.Accepted-4 {
				t.Errorf("locust %s reported %d accepted bids, the fixture accepted %d", class, got, c.Accepted)
			}
		})
	}
}

func TestContendedScriptMeasuresEvalsha(t *testing.T) {
	t.Parallel()
	needPython(t)
	for _, bin := range []string{"redis-server", "redis-cli", "redis-benchmark"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("%s is missing (scripts/install-deps.sh installs redis-server and redis-tools)", bin)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	results := t.TempDir()
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(loadTestsDir(t), "bench", "contended.sh"), "--redis-only")
	cmd.Env = append(os.Environ(), "EVALSHA_REQUESTS=2000", "EVALSHA_CLIENTS=10", "RESULTS_DIR="+results)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("contended.sh --redis-only: %v\n%s", err, out)
	}
	row := regexp.MustCompile(`\| redis-benchmark EVALSHA \(one-key Lua CAS\) \| ([\d,]+) \| 1\.00 \|`).FindSubmatch(out)
	if row == nil || string(row[1]) == "0" {
		t.Fatalf("no EVALSHA rate in the table:\n%s", out)
	}
	table, err := os.ReadFile(filepath.Join(results, "table.md"))
	if err != nil || !bytes.Contains(table, row[0]) {
		t.Errorf("table.md in RESULTS_DIR lacks the printed row (%v):\n%s", err, table)
	}
}
