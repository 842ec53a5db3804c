package app

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/bidding-platform/shared/stream"
	"github.com/bidding-platform/shared/testenv"
)

// A full stream refuses new events instead of dropping old ones. Bids are
// still answered; their events wait in the outbox, the gateway reports the
// stream as full (once in its log, and in its metrics) and keeps probing;
// once room is made every event reaches JetStream exactly once, in seq
// order, and nothing the stream held was lost.
func TestFullStreamKeepsEventsInTheOutboxUntilThereIsRoom(t *testing.T) {
	t.Parallel()
	r := testenv.Redis(t)
	n := testenv.NATS(t)
	var logs testenv.LogBuffer
	g := startGatewayLog(t, testConfig([]string{r.Addr()}, false, n.URL()),
		slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo})))
	js := n.JetStream()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	g.createItem(t, "lot", "1.00", "1.00")
	var ids []string
	bid := func() {
		t.Helper()
		amount := fmt.Sprintf("%d.00", len(ids)+2)
		a := g.bid(t, "lot", "user_1", amount)
		if a.Status != http.StatusOK || a.str("event_id") == "" {
			t.Fatalf("bid %s = %d %s, want 200 with an event id", amount, a.Status, a.Body)
		}
		ids = append(ids, a.str("event_id"))
	}
	bid()
	waitEvents(t, js, "lot", 1)

	// Other items' history fills the stream; then it is made full: its
	// message limit (the real policy's backstop) lowered to what it holds.
	// Nothing held is deleted by that.
	for i := range 20 {
		if _, err := js.Publish(ctx, stream.Subject("filler"), []byte(`{}`), jetstream.WithMsgID(fmt.Sprint("filler_", i))); err != nil {
			t.Fatal(err)
		}
	}
	s, err := js.Stream(ctx, stream.Name)
	if err != nil {
		t.Fatal(err)
	}
	var held uint64
	fill := func() error {
		info, err := s.Info(ctx)
		if err != nil {
			return err
		}
		cfg := info.Config
		cfg.MaxMsgs, held = int64(info.State.Msgs), info.State.Msgs
		_, err = js.UpdateStream(ctx, cfg)
		return err
	}
	if err := fill(); err != nil {
		t.Fatal(err)
	}

	const waiting = 8
	for range waiting {
		bid()
	}
	refusedSoFar := 0.0
	testenv.WaitFor(t, time.Minute, "the gateway to report the full stream and keep the events in its outbox", func() error {
		info, err := s.Info(ctx, jetstream.WithSubjectFilter(stream.Subject("lot")))
		if err != nil {
			return err
		}
		if info.Config.MaxMsgs != int64(held) || info.State.Msgs != held {
			// The stream was ensured back to its real limits before the
			// gateway met the full stream (a start-up race): fill it again.
			return fmt.Errorf("stream at %d of %d messages, refilled: %w", info.State.Msgs, info.Config.MaxMsgs, fill())
		}
		m := metrics(t, g)
		refusedSoFar = m[`gateway_publish_refused_total{reason="max_msgs"}`]
		inStream := int(info.State.Subjects[stream.Subject("lot")])
		if m["gateway_stream_full"] != 1 || refusedSoFar == 0 || int(m["gateway_outbox_backlog"]) != len(ids)-inStream {
			return fmt.Errorf("stream_full %v, refused %v, outbox %v with %d of %d events in the stream",
				m["gateway_stream_full"], refusedSoFar, m["gateway_outbox_backlog"], inStream, len(ids))
		}
		return nil
	})
	// The relay goes on probing while the stream is full, and the log
	// says so once.
	testenv.WaitFor(t, time.Minute, "more refused probes", func() error {
		if got := metrics(t, g)[`gateway_publish_refused_total{reason="max_msgs"}`]; got < refusedSoFar+2 {
			return fmt.Errorf("%v refused", got)
		}
		return nil
	})
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.FirstSeq != 1 || info.State.Msgs != held {
		t.Errorf("full stream holds %d messages from seq %d, want the %d it had from seq 1", info.State.Msgs, info.State.FirstSeq, held)
	}
	if got := logLines(&logs, "the event stream is full"); got != 1 {
		t.Errorf("%d warnings about the full stream, want 1:\n%s", got, logs.String())
	}

	// Room, as the archival worker's purge makes it; bids go on meanwhile.
	if err := s.Purge(ctx, jetstream.WithPurgeSubject(stream.Subject("filler"))); err != nil {
		t.Fatal(err)
	}
	bid()
	bid()
	evs := waitEvents(t, js, "lot", len(ids))
	stored, err := testenv.StreamEvents(ctx, js, "lot") // in stream order
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range stored {
		if e.Seq != uint64(i+1) || e.EventID != ids[i] || evs[i].EventID != ids[i] {
			t.Errorf("stream event %d = seq %d %s, want seq %d %s (every accepted event once, in order)", i, e.Seq, e.EventID, i+1, ids[i])
		}
	}
	testenv.WaitFor(t, 30*time.Second, "the alarm to clear and the outbox to drain", func() error {
		m := metrics(t, g)
		if m["gateway_stream_full"] != 0 || m["gateway_outbox_backlog"] != 0 {
			return fmt.Errorf("stream_full %v, outbox %v", m["gateway_stream_full"], m["gateway_outbox_backlog"])
		}
		return nil
	})
	if got := logLines(&logs, "the event stream is full"); got != 1 {
		t.Errorf("%d warnings about the full stream, want 1", got)
	}
	if got := logLines(&logs, "the event stream accepts events again"); got != 1 {
		t.Errorf("%d notes that the stream accepts events again, want 1", got)
	}
}

var sample = regexp.MustCompile(`^([a-z_]+(?:\{[^}]*\})?) (\S+)$`)

// metrics reads the gateway's /metrics into series → value.
func metrics(t *testing.T, g *gateway) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for _, line := range strings.Split(string(do(t, "GET", g.url+"/metrics", "").Body), "\n") {
		if m := sample.FindStringSubmatch(line); m != nil {
			if v, err := strconv.ParseFloat(m[2], 64); err == nil {
				out[m[1]] = v
			}
		}
	}
	return out
}

// logLines counts the log lines whose message starts with prefix.
func logLines(logs *testenv.LogBuffer, prefix string) int {
	n := 0
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, `"msg":"`+prefix) {
			n++
		}
	}
	return n
}
