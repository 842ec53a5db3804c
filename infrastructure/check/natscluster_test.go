package check

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// natsCluster starts n nats-server processes that form one JetStream cluster
// on loopback ports, each with its store in its own temporary folder, as the
// compose file and the ECS services run NATS. It returns the client URLs as
// one comma-separated NATS_URL once every node's /healthz answers 200: a
// JetStream meta leader is elected and the node is current with it. conf,
// when not empty, is every node's configuration file (such as its users).
func natsCluster(t *testing.T, n int, conf string) string {
	t.Helper()
	bin, err := exec.LookPath("nats-server")
	if err != nil {
		t.Fatalf("nats-server not installed (scripts/install-deps.sh installs it): %v", err)
	}
	type node struct {
		name                   string
		client, route, monitor string // host:port
		cmd                    *exec.Cmd
		exited                 chan error // closed when the process has exited
	}
	var confArgs []string
	if conf != "" {
		file := filepath.Join(t.TempDir(), "nats.conf")
		if err := os.WriteFile(file, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		confArgs = []string{"-c", file}
	}
	nodes := make([]*node, n)
	var routes, urls []string
	for i := range nodes {
		nd := &node{name: "node-" + strconv.Itoa(i+1), client: freeAddr(t), route: freeAddr(t), monitor: freeAddr(t)}
		nodes[i] = nd
		routes = append(routes, "nats://"+nd.route)
		urls = append(urls, "nats://"+nd.client)
	}
	for _, nd := range nodes {
		args := []string{
			"-a", "127.0.0.1", "-p", port(t, nd.client), "-m", port(t, nd.monitor),
			"-n", nd.name, "-js", "-sd", filepath.Join(t.TempDir(), "jetstream"),
			"--cluster_name", "check", "--cluster", "nats://" + nd.route,
			// Every node lists all of them; a node skips the route to itself.
			"--routes", strings.Join(routes, ","),
		}
		args = append(args, confArgs...)
		logs := &lineLog{t: t, prefix: nd.name}
		nd.cmd = exec.Command(bin, args...)
		nd.cmd.Stdout, nd.cmd.Stderr = logs, logs
		if err := nd.cmd.Start(); err != nil {
			t.Fatalf("start %s: %v", nd.name, err)
		}
		nd.exited = make(chan error)
		go func() {
			_ = nd.cmd.Wait() // the log above says why, if it matters
			close(nd.exited)
		}()
		t.Cleanup(func() {
			_ = nd.cmd.Process.Kill()
			<-nd.exited
		})
	}
	for _, nd := range nodes {
		if err := waitOK("http://"+nd.monitor+"/healthz", nd.exited, 60*time.Second); err != nil {
			t.Fatalf("nats cluster %s: %v", nd.name, err)
		}
	}
	return strings.Join(urls, ",")
}

// port is the port of a host:port address.
func port(tb testing.TB, addr string) string {
	tb.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		tb.Fatal(fmt.Errorf("split %s: %w", addr, err))
	}
	return p
}
