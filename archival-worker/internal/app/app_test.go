package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/bidding-platform/archival-worker/internal/app"
	"github.com/bidding-platform/archival-worker/internal/consumer"
	"github.com/bidding-platform/shared/config"
	"github.com/bidding-platform/shared/models"
	"github.com/bidding-platform/shared/stream"
	"github.com/bidding-platform/shared/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// worker runs the real wiring in-process on ":0" and stops it at test end.
type worker struct {
	addr string
	stop func() error
}

func startWorker(t *testing.T, natsURL, pgURL string) *worker {
	t.Helper()
	return startWorkerWith(t, natsURL, pgURL, nil)
}

// startWorkerWith is startWorker with mod applied to the configuration.
func startWorkerWith(t *testing.T, natsURL, pgURL string, mod func(*app.Config)) *worker {
	t.Helper()
	cfg := app.DefaultConfig()
	cfg.NATSURL, cfg.PostgresURL, cfg.HTTPAddr = natsURL, config.Secret(pgURL), "127.0.0.1:0"
	// Messages in flight when a server dies come back after this.
	cfg.AckWait = 3 * time.Second
	if mod != nil {
		mod(&cfg)
	}
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx, cancel := context.WithCancel(context.Background())
	a, err := app.New(ctx, cfg, log)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	stopped := false
	var runErr error
	w := &worker{addr: a.Addr(), stop: func() error {
		if !stopped {
			stopped = true
			cancel()
			runErr = <-done
		}
		return runErr
	}}
	t.Cleanup(func() { _ = w.stop() })
	return w
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// history makes items×perItem bid events, seq 1..perItem per item.
func history(items, perItem int) []models.Event {
	var out []models.Event
	base := time.Now().UTC()
	for s := 1; s <= perItem; s++ {
		for i := range items {
			item := fmt.Sprintf("item_%03d", i)
			out = append(out, models.Event{
				Type: models.EventBid, EventID: models.NewEventID(), ItemID: item, BidID: models.NewBidID(),
				UserID: fmt.Sprintf("user_%d", rand.N(50)), Amount: models.Money(10000 + 100*s),
				PreviousBid: models.Money(10000 + 100*(s-1)), Seq: uint64(s),
				Timestamp: base.Add(time.Duration(s) * time.Millisecond), BidCount: int64(s),
			})
		}
	}
	return out
}

// withDuplicates returns evs with a share of them repeated later, and a few
// neighbours swapped so that they arrive out of order.
func withDuplicates(evs []models.Event, share float64) []models.Event {
	out := append([]models.Event(nil), evs...)
	for i := 0; i+1 < len(out); i += 97 {
		out[i], out[i+1] = out[i+1], out[i]
	}
	n := int(float64(len(evs)) * share)
	for _, i := range rand.Perm(len(evs))[:n] {
		at := i + 1 + rand.N(len(out)-i)
		out = append(out[:at], append([]models.Event{evs[i]}, out[at:]...)...)
	}
	return out
}

// publish sends events as the gateway does. A repeated event id gets a
// different Nats-Msg-Id, so JetStream stores the repeat instead of
// deduplicating it: the archive must do that itself.
func publish(t *testing.T, js jetstream.JetStream, evs []models.Event) {
	t.Helper()
	seen := map[string]int{}
	for _, e := range evs {
		b, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		seen[e.EventID]++
		msg := nats.NewMsg(stream.Subject(e.ItemID))
		msg.Data = b
		msg.Header.Set(jetstream.MsgIDHeader, fmt.Sprintf("%s-%d", e.EventID, seen[e.EventID]))
		if _, err := js.PublishMsgAsync(msg); err != nil {
			t.Fatalf("publish: %v", err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(60 * time.Second):
		t.Fatal("publishes not acknowledged within 60s")
	}
}

func publishRaw(t *testing.T, js jetstream.JetStream, subject string, data []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := js.Publish(ctx, subject, data); err != nil {
		t.Fatalf("publish: %v", err)
	}
}

func ensureStream(t *testing.T, js jetstream.JetStream) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := stream.Ensure(ctx, js, 1); err != nil {
		t.Fatal(err)
	}
}

// drained says whether the durable consumer has delivered and had
// acknowledged every message in the stream.
func drained(js jetstream.JetStream) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	c, err := js.Consumer(ctx, stream.Name, consumer.Durable)
	if err != nil {
		return err
	}
	info, err := c.Info(ctx)
	if err != nil {
		return err
	}
	if info.NumPending != 0 || info.NumAckPending != 0 {
		return fmt.Errorf("%d pending, %d awaiting ack", info.NumPending, info.NumAckPending)
	}
	return nil
}

func query(t *testing.T, url string, fn func(conn *pgx.Conn) error) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	return fn(conn)
}

func countBids(t *testing.T, url string) (int, error) {
	var n int
	err := query(t, url, func(c *pgx.Conn) error {
		return c.QueryRow(context.Background(), "SELECT count(*) FROM bids").Scan(&n)
	})
	return n, err
}

// checkArchive asserts that the bids table holds exactly evs, once each,
// and that every item's row reflects its highest seq.
func checkArchive(t *testing.T, url string, evs []models.Event) {
	t.Helper()
	want := map[string]models.Event{}
	top := map[string]models.Event{}
	for _, e := range evs {
		want[e.EventID] = e
		if e.Seq > top[e.ItemID].Seq {
			top[e.ItemID] = e
		}
	}
	err := query(t, url, func(c *pgx.Conn) error {
		ctx := context.Background()
		rows, err := c.Query(ctx, "SELECT event_id, item_id, amount_cents, seq FROM bids")
		if err != nil {
			return err
		}
		got := map[string]bool{}
		for rows.Next() {
			var id, item string
			var cents, seq int64
			if err := rows.Scan(&id, &item, &cents, &seq); err != nil {
				return err
			}
			if got[id] {
				t.Errorf("event %s archived twice", id)
			}
			got[id] = true
			w, ok := want[id]
			if !ok {
				t.Errorf("unexpected event %s archived", id)
				continue
			}
			if item != w.ItemID || cents != int64(w.Amount) || seq != int64(w.Seq) {
				t.Errorf("event %s = (%s, %d cents, seq %d), want (%s, %d, %d)", id, item, cents, seq, w.ItemID, w.Amount, w.Seq)
			}
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if len(got) != len(want) {
			t.Errorf("archived %d distinct events, want %d", len(got), len(want))
		}
		for item, e := range top {
			var seq, cents int64
			if err := c.QueryRow(ctx, "SELECT seq, current_cents FROM items WHERE item_id = $1", item).Scan(&seq, &cents); err != nil {
				return fmt.Errorf("item %s: %w", item, err)
			}
			if seq != int64(e.Seq) || cents != int64(e.Amount) {
				t.Errorf("item %s at seq %d, %d cents; want seq %d, %d cents", item, seq, cents, e.Seq, e.Amount)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func get(addr, path string) (int, string, error) {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + addr + path)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func TestArchivesEveryEventOnceDespiteDuplicatesAndDisorder(t *testing.T) {
	t.Parallel()
	ns := testenv.NATS(t)
	pgURL := testenv.PostgresDB(t)
	js := ns.JetStream()
	w := startWorker(t, ns.URL(), pgURL)

	evs := history(20, 500) // 10,000 events
	sent := withDuplicates(evs, 0.05)
	ensureStream(t, js)
	publish(t, js, sent)

	testenv.WaitFor(t, 2*time.Minute, "archive drained", func() error { return drained(js) })
	checkArchive(t, pgURL, evs)

	code, body, err := get(w.addr, "/health")
	if err != nil || code != http.StatusOK || !strings.Contains(body, `"service":"archival-worker"`) {
		t.Errorf("GET /health = %d %s (%v), want 200 naming archival-worker", code, body, err)
	}
	code, body, err = get(w.addr, "/ready")
	if err != nil || code != http.StatusOK {
		t.Errorf("GET /ready = %d %s (%v), want 200", code, body, err)
	}
	_, body, err = get(w.addr, "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"archival_rows_written_total 10000",
		fmt.Sprintf("archival_duplicates_skipped_total %d", len(sent)-len(evs)),
		"archival_consumer_pending_messages 0",
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if err := w.stop(); err != nil {
		t.Errorf("stop: %v", err)
	}
}

func TestPostgresKilledMidStreamLosesNothing(t *testing.T) {
	t.Parallel()
	ns := testenv.NATS(t)
	pg := testenv.Postgres(t)
	pgURL := pg.CreateDB(t)
	js := ns.JetStream()
	w := startWorker(t, ns.URL(), pgURL)
	ensureStream(t, js)

	evs := history(10, 500)
	publish(t, js, evs[:3000])
	waitForFirstRows(t, pgURL)
	pg.Kill()
	publish(t, js, evs[3000:])
	testenv.WaitFor(t, 30*time.Second, "worker reports not ready", func() error {
		code, body, err := get(w.addr, "/ready")
		if err == nil && code != http.StatusServiceUnavailable {
			err = fmt.Errorf("GET /ready = %d %s", code, body)
		}
		return err
	})
	testenv.WaitFor(t, 30*time.Second, "writes retried while down", func() error {
		_, body, err := get(w.addr, "/metrics")
		if err == nil && strings.Contains(body, `archival_batches_total{result="failed"} 0`+"\n") {
			err = fmt.Errorf("no failed batch yet")
		}
		return err
	})
	pg.Start()

	testenv.WaitFor(t, 2*time.Minute, "archive drained", func() error { return drained(js) })
	checkArchive(t, pgURL, evs)
	testenv.WaitFor(t, 10*time.Second, "ready again", func() error {
		code, body, err := get(w.addr, "/ready")
		if err == nil && code != http.StatusOK {
			err = fmt.Errorf("GET /ready = %d %s", code, body)
		}
		return err
	})
}

// buildWorker builds the real binary, for tests that signal the process.
func buildWorker(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "archival-worker")
	build := exec.Command("go", "build", "-o", bin, "../../cmd")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func startBinary(t *testing.T, bin, natsURL, pgURL string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), "NATS_URL="+natsURL, "POSTGRES_URL="+pgURL,
		"HTTP_ADDR=127.0.0.1:0", "LOG_LEVEL=warn", "BATCH_SIZE=200",
		// The killed worker's unacknowledged batches come back after this.
		"ACK_WAIT=3s")
	cmd.Stdout, cmd.Stderr = testWriter{t}, testWriter{t}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd
}

// SIGTERM mid-stream: the worker exits cleanly, and everything it
// acknowledged is in PostgreSQL.
func TestSIGTERMCommitsBeforeExit(t *testing.T) {
	t.Parallel()
	bin := buildWorker(t)
	ns := testenv.NATS(t)
	pgURL := testenv.PostgresDB(t)
	js := ns.JetStream()
	ensureStream(t, js)
	evs := history(20, 500)
	publish(t, js, evs)

	w := startBinary(t, bin, ns.URL(), pgURL)
	testenv.WaitFor(t, time.Minute, "archiving under way", func() error {
		n, err := countBids(t, pgURL)
		if err == nil && n < 1000 {
			err = fmt.Errorf("%d rows", n)
		}
		return err
	})
	if err := w.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := w.Wait(); err != nil {
		t.Fatalf("worker exit after SIGTERM: %v, want status 0", err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cons, err := js.Consumer(ctx, stream.Name, consumer.Durable)
	if err != nil {
		t.Fatal(err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	floor := info.AckFloor.Stream
	if floor == 0 {
		t.Fatal("nothing acknowledged before SIGTERM")
	}
	// Every message up to the ack floor must be archived.
	want := map[string]bool{}
	st, err := js.Stream(ctx, stream.Name)
	if err != nil {
		t.Fatal(err)
	}
	for seq := uint64(1); seq <= floor; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("get message %d: %v", seq, err)
		}
		e, err := stream.Decode(m.Subject, m.Data)
		if err != nil {
			t.Fatal(err)
		}
		want[e.EventID] = true
	}
	err = query(t, pgURL, func(c *pgx.Conn) error {
		rows, err := c.Query(ctx, "SELECT event_id FROM bids")
		if err != nil {
			return err
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
		for _, id := range ids {
			delete(want, id)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(want) > 0 {
		t.Errorf("%d acknowledged events (ack floor %d) are not in PostgreSQL", len(want), floor)
	}
}

func TestWorkerKilledMidBatchLosesNothing(t *testing.T) {
	t.Parallel()
	bin := buildWorker(t)
	ns := testenv.NATS(t)
	pgURL := testenv.PostgresDB(t)
	js := ns.JetStream()
	ensureStream(t, js)

	start := func() *exec.Cmd {
		return startBinary(t, bin, ns.URL(), pgURL)
	}

	evs := history(20, 500)
	publish(t, js, evs)
	first := start()
	testenv.WaitFor(t, time.Minute, "archiving under way", func() error {
		n, err := countBids(t, pgURL)
		if err == nil && n < 1000 {
			err = fmt.Errorf("%d rows", n)
		}
		return err
	})
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = first.Wait()
	n, err := countBids(t, pgURL)
	if err != nil {
		t.Fatal(err)
	}
	if n >= len(evs) {
		t.Skipf("the worker archived all %d events before the kill; nothing to recover", n)
	}
	t.Logf("killed with %d of %d rows archived", n, len(evs))

	start()
	testenv.WaitFor(t, 2*time.Minute, "archive drained", func() error { return drained(js) })
	checkArchive(t, pgURL, evs)
}

func TestMalformedMessageIsDeadLetteredAndTheRestFlows(t *testing.T) {
	t.Parallel()
	ns := testenv.NATS(t)
	pgURL := testenv.PostgresDB(t)
	js := ns.JetStream()
	startWorker(t, ns.URL(), pgURL)
	ensureStream(t, js)

	evs := history(3, 10)
	publish(t, js, evs[:15])
	publishRaw(t, js, "bids.item_000", []byte(`{"type":"bid", not json`))
	publishRaw(t, js, "bids.item_001", []byte(`{"type":"bid","item_id":"item_001","seq":3,"amount":1.00}`))
	publishRaw(t, js, "bids.item_002", []byte(`{"type":"bid","event_id":"evt_x","item_id":"item_002","bid_id":"b","user_id":"u","seq":1,"amount":1.234,"timestamp":"2024-01-01T00:00:00Z"}`))
	// A valid event that PostgreSQL refuses (text cannot hold NUL, and the
	// contract does not restrict bid ids): found by isolating it from its
	// batch.
	publishRaw(t, js, "bids.item_002", []byte(`{"type":"bid","event_id":"evt_nul","item_id":"item_002","bid_id":"b\u0000x","user_id":"u","seq":99,"amount":5.00,"timestamp":"2024-01-01T00:00:00Z"}`))
	publish(t, js, evs[15:])

	testenv.WaitFor(t, time.Minute, "archive drained", func() error { return drained(js) })
	checkArchive(t, pgURL, evs)
	err := query(t, pgURL, func(c *pgx.Conn) error {
		rows, err := c.Query(context.Background(), "SELECT subject, reason FROM dead_letters ORDER BY stream_seq")
		if err != nil {
			return err
		}
		var got []string
		for rows.Next() {
			var subject, reason string
			if err := rows.Scan(&subject, &reason); err != nil {
				return err
			}
			// Who refused it: the shared decoder, or PostgreSQL.
			by := "decoder"
			switch {
			case strings.HasPrefix(reason, "rejected by postgres"):
				by = "postgres"
			case !strings.Contains(reason, "invalid event"):
				t.Errorf("dead letter on %s has reason %q, want the decoder's or PostgreSQL's", subject, reason)
			}
			got = append(got, subject+" by "+by)
		}
		want := []string{"bids.item_000 by decoder", "bids.item_001 by decoder", "bids.item_002 by decoder", "bids.item_002 by postgres"}
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("dead letters %v, want %v", got, want)
		}
		return rows.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestNATSRestartedMidStreamLosesNothing(t *testing.T) {
	t.Parallel()
	ns := testenv.NATS(t)
	pgURL := testenv.PostgresDB(t)
	js := ns.JetStream()
	startWorker(t, ns.URL(), pgURL)
	ensureStream(t, js)

	evs := history(10, 300)
	publish(t, js, evs[:1500])
	waitForFirstRows(t, pgURL)
	ns.Restart()
	publish(t, js, evs[1500:])
	testenv.WaitFor(t, 2*time.Minute, "archive drained", func() error { return drained(js) })
	checkArchive(t, pgURL, evs)
}

// Two workers share the durable consumer; together they archive each event
// once, and each of them does part of the work.
func TestTwoWorkersShareTheConsumer(t *testing.T) {
	t.Parallel()
	ns := testenv.NATS(t)
	pgURL := testenv.PostgresDB(t)
	js := ns.JetStream()
	ensureStream(t, js)
	a := startWorker(t, ns.URL(), pgURL)
	b := startWorker(t, ns.URL(), pgURL)

	evs := history(20, 250)
	publish(t, js, withDuplicates(evs, 0.05))
	testenv.WaitFor(t, 2*time.Minute, "archive drained", func() error { return drained(js) })
	checkArchive(t, pgURL, evs)
	for name, w := range map[string]*worker{"a": a, "b": b} {
		_, body, err := get(w.addr, "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(body, "archival_batches_total{result=\"committed\"}") ||
			strings.Contains(body, "archival_batches_total{result=\"committed\"} 0\n") {
			t.Errorf("worker %s committed no batch", name)
		}
	}
}

// The worker may start before PostgreSQL: it reports not ready, migrates
// once PostgreSQL is up, then archives.
func TestStartsBeforePostgres(t *testing.T) {
	t.Parallel()
	ns := testenv.NATS(t)
	pg := testenv.Postgres(t)
	pgURL := pg.CreateDB(t)
	pg.Stop()
	js := ns.JetStream()
	w := startWorker(t, ns.URL(), pgURL)
	code, body, err := get(w.addr, "/ready")
	if err != nil || code != http.StatusServiceUnavailable || !strings.Contains(body, "schema") {
		t.Errorf("GET /ready with PostgreSQL down = %d %s (%v), want 503 naming the schema", code, body, err)
	}
	ensureStream(t, js)
	evs := history(5, 100)
	publish(t, js, evs)
	pg.Start()
	testenv.WaitFor(t, time.Minute, "archive drained", func() error { return drained(js) })
	checkArchive(t, pgURL, evs)
	testenv.WaitFor(t, 10*time.Second, "ready", func() error {
		code, body, err := get(w.addr, "/ready")
		if err == nil && code != http.StatusOK {
			err = fmt.Errorf("GET /ready = %d %s", code, body)
		}
		return err
	})
}

// waitForFirstRows waits until the worker has committed something, so that a
// fault injected next hits it mid-stream.
func waitForFirstRows(t *testing.T, pgURL string) {
	t.Helper()
	testenv.WaitFor(t, time.Minute, "first rows archived", func() error {
		n, err := countBids(t, pgURL)
		if err == nil && n == 0 {
			err = fmt.Errorf("no rows yet")
		}
		return err
	})
}
