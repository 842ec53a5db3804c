package check

import (
	"bufio"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/bidding-platform/infrastructure/internal/probe"
	"github.com/bidding-platform/shared/stream"
	"github.com/bidding-platform/shared/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// TestComposeEnvironmentRuns starts the three services as docker-compose
// configures them and waits until each answers /health and /ready. A value
// the services reject fails here instead of as a restart loop.
func TestComposeEnvironmentRuns(t *testing.T) {
	f, _ := loadCompose(t)
	// The secrets as make run generates them, put in as Compose does.
	secrets := generateComposeEnv(t, filepath.Join(t.TempDir(), ".env"))
	env := map[string]map[string]string{}
	for svc := range dockerServices {
		env[svc] = map[string]string{}
		for k, v := range f.Services[svc].Environment {
			env[svc][k] = interpolate(t, fmt.Sprint(v), secrets)
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
	// Without a key set, the HS256 key the gateway and the broadcast
	// service (personal channels) share is a secret (generated into Secrets
	// Manager); one random key stands in for it. The literal evaluation
	// keeps AUTH_JWKS_URL's key, empty, from the conditional merge that
	// leaves it out on AWS; empty is unset to the services too.
	key := randomSecret(t) + randomSecret(t)
	for svc, secrets := range map[string]string{"api-gateway": "gateway_secrets", "broadcast-service": "broadcast_secrets"} {
		if env[svc]["AUTH_JWKS_URL"] != "" {
			continue
		}
		if !slices.Contains(m.envKeys(t, secrets), "AUTH_JWT_SECRET") {
			t.Fatalf("the %s task gets neither AUTH_JWKS_URL nor AUTH_JWT_SECRET", svc)
		}
		env[svc]["AUTH_JWT_SECRET"] = key
	}
	runStack(t, env)
}

// runStack builds the three services with the images' flags, starts them with
// env (per service) against real Redis, NATS and PostgreSQL on free ports, and
// checks they become healthy and ready, that each did its part in NATS as
// its own user (the gateway created the stream, the worker its consumer),
// then stop cleanly on SIGTERM. NATS runs with the shipped users
// (nats-users.conf), whose passwords are given to the services that name
// them in NATS_USER. The listen address, log format, dependency addresses
// (the gateway's, GATEWAY_INTERNAL_URL, too) and NATS_PASSWORD are
// overridden; every other value is used as given.
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
	natsURL, natsPasswords := natsFor(t, env)
	pgURL := testenv.PostgresDB(t)

	bin := t.TempDir()
	type running struct {
		svc, addr string
		cmd       *exec.Cmd
		// done is closed once the process has exited, with err its
		// outcome: closing rather than sending lets every waiter see it,
		// the health probe, the shutdown check and the cleanup alike.
		done chan error
		err  error
	}
	var procs []*running
	// The gateway starts first, so the broadcast service's calls to it
	// (GATEWAY_INTERNAL_URL) can go to its address here.
	var gatewayAddr string
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
			case "SERVER_ADDR", "HTTP_ADDR", "POSTGRES_URL", "REDIS_ADDR", "NATS_URL", "GATEWAY_INTERNAL_URL":
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
			case "GATEWAY_INTERNAL_URL":
				vars[k] = "http://" + gatewayAddr
			// The test servers speak plain TCP and have no users: MemoryDB's
			// TLS and ACL user are what cannot be reproduced here.
			case "REDIS_TLS":
				vars[k] = "false"
			case "REDIS_USERNAME", "REDIS_PASSWORD", "REDIS_TLS_CA_FILE":
				vars[k] = ""
			case "NATS_USER":
				pw, ok := natsPasswords[vars[k]]
				if !ok {
					t.Fatalf("%s: NATS_USER=%q is not a user of nats-users.conf", svc, vars[k])
				}
				// On AWS the password is a secret, not in the literal
				// environment.
				vars["NATS_PASSWORD"] = pw
			case "LOG_FORMAT":
				vars[k] = "text" // readable in a failing test's output
			}
		}
		if _, ok := vars["NATS_USER"]; !ok {
			t.Errorf("%s connects to NATS without a user (NATS_USER)", svc)
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
		r := &running{svc: svc, addr: addr, cmd: cmd, done: make(chan error)}
		go func() {
			r.err = cmd.Wait()
			close(r.done)
		}()
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
			<-r.done
		})
		procs = append(procs, r)
		if svc == "api-gateway" {
			gatewayAddr = addr
		}
	}

	for _, r := range procs {
		for _, path := range []string{"/health", "/ready"} {
			url := "http://" + r.addr + path
			if err := waitOK(url, r.done, 60*time.Second); err != nil {
				t.Fatalf("%s with %v: %s: %v", r.svc, env[r.svc], url, err)
			}
		}
	}

	checkNATSParts(t, natsURL, natsPasswords["archiver"], env["api-gateway"]["NATS_STREAM_REPLICAS"])
	if key := env["broadcast-service"]["AUTH_JWT_SECRET"]; key != "" {
		checkPersonalChannel(t, gatewayAddr, procs[len(procs)-1].addr, key)
	}

	// docker-compose stop and ECS both send SIGTERM, then kill after 30s.
	for _, r := range procs {
		if err := r.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatalf("signal %s: %v", r.svc, err)
		}
	}
	for _, r := range procs {
		select {
		case <-r.done:
			if r.err != nil {
				t.Errorf("%s after SIGTERM: %v, want a clean exit", r.svc, r.err)
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

// natsFor starts the NATS the environment asks for, with the shipped users:
// a JetStream cluster with as many nodes as the largest
// NATS_STREAM_REPLICAS, so the gateway creates the stream with the replicas
// it is told to, else one server. It returns the NATS_URL to use and each
// user's password.
func natsFor(t *testing.T, env map[string]map[string]string) (string, map[string]string) {
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
	conf, passwords := shippedUsersConf(t)
	if replicas == 1 {
		return testenv.NATSWith(t, testenv.NATSOptions{Config: conf, User: "gateway", Password: passwords["gateway"]}).URL(), passwords
	}
	return natsCluster(t, replicas, conf), passwords
}

// checkNATSParts waits for what the services do in NATS at startup, each as
// its own user: the gateway creates the stream with its replica count, and
// the archival worker creates its durable consumer. It looks as the worker,
// whose user may read both.
func checkNATSParts(t *testing.T, url, archiverPassword, replicas string) {
	t.Helper()
	nc, err := nats.Connect(url, nats.UserInfo("archiver", archiverPassword), nats.CustomInboxPrefix("_INBOX.archiver"))
	if err != nil {
		t.Fatalf("connect as archiver: %v", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, time.Minute, "the stream and the archive's consumer", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s, err := js.Stream(ctx, stream.Name)
		if err != nil {
			return err
		}
		if got := fmt.Sprint(s.CachedInfo().Config.Replicas); replicas != "" && got != replicas {
			return fmt.Errorf("stream has %s replicas, want the gateway's %s", got, replicas)
		}
		_, err = s.Consumer(ctx, archiverDurable)
		return err
	})
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

// checkPersonalChannel proves the two services check tokens alike: a token
// signed with the broadcast service's HS256 key reads the user's items from
// the gateway, and opens the user's personal channel, whose first message
// is ready; without a token the channel is refused.
func checkPersonalChannel(t *testing.T, gatewayAddr, broadcastAddr, key string) {
	t.Helper()
	now := time.Now().Unix()
	claims, err := json.Marshal(map[string]any{"sub": "alice", "iat": now, "exp": now + 600})
	if err != nil {
		t.Fatal(err)
	}
	signed := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + base64.RawURLEncoding.EncodeToString(claims)
	mac := hmac.New(sha256.New, []byte(key))
	mac.Write([]byte(signed))
	token := signed + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))

	req, err := http.NewRequest(http.MethodGet, "http://"+gatewayAddr+"/api/v1/users/alice/items?role=bidding", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("gateway: the user's items with the token: %s, want 200", resp.Status)
	}

	if status, _ := openPersonalChannel(t, broadcastAddr, ""); status != http.StatusUnauthorized {
		t.Errorf("broadcast-service: personal channel without a token: %d, want 401", status)
	}
	status, first := openPersonalChannel(t, broadcastAddr, token)
	if status != http.StatusSwitchingProtocols {
		t.Fatalf("broadcast-service: personal channel with the gateway's token: %d, want 101", status)
	}
	var msg struct {
		Type   string `json:"type"`
		UserID string `json:"user_id"`
	}
	if err := json.Unmarshal(first, &msg); err != nil || msg.Type != "ready" || msg.UserID != "alice" {
		t.Errorf("personal channel's first message %s (%v), want ready for alice", first, err)
	}
}

// openPersonalChannel asks for alice's personal channel with token (none
// when empty) and returns the answer's status and, after an upgrade, the
// first text message. The handshake and the one unmasked frame a server
// sends are written out here: this module has no WebSocket client.
func openPersonalChannel(t *testing.T, addr, token string) (int, []byte) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	target := "http://" + addr + "/ws/users/alice"
	if token != "" {
		target += "?access_token=" + token
	}
	req, err := http.NewRequest(http.MethodGet, target, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Sec-WebSocket-Version", "13")
	req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	if err := req.Write(conn); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		return resp.StatusCode, nil
	}
	var head [2]byte
	if _, err := io.ReadFull(br, head[:]); err != nil {
		t.Fatalf("personal channel: no first message: %v", err)
	}
	if head[0] != 0x81 || head[1]&0x80 != 0 {
		t.Fatalf("personal channel: first frame header %x, want one unmasked text frame", head)
	}
	n := uint64(head[1] & 0x7f)
	switch n {
	case 126:
		var ext [2]byte
		if _, err := io.ReadFull(br, ext[:]); err != nil {
			t.Fatal(err)
		}
		n = uint64(binary.BigEndian.Uint16(ext[:]))
	case 127:
		t.Fatal("personal channel: first message over 64 KiB")
	}
	payload := make([]byte, n)
	if _, err := io.ReadFull(br, payload); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, payload
}
