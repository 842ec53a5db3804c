package testenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// PostgresServer is a PostgreSQL cluster made by initdb in a temporary folder,
// running without fsync: test data need not survive a power cut, only a
// process crash, and commits still reach the kernel before they return. When tests run as root it runs as an unprivileged user,
// because PostgreSQL refuses to run as root.
type PostgresServer struct {
	Port int
	p    *process
	tb   testing.TB
	dbs  atomic.Int64
}

var pgBinGlobs = []string{"/usr/lib/postgresql/*/bin/"}

// Postgres starts a dedicated PostgreSQL server for this test, for tests that
// kill or restart it. Tests that only need a database use PostgresDB, which
// is much faster.
func Postgres(tb testing.TB) *PostgresServer {
	tb.Helper()
	s, err := startPostgres(tb)
	if err != nil {
		tb.Fatalf("testenv: %v", err)
	}
	tb.Cleanup(s.p.kill)
	return s
}

func pgBinary(name string) (string, error) {
	globs := make([]string, len(pgBinGlobs))
	for i, g := range pgBinGlobs {
		globs[i] = g + name
	}
	return findBinary(name, globs...)
}

// serverCredential is the user PostgreSQL runs as when we are root.
func serverCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
	}
	return nil, fmt.Errorf("running as root and no 'postgres' or 'nobody' user to run PostgreSQL as")
}

func startPostgres(tb testing.TB) (*PostgresServer, error) {
	initdb, err := pgBinary("initdb")
	if err != nil {
		return nil, err
	}
	postgres, err := pgBinary("postgres")
	if err != nil {
		return nil, err
	}
	cred, err := serverCredential()
	if err != nil {
		return nil, err
	}
	dir := tempDir(tb, "testenv-pg-", cred)
	data := filepath.Join(dir, "data")
	init := exec.Command(initdb, "-D", data, "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8", "--locale=C")
	init.Dir = dir
	init.Env = append(os.Environ(), "LC_ALL=C")
	init.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := init.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("initdb: %w\n%s", err, out)
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	s := &PostgresServer{
		Port: port,
		tb:   tb,
		p: &process{
			name: "postgres-" + strconv.Itoa(port), bin: postgres, dir: dir, cred: cred,
			// SIGINT is PostgreSQL's "fast" shutdown: abort transactions, exit now.
			stopSignal: syscall.SIGINT,
			childDir:   realPath(data),
			args: []string{"-D", data, "-p", strconv.Itoa(port),
				"-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=" + dir,
				"-c", "fsync=off", "-c", "full_page_writes=off",
				"-c", "max_connections=300", "-c", "shared_buffers=128MB"},
		},
	}
	if err := s.start(); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *PostgresServer) start() error {
	if err := s.p.start(); err != nil {
		return err
	}
	if err := waitFor(30*time.Second, s.ping); err != nil {
		s.p.kill()
		return fmt.Errorf("postgres on %d: %w\n%s", s.Port, err, s.p.logTail())
	}
	return nil
}

func (s *PostgresServer) ping() error {
	if !s.p.running() {
		return errNotRunning
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.URL("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	return conn.Ping(ctx)
}

// URL is a connection URL for database db.
func (s *PostgresServer) URL(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", s.Port, db)
}

// CreateDB creates an empty database with a unique name and returns its URL.
func (s *PostgresServer) CreateDB(tb testing.TB) string {
	tb.Helper()
	name := fmt.Sprintf("test_%d_%d", os.Getpid(), s.dbs.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.URL("postgres"))
	if err != nil {
		tb.Fatalf("testenv: connect postgres: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		tb.Fatalf("testenv: create database: %v", err)
	}
	return s.URL(name)
}

// Kill ends the server and its backends with SIGKILL, as a crash would. The
// data folder stays; Start recovers from it.
func (s *PostgresServer) Kill() { s.p.kill() }

// Stop shuts the server down cleanly (fast mode).
func (s *PostgresServer) Stop() { s.p.stop() }

// Pause freezes the server and its backends (SIGSTOP), like a hung host.
func (s *PostgresServer) Pause() { s.p.signal(syscall.SIGSTOP, 0) }

// Resume undoes Pause.
func (s *PostgresServer) Resume() { s.p.signal(syscall.SIGCONT, 0) }

// Start starts a stopped or killed server again on the same port and data.
func (s *PostgresServer) Start() {
	s.tb.Helper()
	if err := s.start(); err != nil {
		s.tb.Fatalf("testenv: %v", err)
	}
}

// Restart kills the server and starts it again.
func (s *PostgresServer) Restart() {
	s.tb.Helper()
	s.Kill()
	s.Start()
}

// The package-wide server behind PostgresDB: one initdb per test binary.
var shared struct {
	once   sync.Once
	server *PostgresServer
	err    error
}

// PostgresDB returns the URL of a new, empty database on a PostgreSQL server
// shared by the whole test binary. Call Main from TestMain to stop the
// server when the tests end; otherwise it dies with the test binary.
func PostgresDB(tb testing.TB) string {
	tb.Helper()
	shared.once.Do(func() {
		shared.server, shared.err = startPostgres(packageTB{})
	})
	if shared.err != nil {
		tb.Fatalf("testenv: shared postgres: %v", shared.err)
	}
	return shared.server.CreateDB(tb)
}

// Main runs the tests and then stops servers shared by the whole binary.
// Use it as: func TestMain(m *testing.M) { testenv.Main(m) }.
func Main(m *testing.M) {
	code := m.Run()
	if shared.server != nil {
		shared.server.Stop()
	}
	for _, f := range packageCleanups {
		f()
	}
	os.Exit(code)
}

var packageCleanups []func()

// packageTB lets the shared server, which outlives any one test, use the
// same start-up code; its cleanups run in Main.
type packageTB struct{ testing.TB }

func (packageTB) Helper()               {}
func (packageTB) Cleanup(f func())      { packageCleanups = append(packageCleanups, f) }
func (packageTB) Fatalf(string, ...any) { panic("testenv: Fatalf on the shared server") }

// realPath is path as /proc shows a working directory: absolute, with
// symbolic links resolved.
func realPath(path string) string {
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	if real, err := filepath.EvalSymlinks(path); err == nil {
		path = real
	}
	return path
}
