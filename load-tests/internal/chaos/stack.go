package chaos

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/bidding-platform/shared/testenv"
)

// stack is the whole system on free loopback ports: Redis on disk before
// every answer, a three-node JetStream cluster holding the stream on three
// replicas, PostgreSQL, two gateways, two broadcast nodes and one archival
// worker, each service a process built from this repository.
type stack struct {
	redis      *testenv.RedisServer
	nats       *testenv.NATSCluster
	pg         *testenv.PostgresServer
	archiveURL string
	gateways   []*service
	broadcasts []*service
	archiver   *service
}

// services the stack runs, by folder of the repository.
const (
	gatewaySvc   = "api-gateway"
	broadcastSvc = "broadcast-service"
	archiverSvc  = "archival-worker"
)

func startStack(ctx context.Context, tb testing.TB, cfg Config, bins map[string]string, logDir string) *stack {
	tb.Helper()
	s := &stack{redis: testenv.DurableRedis(tb), nats: testenv.JetStreamCluster(tb), pg: testenv.Postgres(tb)}
	s.archiveURL = s.pg.CreateDB(tb)
	common := []string{"LOG_FORMAT=text", "LOG_LEVEL=warn", "NATS_URL=" + s.nats.URLs(), "NATS_STREAM_REPLICAS=3"}

	// The archiver first: it migrates the schema the gateways read.
	// A killed worker's unacknowledged batch comes back after ACK_WAIT;
	// 5 s instead of 30 keeps the wait for the archive short, and a batch
	// redelivered while still being written is skipped by event id.
	s.archiver = newService(tb, "archiver", bins[archiverSvc], logDir, "HTTP_ADDR", append(common,
		"POSTGRES_URL="+s.archiveURL, "BATCH_WAIT=50ms", "ACK_WAIT=5s"))
	// The bidders send no bearer tokens: authentication is not what the
	// faults test, so the gateways and broadcast nodes run with it off.
	for i := range 2 {
		s.gateways = append(s.gateways, newService(tb, fmt.Sprintf("gateway-%d", i+1), bins[gatewaySvc], logDir, "SERVER_ADDR", append(common,
			"REDIS_ADDR="+s.redis.Addr(), "POSTGRES_URL="+s.archiveURL, "AUTO_CREATE_ITEMS=true", "AUTH_DISABLED=true",
			"RATE_LIMIT_PER_USER=0", "RATE_LIMIT_PER_IP=0")))
	}
	for i := range 2 {
		s.broadcasts = append(s.broadcasts, newService(tb, fmt.Sprintf("broadcast-%d", i+1), bins[broadcastSvc], logDir, "SERVER_ADDR", append(common, "AUTH_DISABLED=true")))
	}
	for _, svc := range s.all() {
		if err := svc.start(ctx, cfg.Deadline); err != nil {
			tb.Fatalf("%v", err)
		}
	}
	for _, svc := range s.all() {
		if err := waitReady(ctx, cfg.Deadline, svc); err != nil {
			tb.Fatalf("%v", err)
		}
	}
	return s
}

func (s *stack) all() []*service {
	return append(append([]*service{s.archiver}, s.gateways...), s.broadcasts...)
}

// logTails is the end of every service's log, for a failure report.
func (s *stack) logTails() string {
	var b strings.Builder
	for _, svc := range s.all() {
		fmt.Fprintf(&b, "--- %s\n%s\n", svc.name, svc.logTail(1500))
	}
	return b.String()
}

// buildServices builds the three services from the repository at root into
// dir. A service without a main package yet is left out.
func buildServices(tb testing.TB, root, dir string) (map[string]string, error) {
	tb.Helper()
	bins := map[string]string{}
	for _, name := range []string{gatewaySvc, broadcastSvc, archiverSvc} {
		src := filepath.Join(root, name)
		if _, err := os.Stat(filepath.Join(src, "cmd", "main.go")); err != nil {
			return nil, fmt.Errorf("%s/cmd/main.go: %w", name, err)
		}
		bin := filepath.Join(dir, name)
		cmd := exec.Command("go", "build", "-o", bin, "./cmd")
		cmd.Dir = src
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("build %s: %w\n%s", name, err, out)
		}
		bins[name] = bin
	}
	return bins, nil
}

// findRoot is the folder above dir that holds go.work: the repository.
func findRoot(dir string) (string, error) {
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.work")); err == nil {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no go.work above %s", dir)
		}
	}
}

// service is one service process that can be killed and started again on
// the same address, as an orchestrator restarts a crashed task.
type service struct {
	name    string
	addr    string // host:port of its HTTP server
	bin     string
	env     []string
	logPath string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	// down is set while the service is being killed and restarted, so
	// that clients send elsewhere meanwhile, as a load balancer would.
	down atomic.Bool
	// killed is when it was last killed.
	killed time.Time
}

// newService prepares a service on a free port, passed in the variable
// addrVar; the stack stops it when tb ends.
func newService(tb testing.TB, name, bin, logDir, addrVar string, env []string) *service {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("free port for %s: %v", name, err)
	}
	addr := ln.Addr().String()
	ln.Close()
	s := &service{name: name, addr: addr, bin: bin, logPath: filepath.Join(logDir, name+".log"),
		env: append(append([]string{}, env...), addrVar+"="+addr)}
	tb.Cleanup(s.stop)
	return s
}

func (s *service) url() string { return "http://" + s.addr }

// start runs the process and waits until it answers /health.
func (s *service) start(ctx context.Context, timeout time.Duration) error {
	logFile, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open %s log: %w", s.name, err)
	}
	fmt.Fprintf(logFile, "=== %s start %s\n", time.Now().Format(time.RFC3339Nano), s.name)
	cmd := exec.Command(s.bin)
	cmd.Env = append(os.Environ(), s.env...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Its own process group, so a kill reaches all of it; and it dies
	// with the suite.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return fmt.Errorf("start %s: %w", s.name, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logFile.Close()
		close(done)
	}()
	s.mu.Lock()
	s.cmd, s.done = cmd, done
	s.mu.Unlock()
	err = waitFor(ctx, timeout, func() error {
		select {
		case <-done:
			return fmt.Errorf("%s exited:\n%s", s.name, s.logTail(2000))
		default:
		}
		return get(s.url()+"/health", http.StatusOK)
	})
	if err != nil {
		return fmt.Errorf("%s on %s not healthy: %w", s.name, s.addr, err)
	}
	return nil
}

// kill ends the process with SIGKILL, as a crash would.
func (s *service) kill() { s.signal(syscall.SIGKILL, 10*time.Second) }

// stop asks the process to shut down and kills it if it does not.
func (s *service) stop() { s.signal(syscall.SIGTERM, 15*time.Second) }

func (s *service) signal(sig syscall.Signal, timeout time.Duration) {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd, s.done = nil, nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = syscall.Kill(-cmd.Process.Pid, sig)
	select {
	case <-done:
	case <-time.After(timeout):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
}

func (s *service) logTail(n int) string {
	b, err := os.ReadFile(s.logPath)
	if err != nil {
		return ""
	}
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return strings.TrimSpace(string(b))
}

// waitReady waits until every service answers /ready with 200.
func waitReady(ctx context.Context, timeout time.Duration, svcs ...*service) error {
	for _, s := range svcs {
		if err := waitFor(ctx, timeout, func() error { return get(s.url()+"/ready", http.StatusOK) }); err != nil {
			return fmt.Errorf("%s not ready: %w", s.name, err)
		}
	}
	return nil
}

var probeClient = &http.Client{Timeout: 5 * time.Second}

func get(url string, want int) error {
	resp, err := probeClient.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != want {
		return fmt.Errorf("GET %s: %d, want %d", url, resp.StatusCode, want)
	}
	return nil
}

// waitFor polls cond until it returns nil, timeout passes or ctx ends.
// Unlike testenv.WaitFor it returns the error, so that a fault that does
// not heal is reported with everything else instead of ending the run.
func waitFor(ctx context.Context, timeout time.Duration, cond func() error) error {
	deadline := time.Now().Add(timeout)
	interval := 5 * time.Millisecond
	for {
		err := cond()
		if err == nil {
			return nil
		}
		if !time.Now().Before(deadline) {
			return fmt.Errorf("after %v: %w", timeout, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (waiting on: %w)", ctx.Err(), err)
		case <-time.After(min(interval, time.Until(deadline))):
		}
		interval = min(2*interval, 100*time.Millisecond)
	}
}
