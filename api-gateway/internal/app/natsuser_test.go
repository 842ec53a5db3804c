package app

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/bidding-platform/shared/config"
	"github.com/bidding-platform/shared/natsconn"
	"github.com/bidding-platform/shared/testenv"
)

// TestGatewayAsItsNATSUser: with the NATS users the deployments ship, the
// gateway does all of its NATS work as its own user: it creates the stream
// and the ITEMS bucket, records items, publishes events, restores an item
// Redis lost from its last events, and a gateway on a new Redis lists the
// recorded items and restores them without being asked.
func TestGatewayAsItsNATSUser(t *testing.T) {
	t.Parallel()
	n, passwords := testenv.NATSWithShippedUsers(t)
	r := testenv.Redis(t)
	cfg := testConfig([]string{r.Addr()}, false, n.URL())
	cfg.NATSAuth = natsconn.Auth{User: "gateway", Password: config.Secret(passwords["gateway"])}
	g := startGateway(t, cfg)
	g.createItem(t, "lot", "1.00", "1.00")
	if a := g.bid(t, "lot", "alice", "2.00"); a.Status != http.StatusOK {
		t.Fatalf("bid = %d %s, want 200", a.Status, a.Body)
	}
	waitEvents(t, n.JetStream(), "lot", 1)

	// Redis loses the item: the next bid restores it from the log.
	if err := r.Client().Del(context.Background(), cfg.RedisKeyPrefix+"item:{lot}").Err(); err != nil {
		t.Fatal(err)
	}
	if a := g.bid(t, "lot", "bob", "2.00"); a.Status != http.StatusConflict {
		t.Errorf("bid 2.00 after the restore = %d %s, want 409 against alice's 2.00", a.Status, a.Body)
	}
	if a := g.bid(t, "lot", "bob", "3.00"); a.Status != http.StatusOK {
		t.Fatalf("bid 3.00 after the restore = %d %s, want 200", a.Status, a.Body)
	}
	waitEvents(t, n.JetStream(), "lot", 2)

	fresh := testenv.Redis(t)
	cfg2 := testConfig([]string{fresh.Addr()}, false, n.URL())
	cfg2.NATSAuth = cfg.NATSAuth
	startGateway(t, cfg2)
	testenv.WaitFor(t, 30*time.Second, "the recorded item restored into the new Redis", func() error {
		cur, err := fresh.Client().HGet(context.Background(), cfg2.RedisKeyPrefix+"item:{lot}", "cur").Result()
		if err != nil {
			return err
		}
		if cur != "300" {
			return fmt.Errorf("cur = %s, want 300", cur)
		}
		return nil
	})
}
