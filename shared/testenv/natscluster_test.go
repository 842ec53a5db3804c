package testenv

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// A stream on three replicas loses nothing it acknowledged when its leader
// is killed: another node takes over, publishing goes on, and the killed
// node comes back with the same store and catches up.
func TestNATSClusterStreamSurvivesLeaderKill(t *testing.T) {
	t.Parallel()
	c := JetStreamCluster(t)
	js := c.JetStream()
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name: "T", Subjects: []string{"t.>"}, Replicas: 3, Duplicates: 10 * time.Minute,
	}); err != nil {
		t.Fatalf("create stream: %v", err)
	}

	sent := 0
	publish := func(n int) {
		t.Helper()
		for range n {
			id := "m" + strconv.Itoa(sent)
			// Retried until acknowledged; the message id makes a retry
			// of a publish that was stored but not acknowledged a no-op.
			WaitFor(t, 2*clusterReadyTimeout, "publish "+id, func() error {
				pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
				defer cancel()
				_, err := js.Publish(pctx, "t.x", []byte(id), jetstream.WithMsgID(id))
				return err
			})
			sent++
		}
	}

	publish(100)
	first := c.StreamLeader("T")
	t.Logf("killing the stream leader %s", first.Name)
	first.Kill()
	publish(100) // waits out the election
	second := c.StreamLeader("T")
	t.Logf("new stream leader %s", second.Name)
	if second == first {
		t.Fatalf("leader after killing %s is still %s", first.Name, second.Name)
	}
	checkStream(t, js, "T", sent)

	first.Start()
	c.WaitReady()
	t.Logf("%s is back; killing %s", first.Name, second.Name)
	// With the first leader back and caught up, the cluster also survives
	// losing the second one.
	second.Kill()
	publish(50)
	if l := c.StreamLeader("T"); l == second {
		t.Fatalf("leader after killing %s is still %s", second.Name, l.Name)
	}
	checkStream(t, js, "T", sent)
	second.Start()
	c.WaitReady()
	checkStream(t, js, "T", sent)
}

// checkStream reads the whole stream and wants messages m0..m(n-1), each
// exactly once and in publish order. It reads message by message rather
// than through a consumer: an ordered consumer whose node died retries its
// own recreation without a deadline.
func checkStream(t *testing.T, js jetstream.JetStream, stream string, n int) {
	t.Helper()
	WaitFor(t, clusterReadyTimeout, fmt.Sprintf("%d messages in %s", n, stream), func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s, err := js.Stream(ctx, stream)
		if err != nil {
			return err
		}
		state := s.CachedInfo().State
		if state.Msgs != uint64(n) {
			return fmt.Errorf("stream %s holds %d messages, want %d", stream, state.Msgs, n)
		}
		var got []string
		for seq := state.FirstSeq; seq <= state.LastSeq && seq > 0; seq++ {
			m, err := s.GetMsg(ctx, seq)
			if err != nil {
				return fmt.Errorf("message %d: %w", seq, err)
			}
			got = append(got, string(m.Data))
		}
		if len(got) != n {
			return fmt.Errorf("read %d messages, want %d", len(got), n)
		}
		for i, m := range got {
			if want := "m" + strconv.Itoa(i); m != want {
				t.Fatalf("message %d = %s, want %s (the stream holds %v)", i, m, want, got)
			}
		}
		return nil
	})
}
