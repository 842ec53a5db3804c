package testenv

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	goredis "github.com/redis/go-redis/v9"
)

func TestMain(m *testing.M) { Main(m) }

func TestRedisKillAndRestart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := Redis(t)
	c := r.Client()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("set: %v", err)
	}
	r.Kill()
	if err := c.Ping(ctx).Err(); err == nil {
		t.Fatal("ping after Kill succeeded, want an error")
	}
	r.Start()
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("ping after Start: %v", err)
	}
	if err := c.Get(ctx, "k").Err(); !errors.Is(err, goredis.Nil) {
		t.Errorf("get after restart = %v, want redis.Nil (no persistence)", err)
	}
}

func TestRedisPause(t *testing.T) {
	t.Parallel()
	r := Redis(t)
	c := r.Client()
	r.Pause()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	err := c.Ping(ctx).Err()
	r.Resume()
	if err == nil {
		t.Fatal("ping while paused succeeded, want a timeout")
	}
	if err := c.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("ping after Resume: %v", err)
	}
}

func TestTwoRedisServersGetDifferentPorts(t *testing.T) {
	t.Parallel()
	a, b := Redis(t), Redis(t)
	if a.Port == b.Port {
		t.Fatalf("both servers on port %d", a.Port)
	}
}

func TestClusterSpreadsKeysAndSurvivesNodeRestart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := Cluster(t)
	cl := c.Client()
	for i := 0; i < 100; i++ {
		if err := cl.Set(ctx, fmt.Sprintf("key-%d", i), i, 0).Err(); err != nil {
			t.Fatalf("set key-%d: %v", i, err)
		}
	}
	for i, n := range c.Nodes {
		size, err := goredis.NewClient(&goredis.Options{Addr: n.Addr()}).DBSize(ctx).Result()
		if err != nil {
			t.Fatalf("dbsize node %d: %v", i, err)
		}
		if size == 0 {
			t.Errorf("node %d holds no keys; want the 100 keys spread over all three masters", i)
		}
	}
	// Keys with one hash tag land on one node, which multi-key scripts need.
	if err := cl.MSet(ctx, "{item1}:a", 1, "{item1}:b", 2).Err(); err != nil {
		t.Fatalf("mset with shared hash tag: %v", err)
	}
	c.RestartNode(1)
	if err := cl.Set(ctx, "after-restart", 1, 0).Err(); err != nil {
		t.Fatalf("set after node restart: %v", err)
	}
}

func TestNATSJetStreamSurvivesKill(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	n := NATS(t)
	js := n.JetStream()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t.>"}}); err != nil {
		t.Fatalf("create stream: %v", err)
	}
	if _, err := js.Publish(ctx, "t.1", []byte("hello")); err != nil {
		t.Fatalf("publish: %v", err)
	}
	n.Kill()
	if _, err := js.Publish(ctx, "t.1", []byte("lost")); err == nil {
		t.Fatal("publish while killed succeeded, want an error")
	}
	n.Start()
	js = n.JetStream()
	s, err := js.Stream(ctx, "T")
	if err != nil {
		t.Fatalf("stream after restart: %v", err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatalf("stream info: %v", err)
	}
	if got, want := info.State.Msgs, uint64(1); got != want {
		t.Errorf("messages after restart = %d, want %d", got, want)
	}
}

// TestNATSWithUsers: a server started with users refuses a client without
// credentials, while Conn and JetStream connect as the given user.
func TestNATSWithUsers(t *testing.T) {
	t.Parallel()
	n := NATSWith(t, NATSOptions{
		Config: `authorization { users = [ {user: "u", password: "p", permissions: {
			publish: ["$JS.API.>"], subscribe: ["_INBOX.u.>"]}} ] }`,
		User: "u", Password: "p",
	})
	if nc, err := nats.Connect(n.URL(), nats.NoReconnect()); err == nil {
		nc.Close()
		t.Fatal("connected without credentials")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := n.JetStream().CreateStream(ctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t.>"}}); err != nil {
		t.Fatalf("create a stream as the user: %v", err)
	}
}

// PostgreSQL backends leave the server's process group (setsid), so Pause
// must find them too: a connection opened before it must hang, as on a
// frozen host.
func TestPostgresPauseFreezesOpenConnections(t *testing.T) {
	t.Parallel()
	s := Postgres(t)
	url := s.CreateDB(t)
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	s.Pause()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	_, err = conn.Exec(ctx, "SELECT 1")
	cancel()
	s.Resume()
	if err == nil {
		t.Fatal("query on an open connection while paused succeeded, want a timeout")
	}
	conn2, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatalf("connect after Resume: %v", err)
	}
	defer conn2.Close(context.Background())
	if _, err := conn2.Exec(context.Background(), "SELECT 1"); err != nil {
		t.Fatalf("query after Resume: %v", err)
	}
}

func TestPostgresKillAndRestartKeepsData(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := Postgres(t)
	url := s.CreateDB(t)
	exec := func(sql string) error {
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, sql)
		return err
	}
	if err := exec("CREATE TABLE t (v int); INSERT INTO t VALUES (42)"); err != nil {
		t.Fatalf("create: %v", err)
	}
	s.Kill()
	if err := exec("SELECT 1"); err == nil {
		t.Fatal("query after Kill succeeded, want an error")
	}
	s.Start()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect after restart: %v", err)
	}
	defer conn.Close(ctx)
	var v int
	if err := conn.QueryRow(ctx, "SELECT v FROM t").Scan(&v); err != nil || v != 42 {
		t.Fatalf("committed row after crash: v=%d err=%v, want 42", v, err)
	}
}

func TestPostgresDBIsolatesTests(t *testing.T) {
	t.Parallel()
	a, b := PostgresDB(t), PostgresDB(t)
	if a == b {
		t.Fatalf("two tests got the same database %s", a)
	}
	conn, err := pgx.Connect(context.Background(), a)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(context.Background())
	var user string
	if err := conn.QueryRow(context.Background(), "SELECT current_user").Scan(&user); err != nil || user != "postgres" {
		t.Fatalf("current_user = %q, %v", user, err)
	}
}

// TestSecureRedis: the server speaks only TLS and only to its ACL user.
func TestSecureRedis(t *testing.T) {
	t.Parallel()
	r := SecureRedis(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.Client().Ping(ctx).Err(); err != nil {
		t.Fatalf("PING as %s over TLS: %v", r.Username, err)
	}
	for name, opts := range map[string]*goredis.Options{
		"plain text":       {Addr: r.Addr(), Username: r.Username, Password: r.Password},
		"the default user": {Addr: r.Addr(), TLSConfig: r.tls},
		"a wrong password": {Addr: r.Addr(), Username: r.Username, Password: "wrong", TLSConfig: r.tls},
	} {
		opts.MaxRetries, opts.DialTimeout, opts.ReadTimeout = -1, 2*time.Second, 2*time.Second
		c := goredis.NewClient(opts)
		if err := c.Ping(ctx).Err(); err == nil {
			t.Errorf("PING with %s succeeded, want refused", name)
		}
		c.Close()
	}
}
