package check

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bidding-platform/infrastructure/internal/probe"
	"github.com/bidding-platform/shared/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// TestComposeEnvironmentRuns starts the three services as docker-compose
// would configure them (its environment, with the compose host names swapped
// for real Redis, NATS and PostgreSQL servers on free ports), and waits until
// each answers /health and /ready. A value the services reject, or an address
// that points at the wrong server, fails here instead of as a restart loop.
func TestComposeEnvironmentRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the services; skipped with -short")
	}
	root := repoRoot(t)
	f, _ := loadCompose(t)
	c := readContract(t)

	var missing []string
	for svc := range dockerServices {
		if _, err := os.Stat(filepath.Join(root, svc, "cmd", "main.go")); err != nil {
			missing = append(missing, svc)
		}
	}
	if len(missing) > 0 {
		t.Skipf("%v: cmd/main.go does not exist yet", missing)
	}

	redis := testenv.Redis(t)
	nats := testenv.NATS(t)
	pgURL := testenv.PostgresDB(t)
	swap := map[string]string{
		"redis:6379":       redis.Addr(),
		"nats://nats:4222": nats.URL(),
	}

	bin := t.TempDir()
	type running struct {
		svc, addr string
		cmd       *exec.Cmd
		done      chan error
	}
	var procs []*running
	// Gateway first: the archival worker and broadcast service do not need it,
	// but the order keeps logs readable.
	for _, svc := range []string{"api-gateway", "archival-worker", "broadcast-service"} {
		build := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", filepath.Join(bin, svc), "./cmd")
		build.Dir = filepath.Join(root, svc)
		build.Env = append(os.Environ(), "GOWORK=off", "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v\n%s", svc, err, out)
		}

		addr := freeAddr(t)
		env := os.Environ()
		var names []string
		for k := range f.Services[svc].Environment {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			v := fmt.Sprint(f.Services[svc].Environment[k])
			switch k {
			case "SERVER_ADDR", "HTTP_ADDR":
				v = addr
			case "POSTGRES_URL":
				v = pgURL
			case "LOG_FORMAT":
				v = "text" // readable in a failing test's output
			default:
				for from, to := range swap {
					v = strings.ReplaceAll(v, from, to)
				}
			}
			env = append(env, k+"="+v)
		}
		logs := &lineLog{t: t, prefix: svc}
		cmd := exec.Command(filepath.Join(bin, svc))
		cmd.Env, cmd.Stdout, cmd.Stderr = env, logs, logs
		if err := cmd.Start(); err != nil {
			t.Fatalf("start %s: %v", svc, err)
		}
		r := &running{svc: svc, addr: addr, cmd: cmd, done: make(chan error, 1)}
		go func() { r.done <- cmd.Wait() }()
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
			<-r.done
		})
		procs = append(procs, r)
	}

	for _, r := range procs {
		for _, path := range []string{"/health", "/ready"} {
			url := "http://" + r.addr + path
			if err := waitOK(url, r.done, 60*time.Second); err != nil {
				t.Fatalf("%s (compose environment, %v): %s: %v", r.svc, c.env[r.svc], url, err)
			}
		}
	}

	// docker-compose stop sends SIGTERM and waits stop_grace_period (30s).
	for _, r := range procs {
		if err := r.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatalf("signal %s: %v", r.svc, err)
		}
	}
	for _, r := range procs {
		select {
		case err := <-r.done:
			r.done <- err // for the cleanup
			if err != nil {
				t.Errorf("%s after SIGTERM: %v, want a clean exit", r.svc, err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("%s still running 30s after SIGTERM (compose would kill it)", r.svc)
		}
	}
}

// waitOK polls url until it answers 2xx, the process exits, or the deadline.
func waitOK(url string, exited <-chan error, within time.Duration) error {
	deadline := time.Now().Add(within)
	client := &http.Client{}
	var last error
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return fmt.Errorf("process exited: %v (last probe: %v)", err, last)
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		last = probe.Check(ctx, client, url)
		cancel()
		if last == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond) // poll interval, not a wait for an outcome
	}
	return fmt.Errorf("not OK within %s: %w", within, last)
}

// freeAddr returns a loopback address no one listens on right now.
func freeAddr(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// lineLog sends a child's output to the test log, one line per entry.
type lineLog struct {
	t      *testing.T
	prefix string
	buf    []byte
}

func (l *lineLog) Write(p []byte) (int, error) {
	l.buf = append(l.buf, p...)
	for {
		i := strings.IndexByte(string(l.buf), '\n')
		if i < 0 {
			return len(p), nil
		}
		l.t.Logf("%s: %s", l.prefix, l.buf[:i])
		l.buf = l.buf[i+1:]
	}
}
