package testenv

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// NATSCluster is a JetStream cluster of three nats-server child processes,
// as production runs it: a stream with three replicas acknowledges a publish
// once two servers stored it, and keeps working while any one is down.
//
// The servers keep nats-server's default sync_interval: JetStream flushes
// its files to disk every two minutes, not before each acknowledgement.
// That is the setting the README recommends for nodes that fail on their
// own: an acknowledged message is held by two nodes, so killing any one
// loses no copy that matters. Only losing every node's memory at once (a
// power cut of the whole cluster) would need sync_interval: always, and no
// test simulates that.
type NATSCluster struct {
	Nodes []*NATSNode
	tb    testing.TB
}

// NATSNode is one server of a NATSCluster. Kill and Start leave its store
// in place, as a crashed machine's disk would be.
type NATSNode struct {
	// Name is the server's name, which JetStream reports as a stream's
	// or the cluster's leader.
	Name        string
	Port        int
	ClusterPort int
	// MonitorPort serves /healthz and /jsz, which readiness reads.
	MonitorPort int
	p           *process
	tb          testing.TB
}

// clusterSize is three: the smallest cluster that keeps a majority (and so
// accepts writes to a three-replica stream) with one server down.
const clusterSize = 3

// clusterReadyTimeout is generous because the machine running tests is
// busy, and JetStream waits seconds for missed heartbeats before electing.
const clusterReadyTimeout = 90 * time.Second

// JetStreamCluster starts a three-node JetStream cluster for this test and
// returns once it has elected a meta leader that every node agrees on.
func JetStreamCluster(tb testing.TB) *NATSCluster {
	tb.Helper()
	bin, err := findBinary("nats-server", "/usr/bin/nats-server", "/usr/local/bin/nats-server")
	if err != nil {
		tb.Fatalf("testenv: %v", err)
	}
	// Every port is chosen before any server starts: each one's routes
	// name the others' cluster ports.
	ports := make([]int, 3*clusterSize)
	for i := range ports {
		if ports[i], err = freePort(); err != nil {
			tb.Fatalf("testenv: %v", err)
		}
	}
	c := &NATSCluster{tb: tb}
	for i := range clusterSize {
		c.Nodes = append(c.Nodes, &NATSNode{
			Name: "n" + strconv.Itoa(i), Port: ports[3*i], ClusterPort: ports[3*i+1], MonitorPort: ports[3*i+2], tb: tb,
		})
	}
	for _, n := range c.Nodes {
		var routes []string
		for _, o := range c.Nodes {
			if o != n {
				routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", o.ClusterPort))
			}
		}
		dir := tb.TempDir()
		n.p = &process{
			name: "nats-" + n.Name + "-" + strconv.Itoa(n.Port), bin: bin, dir: dir, stopSignal: syscall.SIGTERM,
			args: []string{
				"-a", "127.0.0.1", "-p", strconv.Itoa(n.Port), "-m", strconv.Itoa(n.MonitorPort),
				"-n", n.Name, "-js", "-sd", filepath.Join(dir, "jetstream"),
				"--cluster_name", "testenv", "--cluster", fmt.Sprintf("nats://127.0.0.1:%d", n.ClusterPort),
				"--routes", strings.Join(routes, ","),
			},
		}
		tb.Cleanup(n.p.kill)
		if err := n.p.start(); err != nil {
			tb.Fatalf("testenv: %v", err)
		}
	}
	if err := waitFor(clusterReadyTimeout, c.ready); err != nil {
		tb.Fatalf("testenv: nats cluster: %v\n%s", err, c.logTails())
	}
	return c
}

// URLs lists every node's client URL, comma-separated, as NATS_URL takes
// them: a client fails over to another node when its own goes.
func (c *NATSCluster) URLs() string {
	urls := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		urls[i] = n.URL()
	}
	return strings.Join(urls, ",")
}

// Node returns the node with the given server name, or nil.
func (c *NATSCluster) Node(name string) *NATSNode {
	for _, n := range c.Nodes {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// WaitReady waits until every running node is healthy (it has joined the
// meta group and its streams are current) and all of them name the same
// meta leader, which is running.
func (c *NATSCluster) WaitReady() {
	c.tb.Helper()
	if err := waitFor(clusterReadyTimeout, c.ready); err != nil {
		c.tb.Fatalf("testenv: nats cluster: %v\n%s", err, c.logTails())
	}
}

func (c *NATSCluster) ready() error {
	leader := ""
	for _, n := range c.Nodes {
		if !n.p.running() {
			continue
		}
		if err := n.healthy(); err != nil {
			return err
		}
		l, err := n.metaLeader()
		if err != nil {
			return err
		}
		if leader != "" && l != leader {
			return fmt.Errorf("nodes disagree on the meta leader: %s and %s", leader, l)
		}
		leader = l
	}
	if leader == "" {
		return errors.New("no node is running")
	}
	if l := c.Node(leader); l == nil || !l.p.running() {
		return fmt.Errorf("meta leader %s is not running", leader)
	}
	return nil
}

// StreamLeader waits until the named stream has a leader on a running node
// and returns that node.
func (c *NATSCluster) StreamLeader(stream string) *NATSNode {
	c.tb.Helper()
	var leader *NATSNode
	err := waitFor(clusterReadyTimeout, func() error {
		name, err := c.streamLeader(stream)
		if err != nil {
			return err
		}
		if leader = c.Node(name); leader == nil || !leader.p.running() {
			return fmt.Errorf("stream %s: leader %q is not a running node", stream, name)
		}
		return nil
	})
	if err != nil {
		c.tb.Fatalf("testenv: leader of stream %s: %v", stream, err)
	}
	return leader
}

func (c *NATSCluster) streamLeader(stream string) (string, error) {
	nc, err := nats.Connect(c.URLs(), nats.Timeout(time.Second), nats.NoReconnect())
	if err != nil {
		return "", err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return "", err
	}
	info := s.CachedInfo()
	if info.Cluster == nil || info.Cluster.Leader == "" {
		return "", fmt.Errorf("stream %s has no leader", stream)
	}
	return info.Cluster.Leader, nil
}

// Conn connects a client to the whole cluster; it is closed at test end.
func (c *NATSCluster) Conn() *nats.Conn {
	c.tb.Helper()
	nc, err := nats.Connect(c.URLs(), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		c.tb.Fatalf("testenv: connect nats cluster: %v", err)
	}
	c.tb.Cleanup(nc.Close)
	return nc
}

// JetStream returns a JetStream context on a new connection to the cluster.
func (c *NATSCluster) JetStream() jetstream.JetStream {
	c.tb.Helper()
	js, err := jetstream.New(c.Conn())
	if err != nil {
		c.tb.Fatalf("testenv: jetstream: %v", err)
	}
	return js
}

func (c *NATSCluster) logTails() string {
	var b strings.Builder
	for _, n := range c.Nodes {
		fmt.Fprintf(&b, "--- %s\n%s\n", n.Name, n.p.logTail())
	}
	return b.String()
}

// URL is the node's client URL.
func (n *NATSNode) URL() string { return fmt.Sprintf("nats://127.0.0.1:%d", n.Port) }

// Kill ends the server with SIGKILL. Its store stays.
func (n *NATSNode) Kill() { n.p.kill() }

// Stop shuts the server down cleanly.
func (n *NATSNode) Stop() { n.p.stop() }

// Pause freezes the server (SIGSTOP): its peers see it stop answering.
func (n *NATSNode) Pause() { n.p.signal(syscall.SIGSTOP, 0) }

// Resume undoes Pause.
func (n *NATSNode) Resume() { n.p.signal(syscall.SIGCONT, 0) }

// Start starts a stopped or killed node again on the same ports and store,
// and waits until it is healthy: back in the meta group, with its streams
// caught up with their leaders.
func (n *NATSNode) Start() {
	n.tb.Helper()
	if err := n.p.start(); err != nil {
		n.tb.Fatalf("testenv: %v", err)
	}
	if err := waitFor(clusterReadyTimeout, n.healthy); err != nil {
		n.tb.Fatalf("testenv: nats %s on %d: %v\n%s", n.Name, n.Port, err, n.p.logTail())
	}
}

// Restart kills the node and starts it again.
func (n *NATSNode) Restart() {
	n.tb.Helper()
	n.Kill()
	n.Start()
}

// Running reports whether the node's process is alive.
func (n *NATSNode) Running() bool { return n.p.running() }

// healthy asks the node's /healthz, which answers ok only once the node is
// in contact with a meta leader and its streams and consumers are current.
func (n *NATSNode) healthy() error {
	if !n.p.running() {
		return fmt.Errorf("%s: %w", n.Name, errNotRunning)
	}
	var h struct {
		Status string `json:"status"`
		Error  string `json:"error"`
	}
	if err := n.monitor("/healthz", &h); err != nil {
		return err
	}
	if h.Status != "ok" {
		return fmt.Errorf("%s: %s: %s", n.Name, h.Status, h.Error)
	}
	return nil
}

// metaLeader is the name of the meta leader the node knows of.
func (n *NATSNode) metaLeader() (string, error) {
	var jsz struct {
		Meta *struct {
			Leader string `json:"leader"`
		} `json:"meta_cluster"`
	}
	if err := n.monitor("/jsz", &jsz); err != nil {
		return "", err
	}
	if jsz.Meta == nil || jsz.Meta.Leader == "" {
		return "", fmt.Errorf("%s knows no meta leader", n.Name)
	}
	return jsz.Meta.Leader, nil
}

var monitorClient = &http.Client{Timeout: 2 * time.Second}

func (n *NATSNode) monitor(path string, v any) error {
	resp, err := monitorClient.Get(fmt.Sprintf("http://127.0.0.1:%d%s", n.MonitorPort, path))
	if err != nil {
		return fmt.Errorf("%s: %w", n.Name, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("%s %s: %w", n.Name, path, err)
	}
	// /healthz answers 503 with a JSON reason, which is worth reporting.
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s %s: %d %s", n.Name, path, resp.StatusCode, b)
	}
	return nil
}
