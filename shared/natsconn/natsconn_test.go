package natsconn_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/bidding-platform/shared/config"
	"github.com/bidding-platform/shared/natsconn"
	"github.com/bidding-platform/shared/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// TestStartsBeforeNATSAndRidesOutRestarts: a service may start first, and
// OnConnect runs for the first connection and again after a restart.
func TestStartsBeforeNATSAndRidesOutRestarts(t *testing.T) {
	t.Parallel()
	n := testenv.NATS(t)
	n.Kill()
	var logs testenv.LogBuffer
	var connects atomic.Int32
	nc, err := natsconn.Connect(context.Background(), natsconn.Config{
		URL: n.URL(), Name: "test", Log: slog.New(slog.NewTextHandler(&logs, nil)),
		ReconnectWait: 50 * time.Millisecond, OnConnect: func() { connects.Add(1) },
	})
	if err != nil {
		t.Fatalf("Connect with NATS down = %v, want a connection that keeps trying", err)
	}
	t.Cleanup(nc.Close)
	if nc.IsConnected() {
		t.Fatal("connected to a killed server")
	}
	n.Start()
	testenv.WaitFor(t, 10*time.Second, "the first connection", func() error { return callbacks(&connects, 1) })
	n.Restart()
	testenv.WaitFor(t, 10*time.Second, "the reconnection", func() error { return callbacks(&connects, 2) })
	for _, want := range []string{"nats connected", "nats disconnected", "nats reconnected"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("logs lack %q:\n%s", want, logs.String())
		}
	}
}

func callbacks(n *atomic.Int32, want int32) error {
	if got := n.Load(); got != want {
		return fmt.Errorf("OnConnect ran %d times, want %d", got, want)
	}
	return nil
}

// TestServerList: NATS_URL may name several servers; one that is down does
// not keep the client from the others.
func TestServerList(t *testing.T) {
	t.Parallel()
	n := testenv.NATS(t)
	dead := deadAddr(t)
	var url string
	env := config.FromMap(map[string]string{"NATS_URL": "nats://" + dead + " , " + n.URL()})
	natsconn.ReadURL(env, "NATS_URL", &url)
	if err := env.Err(); err != nil {
		t.Fatalf("ReadURL: %v", err)
	}
	nc, err := natsconn.Connect(context.Background(), natsconn.Config{URL: url, Name: "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	testenv.WaitFor(t, 10*time.Second, "a connection to the live server", func() error {
		if got := nc.ConnectedUrl(); got != n.URL() {
			return fmt.Errorf("connected to %q", got)
		}
		return nil
	})
}

// TestNoReconnectBuffer: with it, a publish while NATS is down fails at
// once; without it, the publish waits in nats.go's buffer.
func TestNoReconnectBuffer(t *testing.T) {
	t.Parallel()
	n := testenv.NATS(t)
	conn := func(noBuffer bool) *nats.Conn {
		nc, err := natsconn.Connect(context.Background(), natsconn.Config{URL: n.URL(), Name: "test", NoReconnectBuffer: noBuffer})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		return nc
	}
	unbuffered, buffered := conn(true), conn(false)
	n.Kill()
	testenv.WaitFor(t, 10*time.Second, "both clients to see NATS gone", func() error {
		if unbuffered.IsConnected() || buffered.IsConnected() {
			return errors.New("still connected")
		}
		return nil
	})
	if err := unbuffered.Publish("x", []byte("1")); !errors.Is(err, nats.ErrReconnectBufExceeded) {
		t.Errorf("publish without a buffer while down = %v, want %v", err, nats.ErrReconnectBufExceeded)
	}
	if err := buffered.Publish("x", []byte("1")); err != nil {
		t.Errorf("publish with a buffer while down = %v, want nil", err)
	}
}

// TestConnectHonoursContext: a server that accepts but never speaks holds
// the first attempt for the dial timeout; a done ctx does not wait for it.
func TestConnectHonoursContext(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	accepting := make(chan struct{})
	go func() {
		defer close(accepting)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-accepting
		for _, c := range conns {
			c.Close()
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	nc, err := natsconn.Connect(ctx, natsconn.Config{URL: "nats://" + ln.Addr().String(), Name: "test"})
	if !errors.Is(err, context.DeadlineExceeded) {
		if nc != nil {
			nc.Close()
		}
		t.Fatalf("Connect to a silent server = %v, want %v", err, context.DeadlineExceeded)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("Connect returned after %v, want soon after ctx's 100ms", took)
	}
}

// deadAddr is a loopback address nothing listens on.
func deadAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// usersConf has one user whose replies may only arrive in its own inboxes,
// as the deployment's users (infrastructure/docker/nats-users.conf).
const usersConf = `authorization {
  users = [
    {user: "svc", password: "right-password", permissions: {
      publish: {allow: ["$JS.API.INFO", "t.>"]}
      subscribe: {allow: ["_INBOX.svc.>", "t.>"]}
    }}
  ]
}`

// TestAuth: a service connects as its user, and its replies come back to
// its own inboxes, the only ones the server lets it read.
func TestAuth(t *testing.T) {
	t.Parallel()
	n := testenv.NATSWith(t, testenv.NATSOptions{Config: usersConf, User: "svc", Password: "right-password"})
	nc, err := natsconn.Connect(context.Background(), natsconn.Config{
		URL: n.URL(), Name: "test", Auth: natsconn.Auth{User: "svc", Password: "right-password"},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	testenv.WaitFor(t, 10*time.Second, "the connection", func() error {
		if !nc.IsConnected() {
			return fmt.Errorf("status %v", nc.Status())
		}
		return nil
	})
	if got := nc.NewInbox(); !strings.HasPrefix(got, "_INBOX.svc.") {
		t.Errorf("inbox %q, want one under _INBOX.svc.", got)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := js.AccountInfo(ctx); err != nil {
		t.Errorf("a JetStream request answered in the user's inbox: %v", err)
	}
}

// TestAuthRefused: a refused password does not stop the service. It says
// why at error level and keeps trying, so that it connects once the server
// accepts the password (a rotated secret reaching the server last).
func TestAuthRefused(t *testing.T) {
	t.Parallel()
	n := testenv.NATSWith(t, testenv.NATSOptions{Config: usersConf, User: "svc", Password: "right-password"})
	var logs testenv.LogBuffer
	var connects atomic.Int32
	nc, err := natsconn.Connect(context.Background(), natsconn.Config{
		URL: n.URL(), Name: "test", Log: slog.New(slog.NewTextHandler(&logs, nil)),
		ReconnectWait: 20 * time.Millisecond, Auth: natsconn.Auth{User: "svc", Password: "new-password"},
		OnConnect: func() { connects.Add(1) },
	})
	if err != nil {
		t.Fatalf("Connect with a refused password = %v, want a connection that keeps trying", err)
	}
	t.Cleanup(nc.Close)
	testenv.WaitFor(t, 10*time.Second, "the refusal logged", func() error {
		if !strings.Contains(logs.String(), "level=ERROR msg=\"nats refused the credentials\" user=svc") {
			return fmt.Errorf("logs:\n%s", logs.String())
		}
		return nil
	})
	if nc.IsConnected() {
		t.Fatal("connected with a refused password")
	}
	n.Reconfigure(testenv.NATSOptions{Config: strings.Replace(usersConf, "right-password", "new-password", 1), User: "svc", Password: "new-password"})
	n.Restart()
	testenv.WaitFor(t, 10*time.Second, "the connection once the server takes the password", func() error { return callbacks(&connects, 1) })

	// Refused again and again after having been connected: nats.go would
	// give up after the second refusal.
	refusals := strings.Count(logs.String(), "nats refused the credentials")
	n.Reconfigure(testenv.NATSOptions{Config: strings.Replace(usersConf, "right-password", "newer-password", 1), User: "svc", Password: "newer-password"})
	n.Restart()
	testenv.WaitFor(t, 10*time.Second, "three more refusals", func() error {
		if got := strings.Count(logs.String(), "nats refused the credentials") - refusals; got < 3 {
			return fmt.Errorf("%d more", got)
		}
		return nil
	})
	n.Reconfigure(testenv.NATSOptions{Config: strings.Replace(usersConf, "right-password", "new-password", 1), User: "svc", Password: "new-password"})
	n.Restart()
	testenv.WaitFor(t, 10*time.Second, "the reconnection once the server takes the password again", func() error { return callbacks(&connects, 2) })
	if strings.Contains(logs.String(), "new-password") {
		t.Errorf("the password is in the logs:\n%s", logs.String())
	}
}

func TestReadAuth(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		vars    map[string]string
		want    natsconn.Auth
		wantErr string
	}{
		{vars: map[string]string{}},
		{vars: map[string]string{"NATS_USER": "gateway", "NATS_PASSWORD": "p"}, want: natsconn.Auth{User: "gateway", Password: "p"}},
		{vars: map[string]string{"NATS_USER": "gateway"}, wantErr: "NATS_PASSWORD is not"},
		{vars: map[string]string{"NATS_PASSWORD": "p"}, wantErr: "NATS_USER is not"},
		{vars: map[string]string{"NATS_USER": "a.b", "NATS_PASSWORD": "p"}, wantErr: "NATS_USER=\"a.b\""},
		{vars: map[string]string{"NATS_USER": "*", "NATS_PASSWORD": "p"}, wantErr: "NATS_USER=\"*\""},
	} {
		var got natsconn.Auth
		env := config.FromMap(tc.vars)
		natsconn.ReadAuth(env, &got)
		err := env.Err()
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("%v: %v", tc.vars, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%v: error %v, want one containing %q", tc.vars, err, tc.wantErr)
		case tc.wantErr == "" && got != tc.want:
			t.Errorf("%v: read %+v, want %+v", tc.vars, got, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "\"p\"") {
			t.Errorf("%v: the password is in the error %v", tc.vars, err)
		}
	}
}
