//go:build !linux

package fanout

import (
	"sync"
	"time"
)

// readAll reads every viewer with a goroutine each.
func readAll(viewers []*viewer, r *run, stop <-chan struct{}) (wait func(), err error) {
	var wg sync.WaitGroup
	for _, v := range viewers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !v.closed {
				if v.n == len(v.buf) {
					v.buf = append(v.buf, make([]byte, len(v.buf))...)
				}
				n, err := v.conn.Read(v.buf[v.n:])
				now := time.Now()
				if err != nil {
					return
				}
				v.n += n
				if v.consume(now, r) != nil {
					return
				}
			}
		}()
	}
	go func() {
		<-stop
		for _, v := range viewers {
			v.conn.Close()
		}
	}()
	return wg.Wait, nil
}

func (v *viewer) pong(payload []byte) error {
	_, err := v.conn.Write(pongFrame(payload))
	return err
}

// cpuTime is not measured on this platform.
func cpuTime() time.Duration { return 0 }

// machineTime is not measured on this platform.
func machineTime() time.Duration { return 0 }
