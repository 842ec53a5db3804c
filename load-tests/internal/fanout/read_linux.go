package fanout

import (
	"errors"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// readAll reads every viewer's socket until stop is closed, with one epoll
// loop per core instead of one goroutine per viewer: a ready socket costs
// one read, where Go's netpoller costs a goroutine wake-up and a second read
// that ends in EAGAIN.
func readAll(viewers []*viewer, r *run, stop <-chan struct{}) (wait func(), err error) {
	for _, v := range viewers {
		if err := v.takeFD(); err != nil {
			return nil, err
		}
	}
	loops := min(runtime.GOMAXPROCS(0), len(viewers))
	eps := make([]int, 0, loops)
	closeAll := func() {
		for _, ep := range eps {
			syscall.Close(ep)
		}
	}
	for i := range loops {
		ep, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
		if err != nil {
			closeAll()
			return nil, err
		}
		eps = append(eps, ep)
		for j, v := range viewers[i*len(viewers)/loops : (i+1)*len(viewers)/loops] {
			ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP, Fd: int32(j)}
			if err := syscall.EpollCtl(ep, syscall.EPOLL_CTL_ADD, v.fd, &ev); err != nil {
				closeAll()
				return nil, err
			}
		}
	}
	var wg sync.WaitGroup
	for i, ep := range eps {
		part := viewers[i*len(viewers)/loops : (i+1)*len(viewers)/loops]
		wg.Add(1)
		go func() {
			defer wg.Done()
			poll(ep, part, r, stop)
		}()
	}
	return func() {
		wg.Wait()
		closeAll()
		for _, v := range viewers {
			syscall.Close(v.fd)
		}
	}, nil
}

func poll(ep int, part []*viewer, r *run, stop <-chan struct{}) {
	var events [256]syscall.EpollEvent
	for {
		select {
		case <-stop:
			return
		default:
		}
		n, err := syscall.EpollWait(ep, events[:], 100)
		if err != nil && !errors.Is(err, syscall.EINTR) {
			return
		}
		for _, e := range events[:max(n, 0)] {
			v := part[e.Fd]
			if v.readFD(r) != nil || v.closed {
				_ = syscall.EpollCtl(ep, syscall.EPOLL_CTL_DEL, v.fd, nil)
			}
		}
	}
}

// takeFD moves the socket out of Go's netpoller into a descriptor of the
// viewer's own; it stays non-blocking.
func (v *viewer) takeFD() error {
	tc, ok := v.conn.(*net.TCPConn)
	if !ok {
		return errors.New("viewer connection is not TCP")
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return err
	}
	var derr error
	if err := rc.Control(func(fd uintptr) { v.fd, derr = syscall.Dup(int(fd)) }); err != nil {
		return err
	}
	if derr != nil {
		return derr
	}
	v.conn = nil
	return errors.Join(tc.Close(), syscall.SetNonblock(v.fd, true))
}

func (v *viewer) readFD(r *run) error {
	if v.n == len(v.buf) {
		v.buf = append(v.buf, make([]byte, len(v.buf))...)
	}
	n, err := syscall.Read(v.fd, v.buf[v.n:])
	now := time.Now()
	if errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EINTR) {
		return nil
	}
	if err != nil {
		return err
	}
	if n == 0 {
		v.closed = true
		return nil
	}
	v.n += n
	return v.consume(now, r)
}

func (v *viewer) pong(payload []byte) error {
	f := pongFrame(payload)
	if v.conn != nil {
		_, err := v.conn.Write(f)
		return err
	}
	// A pong is tiny and the socket's send side is idle, so it does not
	// block; if it somehow did, the service would reap the viewer, which
	// the report would show as lost events.
	_, err := syscall.Write(v.fd, f)
	return err
}

// machineTime is the CPU time all processes have used, from /proc/stat.
func machineTime() time.Duration {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(data), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return 0
	}
	var ticks int64
	for i, s := range f[1:8] {
		if i == 3 || i == 4 {
			continue // idle, iowait
		}
		n, _ := strconv.ParseInt(s, 10, 64)
		ticks += n
	}
	// USER_HZ is 100 on every Linux architecture Go supports.
	return time.Duration(ticks) * 10 * time.Millisecond
}

// cpuTime is the CPU time this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
