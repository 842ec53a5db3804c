package fanout

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/bidding-platform/shared/testenv"
)

// TestRunAgainstFloor measures the floor server with the load program's own
// Run on a real NATS: every viewer must get every event in order, and the
// floor must let go of the viewers once the run closed them.
func TestRunAgainstFloor(t *testing.T) {
	t.Parallel()
	n := testenv.NATS(t)
	floor, err := NewFloor(n.URL())
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- floor.Serve(ln) }()
	t.Cleanup(func() {
		if err := floor.Close(); err != nil {
			t.Errorf("close floor: %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
	})

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rep, err := Run(ctx, Config{
		WSURL: "ws://" + ln.Addr().String(), MetricsURL: "http://" + ln.Addr().String() + "/metrics", NATSURL: n.URL(),
		ItemID: "floor_item", Viewers: 40, Rate: 200, Duration: 250 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Events != 50 || rep.Received != rep.Expected || rep.Expected != 40*50 || rep.OutOfOrder != 0 {
		t.Fatalf("report %s: want 50 events to each of 40 viewers, in order", rep)
	}
	if rep.P99 <= 0 || rep.Max < rep.P99 || rep.ServiceRSS <= 0 {
		t.Errorf("report %s: want latencies and the floor's memory from its /metrics", rep)
	}

	for deadline := time.Now().Add(10 * time.Second); ; {
		floor.mu.RLock()
		left := len(floor.items["floor_item"])
		floor.mu.RUnlock()
		if left == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d viewers still held by the floor 10s after the run closed them", left)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
