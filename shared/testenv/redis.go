package testenv

import (
	"context"
	"crypto/tls"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// RedisServer is a redis-server child process with no persistence.
type RedisServer struct {
	Port int
	// Set only on a SecureRedis: the ACL user clients must log in as, and
	// the PEM file of the CA that signed the server's certificate.
	Username, Password, CAFile string

	p   *process
	tb  testing.TB
	tls *tls.Config
}

// Redis starts a fresh Redis for this test and stops it when the test ends.
func Redis(tb testing.TB) *RedisServer {
	tb.Helper()
	return startRedis(tb, tb.TempDir(), nil, nil)
}

// DurableRedis starts a Redis that writes every change to its append-only
// file and fsyncs it before answering (appendfsync always), as the
// platform runs it: Kill (SIGKILL) and Start lose nothing it answered.
func DurableRedis(tb testing.TB) *RedisServer {
	tb.Helper()
	return startRedis(tb, tb.TempDir(), []string{"appendonly yes", "appendfsync always"}, nil)
}

// startRedis starts a server with extraConf after the defaults; secure,
// when set, says how clients log in (see SecureRedis).
func startRedis(tb testing.TB, dir string, extraConf []string, secure *RedisServer) *RedisServer {
	tb.Helper()
	bin, err := findBinary("redis-server", "/usr/bin/redis-server", "/usr/local/bin/redis-server")
	if err != nil {
		tb.Fatalf("testenv: %v", err)
	}
	port, err := freePort()
	if err != nil {
		tb.Fatalf("testenv: %v", err)
	}
	conf := []string{
		"bind 127.0.0.1",
		"port " + strconv.Itoa(port),
		"protected-mode no",
		"daemonize no",
		"save \"\"",
		"appendonly no",
		"dir " + dir,
		"loglevel warning",
		"maxclients 10000",
	}
	for _, line := range extraConf {
		if line == "tls-port PORT" {
			// TLS only: the port clients use speaks TLS, the plain one is off.
			conf = append(conf, "port 0", "tls-port "+strconv.Itoa(port))
			continue
		}
		conf = append(conf, line)
	}
	confPath := filepath.Join(dir, "redis.conf")
	if err := os.WriteFile(confPath, []byte(joinLines(conf)), 0o644); err != nil {
		tb.Fatalf("testenv: %v", err)
	}
	r := &RedisServer{
		Port: port,
		tb:   tb,
		p:    &process{name: "redis-" + strconv.Itoa(port), bin: bin, args: []string{confPath}, dir: dir, stopSignal: syscall.SIGTERM},
	}
	if secure != nil {
		r.Username, r.Password, r.CAFile, r.tls = secure.Username, secure.Password, secure.CAFile, secure.tls
	}
	if err := r.start(); err != nil {
		tb.Fatalf("testenv: %v", err)
	}
	tb.Cleanup(r.p.kill)
	return r
}

// Addr is host:port for clients.
func (r *RedisServer) Addr() string { return fmt.Sprintf("127.0.0.1:%d", r.Port) }

func (r *RedisServer) start() error {
	if err := r.p.start(); err != nil {
		return err
	}
	if err := waitFor(10*time.Second, r.ping); err != nil {
		r.p.kill()
		return fmt.Errorf("redis on %d: %w\n%s", r.Port, err, r.p.logTail())
	}
	return nil
}

func (r *RedisServer) ping() error {
	if !r.p.running() {
		return errNotRunning
	}
	opts := r.options()
	opts.DialTimeout, opts.MaxRetries = time.Second, -1
	c := goredis.NewClient(opts)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	return c.Ping(ctx).Err()
}

// Kill ends the server with SIGKILL, as a crash would. Its memory is gone;
// a DurableRedis comes back from its append-only file on Start.
func (r *RedisServer) Kill() { r.p.kill() }

// Stop shuts the server down cleanly.
func (r *RedisServer) Stop() { r.p.stop() }

// Pause freezes the server (SIGSTOP): connections stay open but nothing
// answers, which is how a hung or partitioned server looks to clients.
func (r *RedisServer) Pause() { r.p.signal(syscall.SIGSTOP, 0) }

// Resume undoes Pause.
func (r *RedisServer) Resume() { r.p.signal(syscall.SIGCONT, 0) }

// Start starts a stopped or killed server again on the same port.
func (r *RedisServer) Start() {
	r.tb.Helper()
	if err := r.start(); err != nil {
		r.tb.Fatalf("testenv: %v", err)
	}
}

// Restart kills the server and starts it again on the same port.
func (r *RedisServer) Restart() {
	r.tb.Helper()
	r.Kill()
	r.Start()
}

// Client returns a go-redis client for the server, closed at test end.
func (r *RedisServer) Client() *goredis.Client {
	c := goredis.NewClient(r.options())
	r.tb.Cleanup(func() { c.Close() })
	return c
}

func (r *RedisServer) options() *goredis.Options {
	return &goredis.Options{Addr: r.Addr(), Username: r.Username, Password: r.Password, TLSConfig: r.tls}
}

func joinLines(lines []string) string {
	out := ""
	for _, l := range lines {
		out += l + "\n"
	}
	return out
}
