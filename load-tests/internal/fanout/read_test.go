package fanout

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func frame(payload string) []byte { return textFrame([]byte(payload)) }

func bid(seq uint64, ts time.Time, pad int) string {
	return fmt.Sprintf(`{"type":"bid","seq":%d,"timestamp":"%s","user_id":"%s"}`, seq, ts.Format(time.RFC3339Nano), strings.Repeat("u", pad))
}

// TestConsume feeds frames split at every byte boundary: each event must be
// counted once, in order, whatever the reads cut.
func TestConsume(t *testing.T) {
	t.Parallel()
	ts := time.Date(2026, 1, 2, 3, 4, 5, 600_000_000, time.UTC)
	var stream []byte
	stream = append(stream, frame(`{"type":"snapshot","seq":0}`)...)
	stream = append(stream, frame(`{"type":"viewers","count":3}`)...)
	for seq := uint64(1); seq <= 3; seq++ {
		stream = append(stream, frame(bid(seq, ts, int(seq)*100))...) // the last ones need 16-bit lengths
	}
	for cut := 1; cut < len(stream); cut++ {
		r := &run{lastSeq: 3, allDone: make(chan struct{})}
		r.remaining.Store(1)
		v := &viewer{buf: make([]byte, 16)}
		for _, chunk := range [][]byte{stream[:cut], stream[cut:]} {
			for len(chunk) > 0 {
				if v.n == len(v.buf) {
					v.buf = append(v.buf, make([]byte, len(v.buf))...)
				}
				k := copy(v.buf[v.n:], chunk)
				v.n += k
				chunk = chunk[k:]
				if err := v.consume(ts.Add(time.Millisecond), r); err != nil {
					t.Fatalf("cut %d: consume: %v", cut, err)
				}
			}
		}
		if got, want := len(v.lat), 3; got != want || v.bad != 0 || !v.joined {
			t.Fatalf("cut %d: got %d events (%d out of order, joined %v), want %d in order", cut, got, v.bad, v.joined, want)
		}
		if got, want := v.lat[0], time.Millisecond; got != want {
			t.Errorf("cut %d: latency %s, want %s", cut, got, want)
		}
		select {
		case <-r.allDone:
		default:
			t.Errorf("cut %d: last event not reported", cut)
		}
	}
}

func TestConsumeOutOfOrder(t *testing.T) {
	t.Parallel()
	ts := time.Now()
	v := &viewer{buf: make([]byte, 4096), joined: true}
	for _, seq := range []uint64{1, 3, 2} {
		v.n += copy(v.buf[v.n:], frame(bid(seq, ts, 0)))
	}
	if err := v.consume(ts, nil); err != nil {
		t.Fatal(err)
	}
	if got, want := v.bad, int64(2); got != want {
		t.Errorf("out of order = %d, want %d for seqs 1, 3, 2", got, want)
	}
}

// TestConsumeNotices: a user's channel counts its outbid notices once, from
// the publish time the run noted for their seq, and ignores other messages.
func TestConsumeNotices(t *testing.T) {
	t.Parallel()
	published := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	r := newRun(4, 0, 2)
	for seq := range r.published {
		r.published[seq].Store(published.UnixNano())
	}
	v := &viewer{buf: make([]byte, 4096), personal: true}
	for _, msg := range []string{
		`{"type":"outbid","item_id":"i","seq":1,"timestamp":"x"}`, // before ready: not counted
		`{"type":"ready","user_id":"u"}`,
		`{"type":"outbid","item_id":"i","current_bid":2,"seq":2,"timestamp":"2026-01-02T03:04:05Z"}`,
		`{"type":"auction_ending_soon","item_id":"i","seq":3}`,
		`{"type":"outbid","item_id":"i","current_bid":4,"seq":4,"timestamp":"2026-01-02T03:04:05Z"}`,
		`{"type":"outbid","item_id":"i","current_bid":3,"seq":3,"timestamp":"2026-01-02T03:04:05Z"}`,
	} {
		v.n += copy(v.buf[v.n:], frame(msg))
	}
	if err := v.consume(published.Add(2*time.Millisecond), r); err != nil {
		t.Fatal(err)
	}
	if got, want := len(v.lat), 3; got != want {
		t.Fatalf("got %d notices, want %d", got, want)
	}
	if got, want := v.lat[0], 2*time.Millisecond; got != want {
		t.Errorf("delivery time %s, want %s", got, want)
	}
	if got, want := v.bad, int64(1); got != want {
		t.Errorf("out of order = %d, want %d for seqs 2, 4, 3", got, want)
	}
	if got, want := r.noticesLeft.Load(), int64(1); got != want {
		t.Errorf("notices left = %d, want %d", got, want)
	}
}
