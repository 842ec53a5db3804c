package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// NATSServer is a nats-server child process with JetStream on a file store
// that survives Kill and Restart, as a real deployment's volume would.
type NATSServer struct {
	Port int
	// User and Password are what Conn, JetStream and the readiness probe
	// connect as; empty for a server without users.
	User, Password string
	p              *process
	tb             testing.TB
}

// NATSOptions change the server NATSWith starts.
type NATSOptions struct {
	// Config is nats-server configuration text, such as the deployment's
	// users and their permissions. The listen address, port and JetStream
	// store come from the command line, which takes precedence.
	Config string
	// User and Password are the identity of NATSServer.User and Password.
	// It must be allowed $JS.API.INFO, which the readiness probe asks, and
	// to subscribe to its inboxes, _INBOX.<user>.>.
	User, Password string
}

// NATS starts a fresh NATS server with JetStream for this test.
func NATS(tb testing.TB) *NATSServer {
	tb.Helper()
	return NATSWith(tb, NATSOptions{})
}

// NATSWith starts a fresh NATS server with JetStream and the given
// configuration for this test.
func NATSWith(tb testing.TB, opts NATSOptions) *NATSServer {
	tb.Helper()
	bin, err := findBinary("nats-server", "/usr/bin/nats-server", "/usr/local/bin/nats-server")
	if err != nil {
		tb.Fatalf("testenv: %v", err)
	}
	port, err := freePort()
	if err != nil {
		tb.Fatalf("testenv: %v", err)
	}
	dir := tb.TempDir()
	// Always a configuration file, empty or not, so that Reconfigure can
	// change it for the next start.
	args := []string{"-a", "127.0.0.1", "-p", strconv.Itoa(port), "-js", "-sd", filepath.Join(dir, "jetstream"), "-c", filepath.Join(dir, "nats.conf")}
	n := &NATSServer{
		Port: port,
		tb:   tb,
		p: &process{
			name: "nats-" + strconv.Itoa(port), bin: bin, dir: dir, stopSignal: syscall.SIGTERM,
			args: args,
		},
	}
	n.Reconfigure(opts)
	if err := n.start(); err != nil {
		tb.Fatalf("testenv: %v", err)
	}
	tb.Cleanup(n.p.kill)
	return n
}

// URL is the client URL, nats://127.0.0.1:port.
func (n *NATSServer) URL() string { return fmt.Sprintf("nats://127.0.0.1:%d", n.Port) }

func (n *NATSServer) start() error {
	if err := n.p.start(); err != nil {
		return err
	}
	if err := waitFor(15*time.Second, n.ready); err != nil {
		n.p.kill()
		return fmt.Errorf("nats on %d: %w\n%s", n.Port, err, n.p.logTail())
	}
	return nil
}

// ready means clients can connect and JetStream answers, which after a
// restart includes having recovered its streams from disk.
func (n *NATSServer) ready() error {
	if !n.p.running() {
		return errNotRunning
	}
	nc, err := nats.Connect(n.URL(), nats.Timeout(time.Second), nats.NoReconnect(), n.auth())
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, err = js.AccountInfo(ctx)
	return err
}

// Reconfigure replaces the server's configuration and the identity Conn,
// JetStream and the readiness probe use; the server reads it at its next
// Start or Restart, as a deployment's changed users and passwords.
func (n *NATSServer) Reconfigure(opts NATSOptions) {
	n.tb.Helper()
	if err := os.WriteFile(filepath.Join(n.p.dir, "nats.conf"), []byte(opts.Config), 0o600); err != nil {
		n.tb.Fatalf("testenv: %v", err)
	}
	n.User, n.Password = opts.User, opts.Password
}

// auth is the option that connects as User, if there is one, with the
// inboxes the services' users are allowed: _INBOX.<user> (natsconn.Auth).
func (n *NATSServer) auth() nats.Option {
	return func(o *nats.Options) error {
		if n.User == "" {
			return nil
		}
		o.User, o.Password, o.InboxPrefix = n.User, n.Password, "_INBOX."+n.User
		return nil
	}
}

// Kill ends the server with SIGKILL. JetStream data on disk stays.
func (n *NATSServer) Kill() { n.p.kill() }

// Stop shuts the server down cleanly.
func (n *NATSServer) Stop() { n.p.stop() }

// Pause freezes the server (SIGSTOP).
func (n *NATSServer) Pause() { n.p.signal(syscall.SIGSTOP, 0) }

// Resume undoes Pause.
func (n *NATSServer) Resume() { n.p.signal(syscall.SIGCONT, 0) }

// Start starts a stopped or killed server again on the same port and store.
func (n *NATSServer) Start() {
	n.tb.Helper()
	if err := n.start(); err != nil {
		n.tb.Fatalf("testenv: %v", err)
	}
}

// Restart kills the server and starts it again.
func (n *NATSServer) Restart() {
	n.tb.Helper()
	n.Kill()
	n.Start()
}

// Conn connects a client that is closed at test end.
func (n *NATSServer) Conn() *nats.Conn {
	n.tb.Helper()
	nc, err := nats.Connect(n.URL(), n.auth())
	if err != nil {
		n.tb.Fatalf("testenv: connect nats: %v", err)
	}
	n.tb.Cleanup(nc.Close)
	return nc
}

// JetStream returns a JetStream context on a new connection.
func (n *NATSServer) JetStream() jetstream.JetStream {
	n.tb.Helper()
	js, err := jetstream.New(n.Conn())
	if err != nil {
		n.tb.Fatalf("testenv: jetstream: %v", err)
	}
	return js
}

// shippedUser is one user entry of nats-users.conf and the configuration
// variable its password is read from.
var shippedUser = regexp.MustCompile(`user:\s*"([A-Za-z0-9_-]+)"\s*\n\s*password:\s*\$([A-Z0-9_]+)`)

// ShippedNATSUsers returns the NATS users and permissions Docker Compose and
// Terraform ship (infrastructure/docker/nats-users.conf, found from the
// repository's go.work) as configuration for NATSWith, with a random
// password defined for each user, and those passwords by user.
func ShippedNATSUsers(tb testing.TB) (config string, passwords map[string]string) {
	tb.Helper()
	dir, err := os.Getwd()
	if err != nil {
		tb.Fatalf("testenv: %v", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			tb.Fatal("testenv: no go.work above the test's directory")
		}
		dir = parent
	}
	users, err := os.ReadFile(filepath.Join(dir, "infrastructure", "docker", "nats-users.conf"))
	if err != nil {
		tb.Fatalf("testenv: %v", err)
	}
	passwords = map[string]string{}
	var b strings.Builder
	for _, m := range shippedUser.FindAllStringSubmatch(string(users), -1) {
		secret := make([]byte, 16)
		_, _ = rand.Read(secret)
		passwords[m[1]] = hex.EncodeToString(secret)
		fmt.Fprintf(&b, "%s: %q\n", m[2], passwords[m[1]])
	}
	if len(passwords) == 0 {
		tb.Fatal("testenv: no user with a $VARIABLE password in nats-users.conf")
	}
	b.Write(users)
	return b.String(), passwords
}

// NATSWithShippedUsers starts NATS with ShippedNATSUsers; the server's
// Conn and JetStream connect as the gateway, the user that manages the
// stream.
func NATSWithShippedUsers(tb testing.TB) (*NATSServer, map[string]string) {
	tb.Helper()
	conf, passwords := ShippedNATSUsers(tb)
	return NATSWith(tb, NATSOptions{Config: conf, User: "gateway", Password: passwords["gateway"]}), passwords
}
