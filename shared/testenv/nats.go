package testenv

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
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
	p    *process
	tb   testing.TB
}

// NATS starts a fresh NATS server with JetStream for this test.
func NATS(tb testing.TB) *NATSServer {
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
	n := &NATSServer{
		Port: port,
		tb:   tb,
		p: &process{
			name: "nats-" + strconv.Itoa(port), bin: bin, dir: dir, stopSignal: syscall.SIGTERM,
			args: []string{"-a", "127.0.0.1", "-p", strconv.Itoa(port), "-js", "-sd", filepath.Join(dir, "jetstream")},
		},
	}
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
	nc, err := nats.Connect(n.URL(), nats.Timeout(time.Second), nats.NoReconnect())
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
	nc, err := nats.Connect(n.URL())
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
