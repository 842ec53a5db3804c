// Package testenv starts real Redis, Redis Cluster, NATS (JetStream) and
// PostgreSQL servers for tests: child processes on free loopback ports with
// their data in temporary folders, stopped when the test ends. Tests can kill,
// stop, pause and restart them to inject faults. Nothing here is a fake.
//
// The binaries come from the machine (scripts/install-deps.sh installs them on
// Debian and Ubuntu); a missing one fails the test with what to install.
package testenv

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// process is one server child process that can be killed and started again
// with the same arguments, so it comes back on the same port with its data.
type process struct {
	name string
	bin  string
	args []string
	dir  string
	cred *syscall.Credential
	// stopSignal asks the server for a clean, quick shutdown.
	stopSignal syscall.Signal
	// childDir, when set, is the working directory of helpers that leave
	// the process group: PostgreSQL backends call setsid, so a signal to
	// the group misses them, and they are found by their directory.
	childDir string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	log  *os.File
}

func (p *process) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		return fmt.Errorf("%s is already running", p.name)
	}
	logFile, err := os.OpenFile(filepath.Join(p.dir, p.name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open %s log: %w", p.name, err)
	}
	cmd := exec.Command(p.bin, p.args...)
	cmd.Dir = p.dir
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// Its own process group, so signals reach the helpers it keeps in
		// the group; those that leave it are found by childDir.
		Setpgid: true,
		// If the test binary dies, so does the server: no leftovers.
		Pdeathsig:  syscall.SIGKILL,
		Credential: p.cred,
	}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return fmt.Errorf("start %s: %w", p.name, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait() // exit status is expected to be non-zero after a kill
		logFile.Close()
		close(done)
	}()
	p.cmd, p.done, p.log = cmd, done, logFile
	return nil
}

// signal sends sig to the whole process group and, for terminating signals,
// waits up to timeout for the leader to exit before killing it outright.
func (p *process) signal(sig syscall.Signal, timeout time.Duration) {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = syscall.Kill(-cmd.Process.Pid, sig)
	for _, pid := range p.strays() {
		_ = syscall.Kill(pid, sig)
	}
	if sig == syscall.SIGSTOP || sig == syscall.SIGCONT {
		return
	}
	select {
	case <-done:
	case <-time.After(timeout):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
	// Helpers that outlived the leader (PostgreSQL backends) go too, and
	// are waited for: until the last one is gone it still holds the
	// server's shared memory, and a restart on the same data refuses to
	// run ("pre-existing shared memory block is still in use").
	deadline := time.Now().Add(timeout)
	for {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		left := p.strays()
		for _, pid := range left {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		if (len(left) == 0 && syscall.Kill(-cmd.Process.Pid, 0) != nil) || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	p.mu.Lock()
	p.cmd, p.done = nil, nil
	p.mu.Unlock()
}

// strays are the live processes working in childDir, the server's own
// included while it runs.
func (p *process) strays() []int {
	if p.childDir == "" {
		return nil
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if cwd, err := os.Readlink("/proc/" + e.Name() + "/cwd"); err == nil && cwd == p.childDir {
			pids = append(pids, pid)
		}
	}
	return pids
}

func (p *process) kill() { p.signal(syscall.SIGKILL, 10*time.Second) }
func (p *process) stop() { p.signal(p.stopSignal, 15*time.Second) }

func (p *process) running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// logTail returns the end of the server's log, for failure messages.
func (p *process) logTail() string {
	b, err := os.ReadFile(filepath.Join(p.dir, p.name+".log"))
	if err != nil {
		return ""
	}
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(bytes.TrimSpace(b))
}

// freePort asks the kernel for a free loopback port. Another process could
// take it before the server binds; servers are started right away to keep
// that window small, and a bind failure is reported with the server's log.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitFor polls check until it succeeds or the deadline passes.
func waitFor(timeout time.Duration, check func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %v: %w", timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// findBinary looks a server binary up on PATH and in extra folders.
func findBinary(name string, extraGlobs ...string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, g := range extraGlobs {
		matches, _ := filepath.Glob(g)
		// Highest version last in lexical order for /usr/lib/postgresql/NN.
		for i := len(matches) - 1; i >= 0; i-- {
			if st, err := os.Stat(matches[i]); err == nil && !st.IsDir() {
				return matches[i], nil
			}
		}
	}
	return "", fmt.Errorf("%s not found: run scripts/install-deps.sh (Debian/Ubuntu) or install it", name)
}

// tempDir makes a folder that an unprivileged server user can use, which
// t.TempDir (0700, owned by the test's user) does not give when tests run
// as root.
func tempDir(tb testing.TB, pattern string, cred *syscall.Credential) string {
	tb.Helper()
	dir, err := os.MkdirTemp("", pattern)
	if err != nil {
		tb.Fatalf("testenv: %v", err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			tb.Fatalf("testenv: chown %s: %v", dir, err)
		}
	}
	return dir
}

var errNotRunning = errors.New("not running")
