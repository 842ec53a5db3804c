package app

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/bidding-platform/shared/config"
	"github.com/bidding-platform/shared/models"
	"github.com/bidding-platform/shared/testenv"
)

// gateway is one App running on ":0" against test servers.
type gateway struct {
	t    *testing.T
	app  *App
	url  string
	cfg  Config
	stop context.CancelFunc
	done chan error
}

var prefixes atomic.Int64

// testConfig points a gateway at the given servers, with limits off and a
// key prefix of its own so that tests sharing a Redis never meet. Tests of
// faults and load run without authentication; the API's own tests turn it
// on with withAuth.
func testConfig(redisAddrs []string, cluster bool, natsURL string) Config {
	c := DefaultConfig()
	c.Addr = "127.0.0.1:0"
	c.RedisAddrs = redisAddrs
	c.RedisCluster = cluster
	c.RedisKeyPrefix = fmt.Sprintf("gw%d:", prefixes.Add(1))
	c.NATSURL = natsURL
	c.PostgresURL = "postgres://nobody@127.0.0.1:1/none?sslmode=disable&connect_timeout=1"
	c.AutoCreate = true
	c.RatePerUser, c.RatePerIP = 0, 0
	c.CloseEvery = 100 * time.Millisecond
	c.ShutdownTimeout = 5 * time.Second
	c.Auth.Disabled = true
	return c
}

// testSecret is the HS256 secret of gateways started withAuth.
const testSecret = "a-test-secret-that-is-long-enough-for-hs256"

// withAuth turns authentication on, with testSecret.
func withAuth(c *Config) {
	c.Auth.Disabled = false
	c.Auth.Secret = config.Secret(testSecret)
}

// authOn says whether the gateway wants tokens.
func (g *gateway) authOn() bool { return !g.cfg.Auth.Disabled }

// token signs a token for sub with roles, valid for an hour, as the
// gateway's identity provider would.
func (g *gateway) token(t testing.TB, sub string, roles ...string) string {
	t.Helper()
	claims := jwt.MapClaims{"sub": sub, "exp": time.Now().Add(time.Hour).Unix()}
	if len(roles) > 0 {
		claims["roles"] = roles
	}
	if g.cfg.Auth.Issuer != "" {
		claims["iss"] = g.cfg.Auth.Issuer
	}
	if g.cfg.Auth.Audience != "" {
		claims["aud"] = g.cfg.Auth.Audience
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(g.cfg.Auth.Secret.Reveal()))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// as is the Authorization header of sub with roles, for do and try.
func (g *gateway) as(t testing.TB, sub string, roles ...string) []string {
	t.Helper()
	return []string{"Authorization", "Bearer " + g.token(t, sub, roles...)}
}

// signedAs adds sub's token to headers unless auth is off or they carry
// an Authorization header already.
func (g *gateway) signedAs(t testing.TB, sub string, headers []string, roles ...string) []string {
	t.Helper()
	if !g.authOn() {
		return headers
	}
	for i := 0; i < len(headers); i += 2 {
		if strings.EqualFold(headers[i], "Authorization") {
			return headers
		}
	}
	return append(g.as(t, sub, roles...), headers...)
}

func testLogger() *slog.Logger {
	if os.Getenv("GATEWAY_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func startGateway(t *testing.T, cfg Config) *gateway {
	t.Helper()
	return startGatewayLog(t, cfg, testLogger())
}

// startGatewayLog is startGateway for tests that read what it logs.
func startGatewayLog(t *testing.T, cfg Config, log *slog.Logger) *gateway {
	t.Helper()
	a, err := New(context.Background(), cfg, log)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	g := &gateway{t: t, app: a, url: "http://" + a.Addr(), cfg: cfg, stop: cancel, done: make(chan error, 1)}
	go func() { g.done <- a.Run(ctx) }()
	t.Cleanup(func() { g.shutdown() })
	return g
}

// shutdown stops the gateway as SIGTERM would and returns Run's error.
func (g *gateway) shutdown() error {
	g.stop()
	select {
	case err := <-g.done:
		g.done <- err
		return err
	case <-time.After(20 * time.Second):
		return errors.New("gateway did not stop within 20s")
	}
}

// env starts a single Redis and NATS and a gateway on them.
type env struct {
	redis *testenv.RedisServer
	nats  *testenv.NATSServer
	gw    *gateway
}

func newEnv(t *testing.T, mod func(*Config)) *env {
	t.Helper()
	r := testenv.Redis(t)
	n := testenv.NATS(t)
	cfg := testConfig([]string{r.Addr()}, false, n.URL())
	if mod != nil {
		mod(&cfg)
	}
	return &env{redis: r, nats: n, gw: startGateway(t, cfg)}
}

var client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 200}}

type answer struct {
	Status int
	Header http.Header
	Body   []byte
	// JSON is Body decoded, with numbers kept as their text.
	JSON map[string]any
}

func (a answer) str(key string) string {
	switch v := a.JSON[key].(type) {
	case string:
		return v
	case json.Number:
		return v.String()
	case bool:
		return fmt.Sprint(v)
	case nil:
		return ""
	}
	return fmt.Sprint(a.JSON[key])
}

func do(t testing.TB, method, url string, body string, headers ...string) answer {
	t.Helper()
	a, err := try(method, url, body, headers...)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	return a
}

func try(method, url string, body string, headers ...string) (answer, error) {
	var rd io.Reader
	if body != "" {
		rd = bytes.NewBufferString(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return answer{}, err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return answer{}, err
	}
	a := answer{Status: resp.StatusCode, Header: resp.Header, Body: b}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	_ = dec.Decode(&a.JSON) // not every answer is an object (metrics)
	return a, nil
}

// dial opens a plain TCP connection to the gateway, for requests an HTTP
// client would not send; it is closed at the end of the test.
func (g *gateway) dial(t testing.TB) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(g.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	return conn
}

func (g *gateway) bid(t testing.TB, item, user, amount string, headers ...string) answer {
	t.Helper()
	return do(t, "POST", g.url+"/api/v1/items/"+item+"/bid", fmt.Sprintf(`{"user_id":%q,"amount":%s}`, user, amount), g.signedAs(t, user, headers)...)
}

func (g *gateway) item(t testing.TB, id string) models.Item {
	t.Helper()
	a := do(t, "GET", g.url+"/api/v1/items/"+id, "")
	if a.Status != http.StatusOK {
		t.Fatalf("GET item %s = %d %s", id, a.Status, a.Body)
	}
	var it models.Item
	if err := json.Unmarshal(a.Body, &it); err != nil {
		t.Fatalf("item JSON %s: %v", a.Body, err)
	}
	return it
}

// testSeller creates the items of createItem when auth is on.
const testSeller = "seller_1"

// createItem creates an item with the given starting price and increment,
// as testSeller when auth is on.
func (g *gateway) createItem(t testing.TB, id, start, inc string) models.Item {
	t.Helper()
	a := do(t, "POST", g.url+"/api/v1/items", fmt.Sprintf(`{"id":%q,"name":"Lot %s","starting_price":%s,"min_increment":%s}`, id, id, start, inc),
		g.signedAs(t, testSeller, nil, "seller")...)
	if a.Status != http.StatusCreated {
		t.Fatalf("create item %s = %d %s", id, a.Status, a.Body)
	}
	var it models.Item
	if err := json.Unmarshal(a.Body, &it); err != nil {
		t.Fatal(err)
	}
	return it
}

// waitEvents waits until JetStream holds exactly n events for item and
// returns them in seq order.
func waitEvents(t testing.TB, js jetstream.JetStream, item string, n int) []models.Event {
	t.Helper()
	var evs []models.Event
	testenv.WaitFor(t, 30*time.Second, fmt.Sprintf("%d events of %s in JetStream", n, item), func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		var err error
		evs, err = testenv.StreamEvents(ctx, js, item)
		if err != nil {
			return err
		}
		if len(evs) != n {
			return fmt.Errorf("%d events", len(evs))
		}
		return nil
	})
	// JetStream's order is publish order, which is not seq order once a
	// publish was retried by the relay or two gateways publish for one
	// item; consumers order by seq.
	sort.SliceStable(evs, func(i, j int) bool { return evs[i].Seq < evs[j].Seq })
	return evs
}
