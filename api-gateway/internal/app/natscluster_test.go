package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/bidding-platform/shared/config"
	"github.com/bidding-platform/shared/models"
	"github.com/bidding-platform/shared/stream"
	"github.com/bidding-platform/shared/testenv"
)

// The gateway on a three-node JetStream cluster with NATS_STREAM_REPLICAS=3
// loses no event when a node dies under steady bidding: first the stream's
// leader, then a follower, then the node the gateway is connected to, each
// killed and started again. No bid fails,
// every accepted bid's event is in the stream exactly once, each item's
// seqs run 1..N, and the outbox empties, which the gateway does only on
// acknowledgements of the replicated stream.
func TestNATSClusterNodeFailures(t *testing.T) {
	t.Parallel()
	r := testenv.Redis(t)
	c := testenv.JetStreamCluster(t)
	loaded, err := LoadConfig(config.FromMap(map[string]string{"NATS_URL": c.URLs(), "NATS_STREAM_REPLICAS": "3", "AUTH_DISABLED": "true"}))
	if err != nil {
		t.Fatal(err)
	}
	if loaded.StreamReplicas != 3 {
		t.Fatalf("NATS_STREAM_REPLICAS=3 read as %d", loaded.StreamReplicas)
	}
	cfg := testConfig([]string{r.Addr()}, false, loaded.NATSURL)
	cfg.StreamReplicas = loaded.StreamReplicas
	g := startGateway(t, cfg)
	js := c.JetStream()

	testenv.WaitFor(t, 2*time.Minute, "the gateway to create the stream on three replicas", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s, err := js.Stream(ctx, stream.Name)
		if err != nil {
			return err
		}
		info := s.CachedInfo()
		if info.Config.Replicas != 3 || info.Cluster == nil || info.Cluster.Leader == "" || len(info.Cluster.Replicas) != 2 {
			return fmt.Errorf("replicas %d, cluster %+v", info.Config.Replicas, info.Cluster)
		}
		return nil
	})

	items := []string{"lot_a", "lot_b", "lot_c"}
	for _, id := range items {
		g.createItem(t, id, "1.00", "0.01")
	}
	b := &clusterBidder{accepted: map[string]acceptedBid{}}

	phases := []struct {
		name   string
		victim func() *testenv.NATSNode
	}{
		{"stream leader", func() *testenv.NATSNode { return c.StreamLeader(stream.Name) }},
		{"follower", func() *testenv.NATSNode {
			leader := c.StreamLeader(stream.Name)
			return c.Nodes[(slices.Index(c.Nodes, leader)+1)%len(c.Nodes)]
		}},
		// Whichever role it has, the gateway loses its connection too and
		// must reconnect to another server before it can publish.
		{"gateway's server", func() *testenv.NATSNode { return gatewayNode(t, c) }},
	}
	for _, ph := range phases {
		ok := t.Run("kill "+ph.name, func(t *testing.T) {
			b.start(g, items, 2)
			stopped := false
			stop := func() {
				if !stopped {
					stopped = true
					b.stop()
				}
			}
			defer stop()
			b.waitAccepted(t, 100)

			victim := ph.victim()
			t.Logf("killing %s (%s; the stream leader is %s) with %d bids accepted",
				victim.Name, ph.name, c.StreamLeader(stream.Name).Name, b.acceptedCount())
			victim.Kill()
			b.waitAccepted(t, 200)
			leader := c.StreamLeader(stream.Name)
			if leader == victim {
				t.Fatalf("stream leader is the killed node %s", victim.Name)
			}
			// Bids accepted once the stream has a leader again must go
			// through it, not wait for the killed node.
			b.waitAccepted(t, 100)
			t.Logf("stream leader %s; starting %s again", leader.Name, victim.Name)
			victim.Start()
			c.WaitReady()
			b.waitAccepted(t, 100)
			stop()

			b.check(t)
			checkOutboxEmpty(t, r, cfg.RedisKeyPrefix, items)
			checkClusterStream(t, js, items, b.snapshot())
			t.Logf("%d bids accepted so far; %s", b.acceptedCount(), metricLine(t, g, "gateway_publish_failures_total"))
		})
		if !ok {
			return
		}
	}
}

type acceptedBid struct {
	item   string
	amount models.Money
}

// clusterBidder places bids at a steady pace, rising on each item, from
// several goroutines, and records every answer.
type clusterBidder struct {
	mu       sync.Mutex
	accepted map[string]acceptedBid // event id -> bid
	bad      []string
	answers  int
	quit     chan struct{}
	wg       sync.WaitGroup
}

// bidPace is each goroutine's pause between bids: steady traffic through
// the failover rather than a flood that a busy machine cannot serve.
const bidPace = 20 * time.Millisecond

func (b *clusterBidder) start(g *gateway, items []string, usersPerItem int) {
	b.quit = make(chan struct{})
	for _, item := range items {
		var mu sync.Mutex
		var ticket int64 = 1000
		for u := range usersPerItem {
			user := fmt.Sprintf("%s_u%d", item, u)
			b.wg.Go(func() {
				t := time.NewTicker(bidPace)
				defer t.Stop()
				for {
					select {
					case <-b.quit:
						return
					case <-t.C:
					}
					mu.Lock()
					ticket++
					amount := models.Money(ticket)
					mu.Unlock()
					a, err := try("POST", g.url+"/api/v1/items/"+item+"/bid", fmt.Sprintf(`{"user_id":%q,"amount":%s}`, user, amount))
					b.mu.Lock()
					b.answers++
					switch {
					case err != nil:
						b.bad = append(b.bad, err.Error())
					case a.Status == http.StatusOK:
						b.accepted[a.str("event_id")] = acceptedBid{item: item, amount: amount}
					case a.Status != http.StatusConflict:
						b.bad = append(b.bad, fmt.Sprintf("%s %s: %d %s", item, amount, a.Status, a.Body))
					}
					b.mu.Unlock()
				}
			})
		}
	}
}

func (b *clusterBidder) stop() {
	close(b.quit)
	b.wg.Wait()
}

func (b *clusterBidder) acceptedCount() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.accepted)
}

func (b *clusterBidder) waitAccepted(t *testing.T, n int) {
	t.Helper()
	target := b.acceptedCount() + n
	testenv.WaitFor(t, 2*time.Minute, fmt.Sprintf("%d more accepted bids", n), func() error {
		if got := b.acceptedCount(); got < target {
			return fmt.Errorf("%d of %d", got, target)
		}
		return nil
	})
}

// check fails the test for every answer other than 200 or 409.
func (b *clusterBidder) check(t *testing.T) {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	for i, s := range b.bad {
		if i == 10 {
			t.Errorf("... and %d more failed bids", len(b.bad)-i)
			break
		}
		t.Errorf("bid failed: %s", s)
	}
	if b.answers == 0 {
		t.Error("no bid was answered")
	}
}

func (b *clusterBidder) snapshot() map[string]acceptedBid {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make(map[string]acceptedBid, len(b.accepted))
	for k, v := range b.accepted {
		out[k] = v
	}
	return out
}

// checkOutboxEmpty waits until every item's outbox in Redis is gone: the
// gateway deletes an entry only once the stream acknowledged its event.
func checkOutboxEmpty(t *testing.T, r *testenv.RedisServer, prefix string, items []string) {
	t.Helper()
	rdb := r.Client()
	testenv.WaitFor(t, 2*time.Minute, "every outbox to be empty", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for _, id := range items {
			n, err := rdb.XLen(ctx, prefix+"item:{"+id+"}:outbox").Result()
			if err != nil {
				return err
			}
			if n != 0 {
				return fmt.Errorf("outbox of %s holds %d entries", id, n)
			}
		}
		return nil
	})
}

// checkClusterStream reads the whole stream and checks it against the
// accepted bids: each accepted event exactly once, nothing else, and each
// item's seqs 1..N.
func checkClusterStream(t *testing.T, js jetstream.JetStream, items []string, accepted map[string]acceptedBid) {
	t.Helper()
	var evs []models.Event
	testenv.WaitFor(t, 2*time.Minute, "the stream to hold every accepted event", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		var err error
		if evs, err = readStream(ctx, js); err != nil {
			return err
		}
		have := make(map[string]bool, len(evs))
		for _, e := range evs {
			have[e.EventID] = true
		}
		for id := range accepted {
			if !have[id] {
				return fmt.Errorf("accepted event %s is not among the stream's %d events", id, len(evs))
			}
		}
		return nil
	})

	seen := map[string]int{}
	seqs := map[string][]uint64{}
	reordered := 0
	for _, e := range evs {
		seen[e.EventID]++
		if seen[e.EventID] == 2 {
			t.Errorf("event %s (item %s, seq %d) is in the stream twice", e.EventID, e.ItemID, e.Seq)
		}
		if e.Type == models.EventBid {
			bid, ok := accepted[e.EventID]
			switch {
			case !ok:
				t.Errorf("event %+v is not a bid answered 200", e)
			case bid.item != e.ItemID || bid.amount != e.Amount:
				t.Errorf("event %+v: the answer was for %s at %s", e, bid.item, bid.amount)
			}
		}
		if s := seqs[e.ItemID]; len(s) > 0 && s[len(s)-1] > e.Seq {
			reordered++
		}
		seqs[e.ItemID] = append(seqs[e.ItemID], e.Seq)
	}
	for _, id := range items {
		s := slices.Clone(seqs[id])
		slices.Sort(s)
		for i, seq := range s {
			if seq != uint64(i+1) {
				t.Errorf("item %s: sorted seqs in the stream %v, want 1..%d", id, compactSeqs(s), len(s))
				break
			}
		}
	}
	// Not a failure: a publish lost with the old leader is republished
	// after later events reached the new one, and readers order by seq.
	t.Logf("stream: %d events, %d stored after a later seq of their item", len(evs), reordered)
}

// readStream reads every message of the stream in stream order through a
// plain pull consumer, which (unlike an ordered consumer) gives up when a
// fetch times out instead of retrying without end.
func readStream(ctx context.Context, js jetstream.JetStream) ([]models.Event, error) {
	s, err := js.Stream(ctx, stream.Name)
	if err != nil {
		return nil, err
	}
	want := int(s.CachedInfo().State.Msgs)
	cons, err := s.CreateConsumer(ctx, jetstream.ConsumerConfig{
		AckPolicy: jetstream.AckNonePolicy, MemoryStorage: true, InactiveThreshold: time.Minute,
	})
	if err != nil {
		return nil, err
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = s.DeleteConsumer(dctx, cons.CachedInfo().Name)
	}()
	out := make([]models.Event, 0, want)
	for len(out) < want {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		batch, err := cons.Fetch(min(want-len(out), 1000), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			return nil, err
		}
		got := 0
		for m := range batch.Messages() {
			got++
			e, err := stream.Decode(m.Subject(), m.Data())
			if err != nil {
				return nil, err
			}
			if h := m.Headers().Get(jetstream.MsgIDHeader); h != e.EventID {
				return nil, fmt.Errorf("Nats-Msg-Id %q on event %s", h, e.EventID)
			}
			out = append(out, e)
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
			return nil, err
		}
		if got == 0 {
			return nil, fmt.Errorf("read %d of %d messages", len(out), want)
		}
	}
	return out, nil
}

// compactSeqs shows a sorted seq list as ranges, for failure messages.
func compactSeqs(s []uint64) string {
	var parts []string
	for i := 0; i < len(s); {
		j := i
		for j+1 < len(s) && s[j+1] == s[j]+1 {
			j++
		}
		if i == j {
			parts = append(parts, strconv.FormatUint(s[i], 10))
		} else {
			parts = append(parts, fmt.Sprintf("%d-%d", s[i], s[j]))
		}
		i = j + 1
	}
	return strings.Join(parts, ",")
}

// gatewayNode is the node the gateway's NATS connection is on, found in
// the nodes' connection lists by its name.
func gatewayNode(t *testing.T, c *testenv.NATSCluster) *testenv.NATSNode {
	t.Helper()
	var node *testenv.NATSNode
	testenv.WaitFor(t, time.Minute, "the gateway's connection on a node", func() error {
		for _, n := range c.Nodes {
			if !n.Running() {
				continue
			}
			resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/connz?limit=1024", n.MonitorPort))
			if err != nil {
				return err
			}
			var connz struct {
				Connections []struct {
					Name string `json:"name"`
				} `json:"connections"`
			}
			err = json.NewDecoder(resp.Body).Decode(&connz)
			resp.Body.Close()
			if err != nil {
				return fmt.Errorf("%s /connz: %w", n.Name, err)
			}
			for _, conn := range connz.Connections {
				if conn.Name == Service {
					node = n
					return nil
				}
			}
		}
		return errors.New("no node lists a connection named " + Service)
	})
	return node
}

// metricLine is the gateway's /metrics line for name, for the test's log.
func metricLine(t *testing.T, g *gateway, name string) string {
	t.Helper()
	a := do(t, "GET", g.url+"/metrics", "")
	if a.Status != http.StatusOK {
		return fmt.Sprintf("/metrics answered %d %q", a.Status, a.Body)
	}
	for _, line := range strings.Split(string(a.Body), "\n") {
		if strings.HasPrefix(line, name+" ") {
			return line
		}
	}
	return name + " absent"
}
