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
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bidding-platform/infrastructure/internal/probe"
	"github.com/bidding-platform/shared/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// TestComposeEnvironmentRuns starts the three services as docker-compose
// configures them and waits until each answers /health and /ready. A value
// the services reject fails here instead of as a restart loop.
func TestComposeEnvironmentRuns(t *testing.T) {
	f, _ := loadCompose(t)
	env := map[string]map[string]string{}
	for svc := range dockerServices {
		env[svc] = map[string]string{}
		for k, v := range f.Services[svc].Environment {
			env[svc][k] = fmt.Sprint(v)
		}
	}
	runStack(t, env)
}

// TestECSEnvironmentRuns does the same with the environment the ECS task
// definitions set (their literal values and variable defaults; the addresses
// of AWS resources are replaced like the compose host names).
func TestECSEnvironmentRuns(t *testing.T) {
	m := loadTerraform(t)
	env := map[string]map[string]string{}
	for svc, local := range map[string]string{
		"api-gateway":       "gateway_environment",
		"broadcast-service": "broadcast_environment",
		"archival-worker":   "archival_environment",
	} {
		env[svc] = m.literalEnv(t, local)
		t.Logf("%s ECS environment (literal part): %v", svc, env[svc])
	}
	if len(env["api-gateway"]) < 5 {
		t.Fatalf("only %v of the gateway's ECS environment evaluated", env["api-gateway"])
	}
	runStack(t, env)
}

// runStack builds the three services with the images' flags, starts them with
// env (per service) against real Redis, NATS and PostgreSQL on free ports, and
// checks they become healthy and ready, then stop cleanly on SIGTERM. The
// listen address, log format and dependency addresses are overridden; every
// other value is used as given.
func runStack(t *testing.T, env map[string]map[string]string) {
	if testing.Short() {
		t.Skip("builds and runs the services; skipped with -short")
	}
	root := repoRoot(t)
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

	redisAddr := redisFor(t, env)
	natsURL := natsFor(t, env)
	pgURL := testenv.PostgresDB(t)

	bin := t.TempDir()
	type running struct {
		svc, addr string
		cmd       *exec.Cmd
		done      chan error
	}
	var procs []*running
	for _, svc := range []string{"api-gateway", "archival-worker", "broadcast-service"} {
		build := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", filepath.Join(bin, svc), "./cmd")
		build.Dir = filepath.Join(root, svc)
		build.Env = append(os.Environ(), "GOWORK=off", "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v\n%s", svc, err, out)
		}

		addr := freeAddr(t)
		vars := map[string]string{}
		for k, v := range env[svc] {
			vars[k] = v
		}
		// Addresses are set for every service that reads them (README), so
		// the ECS environment, whose addresses come from AWS resources, runs too.
		for _, k := range c.env[svc] {
			switch k {
			case "SERVER_ADDR", "HTTP_ADDR", "POSTGRES_URL", "REDIS_ADDR", "NATS_URL":
				vars[k] = ""
			}
		}
		for k := range vars {
			switch k {
			case "SERVER_ADDR", "HTTP_ADDR":
				vars[k] = addr
			case "POSTGRES_URL":
				vars[k] = pgURL
			case "REDIS_ADDR":
				vars[k] = redisAddr
			case "NATS_URL":
				vars[k] = natsURL
			// The test servers speak plain TCP and have no users: MemoryDB's
			// TLS and ACL user are what cannot be reproduced here.
			case "REDIS_TLS":
				vars[k] = "false"
			case "REDIS_USERNAME", "REDIS_PASSWORD", "REDIS_TLS_CA_FILE":
				vars[k] = ""
			case "LOG_FORMAT":
				vars[k] = "text" // readable in a failing test's output
			}
		}
		names := make([]string, 0, len(vars))
		for k := range vars {
			names = append(names, k)
		}
		sort.Strings(names)
		cmdEnv := os.Environ()
		for _, k := range names {
			cmdEnv = append(cmdEnv, k+"="+vars[k])
		}

		logs := &lineLog{t: t, prefix: svc}
		cmd := exec.Command(filepath.Join(bin, svc))
		cmd.Env, cmd.Stdout, cmd.Stderr = cmdEnv, logs, logs
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
				t.Fatalf("%s with %v: %s: %v", r.svc, env[r.svc], url, err)
			}
		}
	}

	// docker-compose stop and ECS both send SIGTERM, then kill after 30s.
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
			t.Errorf("%s still running 30s after SIGTERM (it would be killed)", r.svc)
		}
	}
}

// redisFor starts the Redis the gateway's environment asks for: a Redis
// Cluster for REDIS_CLUSTER=true (MemoryDB always is one), else one server.
// It returns the REDIS_ADDR to use.
func redisFor(t *testing.T, env map[string]map[string]string) string {
	t.Helper()
	if env["api-gateway"]["REDIS_CLUSTER"] == "true" {
		return strings.Join(testenv.Cluster(t).Addrs(), ",")
	}
	return testenv.Redis(t).Addr()
}

// natsFor starts the NATS the environment asks for: a JetStream cluster with
// as many nodes as the largest NATS_STREAM_REPLICAS, so the services create
// their streams with the replicas they are told to, else one server. It
// returns the NATS_URL to use.
func natsFor(t *testing.T, env map[string]map[string]string) string {
	t.Helper()
	replicas := 1
	for svc, vars := range env {
		raw, ok := vars["NATS_STREAM_REPLICAS"]
		if !ok {
			continue
		}
		n, err := strconv.Atoi(raw)
		if err != nil || n < 1 {
			t.Fatalf("%s: NATS_STREAM_REPLICAS=%q is not a replica count", svc, raw)
		}
		replicas = max(replicas, n)
	}
	if replicas == 1 {
		return testenv.NATS(t).URL()
	}
	return natsCluster(t, replicas)
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
