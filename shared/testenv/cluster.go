package testenv

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// RedisCluster is a real Redis Cluster of three masters (no replicas), each
// owning a third of the 16384 hash slots, like ElastiCache in cluster mode.
type RedisCluster struct {
	Nodes    []*RedisServer
	busPorts []int
	tb       testing.TB
}

// Cluster starts a three-master Redis Cluster for this test.
func Cluster(tb testing.TB) *RedisCluster {
	tb.Helper()
	const masters = 3
	c := &RedisCluster{tb: tb}
	for i := 0; i < masters; i++ {
		busPort, err := freePort()
		if err != nil {
			tb.Fatalf("testenv: %v", err)
		}
		node := startRedis(tb, tb.TempDir(), []string{
			"cluster-enabled yes",
			"cluster-config-file nodes.conf",
			"cluster-node-timeout 2000",
			// An explicit bus port instead of port+10000, which may be taken.
			"cluster-port " + strconv.Itoa(busPort),
			"cluster-require-full-coverage no",
		}, nil)
		c.Nodes = append(c.Nodes, node)
		c.busPorts = append(c.busPorts, busPort)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.form(ctx); err != nil {
		tb.Fatalf("testenv: form redis cluster: %v", err)
	}
	return c
}

func (c *RedisCluster) form(ctx context.Context) error {
	const slots = 16384
	per := slots / len(c.Nodes)
	clients := make([]*goredis.Client, len(c.Nodes))
	for i, n := range c.Nodes {
		clients[i] = goredis.NewClient(&goredis.Options{Addr: n.Addr()})
		defer clients[i].Close()
	}
	for i, cl := range clients {
		first, last := i*per, (i+1)*per-1
		if i == len(clients)-1 {
			last = slots - 1
		}
		if err := cl.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", first, last).Err(); err != nil {
			return fmt.Errorf("addslots on %s: %w", c.Nodes[i].Addr(), err)
		}
	}
	for i := 1; i < len(clients); i++ {
		if err := clients[0].Do(ctx, "CLUSTER", "MEET", "127.0.0.1", c.Nodes[i].Port, c.busPorts[i]).Err(); err != nil {
			return fmt.Errorf("meet %s: %w", c.Nodes[i].Addr(), err)
		}
	}
	return c.waitHealthy(ctx, clients)
}

// waitHealthy waits until every node sees all masters and all slots served.
func (c *RedisCluster) waitHealthy(ctx context.Context, clients []*goredis.Client) error {
	return waitFor(30*time.Second, func() error {
		for i, cl := range clients {
			info, err := cl.ClusterInfo(ctx).Result()
			if err != nil {
				return err
			}
			if !strings.Contains(info, "cluster_state:ok") || !strings.Contains(info, fmt.Sprintf("cluster_known_nodes:%d", len(clients))) {
				return fmt.Errorf("node %s: %s", c.Nodes[i].Addr(), firstLines(info, 6))
			}
		}
		return nil
	})
}

// Addrs lists every node's host:port, as a cluster client's seed list.
func (c *RedisCluster) Addrs() []string {
	out := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		out[i] = n.Addr()
	}
	return out
}

// Client returns a cluster-aware go-redis client, closed at test end.
func (c *RedisCluster) Client() *goredis.ClusterClient {
	cl := goredis.NewClusterClient(&goredis.ClusterOptions{Addrs: c.Addrs()})
	c.tb.Cleanup(func() { cl.Close() })
	return cl
}

// RestartNode kills node i and starts it again on the same ports. It keeps
// its slots (nodes.conf survives) but, having no persistence, loses its keys.
func (c *RedisCluster) RestartNode(i int) {
	c.tb.Helper()
	c.Nodes[i].Restart()
	clients := make([]*goredis.Client, len(c.Nodes))
	for j, n := range c.Nodes {
		clients[j] = goredis.NewClient(&goredis.Options{Addr: n.Addr()})
		defer clients[j].Close()
	}
	if err := c.waitHealthy(context.Background(), clients); err != nil {
		c.tb.Fatalf("testenv: cluster after restarting node %d: %v", i, err)
	}
}

func firstLines(s string, n int) string {
	lines := strings.SplitN(s, "\n", n+1)
	if len(lines) > n {
		lines = lines[:n]
	}
	return strings.Join(lines, " ")
}
