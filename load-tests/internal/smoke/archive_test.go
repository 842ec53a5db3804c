package smoke

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bidding-platform/shared/testenv"
)

// TestClosedItemOutlivesRedis follows an auction through the whole system:
// the gateway closes it, the archival worker stores it from its
// auction_closed event, Redis lets it go (its retention, cut short here by
// deleting the key), and the gateway still answers for it from the archive.
func TestClosedItemOutlivesRedis(t *testing.T) {
	gatewayBin := buildService(t, "api-gateway")
	archiverBin := buildService(t, "archival-worker")
	rd := testenv.Redis(t)
	nt := testenv.NATS(t)
	pg := testenv.PostgresDB(t)
	archiver := freeAddr(t)
	startServiceOn(t, archiver, archiverBin, "HTTP_ADDR="+archiver, "NATS_URL="+nt.URL(), "POSTGRES_URL="+pg, "BATCH_WAIT=50ms")
	// No soft close: the bid below must not move the end.
	gateway := "http://" + startService(t, gatewayBin, "REDIS_ADDR="+rd.Addr(), "NATS_URL="+nt.URL(), "POSTGRES_URL="+pg,
		"RATE_LIMIT_PER_USER=0", "RATE_LIMIT_PER_IP=0", "SOFT_CLOSE=0", "AUTH_DISABLED=true")

	ends := time.Now().Add(2 * time.Second).UTC().Format(time.RFC3339Nano)
	resp, err := http.Post(gateway+"/api/v1/items", "application/json", strings.NewReader(
		`{"id":"short_lot","name":"Pocket Watch","starting_price":10.00,"min_increment":2.50,"ends_at":"`+ends+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("create item: status %d", resp.StatusCode)
	}
	placeBid(t, gateway, "short_lot", "user_1", 1250)

	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	deadline := time.Now().Add(30 * time.Second)
	for {
		var name string
		err := conn.QueryRow(ctx, "SELECT name FROM items WHERE item_id = 'short_lot' AND status = 'closed' AND name IS NOT NULL").Scan(&name)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the archive does not hold short_lot closed with its name after 30s: %v (gateway says %+v)", err, getItem(t, gateway, "short_lot"))
		}
		time.Sleep(100 * time.Millisecond)
	}
	live := getItem(t, gateway, "short_lot")

	client := rd.Client()
	defer client.Close()
	if n, err := client.Del(ctx, "item:{short_lot}").Result(); err != nil || n != 1 {
		t.Fatalf("delete the item from Redis: %d, %v", n, err)
	}
	if archived := getItem(t, gateway, "short_lot"); archived != live {
		t.Errorf("from the archive the gateway says %+v; from Redis it said %+v", archived, live)
	}
}
