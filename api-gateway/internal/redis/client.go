// Package redis is the gateway's atomic auction state in Redis: items, bids
// decided by a Lua script or by WATCH/MULTI/EXEC, idempotency records, and the
// per-item outbox streams that the relay drains to JetStream. It wraps
// go-redis so that main never imports it, and runs unchanged on a single
// Redis and on a Redis Cluster: every key of one item shares the hash tag
// {<item_id>}.
package redis

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/bidding-platform/api-gateway/internal/service"
	"github.com/bidding-platform/shared/config"
	"github.com/bidding-platform/shared/models"
)

// Strategies for the compare-and-set, selected by REDIS_STRATEGY.
const (
	StrategyLua        = "lua"
	StrategyOptimistic = "optimistic"
)

// Config says how to reach Redis and how to decide bids. New fills zero
// durations, retries and the strategy from DefaultConfig.
type Config struct {
	// Addrs is one host:port, or the seed nodes of a cluster.
	Addrs    []string
	Username string
	Password config.Secret
	// TLS encrypts every connection and verifies the server's certificate
	// against the system's roots, or TLSCAFile's (PEM) when set.
	TLS       bool
	TLSCAFile string
	// DB is ignored by a cluster, which only has database 0.
	DB       int
	Cluster  bool
	Strategy string
	// PoolSize is the connection pool per node; zero lets go-redis choose
	// (10 per CPU).
	PoolSize int
	// DialTimeout, ReadTimeout and WriteTimeout bound each network step, and
	// OpTimeout bounds a whole call including retries: a dead Redis must
	// turn into service.ErrUnavailable (a 503) within about a second, not a
	// hang.
	DialTimeout  time.Duration
	ReadTimeout  time.Duration
	WriteTimeout time.Duration
	OpTimeout    time.Duration
	// MaxRetries is how often go-redis retries a command after a network
	// error; few, so that failing fast wins over hoping. Zero means the
	// default (1), negative means none. Bids are never retried (see New).
	MaxRetries int
	// OptimisticRetries bounds the WATCH/MULTI/EXEC attempts for one bid.
	OptimisticRetries int
	// KeyPrefix namespaces every key, so several deployments (or tests) can
	// share one Redis. It must not contain braces, which would break the
	// hash tags.
	KeyPrefix string
	// ScanInterval is how often Pending and CloseDue also scan every master
	// for what their hint keys miss: an outbox whose gateway died between
	// its script and the hint update, an open auction whose end-time hint
	// was lost with a cluster node. The first call of each always scans.
	ScanInterval time.Duration
	// ScanTimeout bounds one such scan.
	ScanTimeout time.Duration
	// ClosedRetention is how long a closed item stays in Redis after it
	// closed; the archive answers for it afterwards. 0 keeps it forever.
	ClosedRetention time.Duration
}

// DefaultConfig is a local single Redis with the lua strategy.
func DefaultConfig() Config {
	return Config{
		Addrs:             []string{config.DefaultRedisAddr},
		Strategy:          StrategyLua,
		DialTimeout:       500 * time.Millisecond,
		ReadTimeout:       500 * time.Millisecond,
		WriteTimeout:      500 * time.Millisecond,
		OpTimeout:         1500 * time.Millisecond,
		MaxRetries:        1,
		OptimisticRetries: 50,
		ScanInterval:      time.Minute,
		ScanTimeout:       10 * time.Second,
	}
}

func (c Config) validate() error {
	var errs []error
	if len(c.Addrs) == 0 {
		errs = append(errs, errors.New("no redis address"))
	}
	if !c.Cluster && len(c.Addrs) > 1 {
		errs = append(errs, fmt.Errorf("%d redis addresses given without cluster mode", len(c.Addrs)))
	}
	if c.Strategy != StrategyLua && c.Strategy != StrategyOptimistic {
		errs = append(errs, fmt.Errorf("redis strategy %q: want %s or %s", c.Strategy, StrategyLua, StrategyOptimistic))
	}
	if strings.ContainsAny(c.KeyPrefix, "{}") {
		errs = append(errs, fmt.Errorf("redis key prefix %q must not contain braces", c.KeyPrefix))
	}
	return errors.Join(errs...)
}

// Store implements service.BidStore and service.OutboxStore on Redis.
type Store struct {
	rdb     goredis.UniversalClient
	cluster *goredis.ClusterClient // nil on a single Redis
	// bids carries bid decisions, without retries (see New).
	bids goredis.UniversalClient
	cfg  Config

	// clockOffset is Redis's clock minus this host's, in nanoseconds, as
	// last measured by redisTime; bid scripts get deadlines on Redis's clock.
	clockOffset atomic.Int64

	// When Pending and CloseDue last scanned for what their hints miss.
	scanMu                      sync.Mutex
	lastOutboxScan, lastEndScan time.Time
	lastSellerScan              time.Time
	// Where Pending's walk over the outbox hint set goes on.
	hintCursor uint64

	// scripts are redisClockScripts, except in tests that set the clock
	// (see frozenClock).
	scripts *scripts
	// clockKey, set only by such tests, holds the time every decision
	// reads instead of Redis's TIME.
	clockKey string

	// beforeWrite and afterWrite, when set, run just before and just after
	// a bid's writing round trip (place.lua's call, or MULTI/EXEC): tests
	// freeze Redis before it, and cut the gateway off after it.
	beforeWrite, afterWrite func()
}

var (
	_ service.BidStore    = (*Store)(nil)
	_ service.OutboxStore = (*Store)(nil)
)

// New builds a Store. It does not dial: the gateway starts while Redis is
// down, answers 503 meanwhile, and the same Store works once Redis is back.
func New(cfg Config) (*Store, error) {
	def := DefaultConfig()
	if cfg.Strategy == "" {
		cfg.Strategy = def.Strategy
	}
	cfg.DialTimeout = config.Positive(cfg.DialTimeout, def.DialTimeout)
	cfg.ReadTimeout = config.Positive(cfg.ReadTimeout, def.ReadTimeout)
	cfg.WriteTimeout = config.Positive(cfg.WriteTimeout, def.WriteTimeout)
	cfg.OpTimeout = config.Positive(cfg.OpTimeout, def.OpTimeout)
	if cfg.MaxRetries == 0 {
		cfg.MaxRetries = def.MaxRetries
	}
	cfg.OptimisticRetries = config.Positive(cfg.OptimisticRetries, def.OptimisticRetries)
	cfg.ScanInterval = config.Positive(cfg.ScanInterval, def.ScanInterval)
	cfg.ScanTimeout = config.Positive(cfg.ScanTimeout, def.ScanTimeout)
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("redis config: %w", err)
	}
	var tlsCfg *tls.Config
	if cfg.TLS {
		var err error
		if tlsCfg, err = clientTLS(cfg.TLSCAFile); err != nil {
			return nil, fmt.Errorf("redis config: %w", err)
		}
	}
	s := &Store{cfg: cfg, scripts: redisClockScripts}
	s.rdb, s.cluster = newClient(cfg, tlsCfg, cfg.MaxRetries)
	// A bid whose reply was lost with its connection may have been
	// applied; sent again, it would be decided twice (a tie with itself,
	// answered 409 though it leads). Bids therefore go through a client
	// that never retries, and such a bid is answered 503 with its outcome
	// unknown (classifyWrite); the client's retry with the same
	// Idempotency-Key learns the truth.
	s.bids, _ = newClient(cfg, tlsCfg, -1)
	return s, nil
}

// clientTLS verifies servers against caFile's certificates, or the
// system's when it is empty (a managed service's public CA).
func clientTLS(caFile string) (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile == "" {
		return c, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("redis TLS CA: %w", err)
	}
	c.RootCAs = x509.NewCertPool()
	if !c.RootCAs.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("redis TLS CA %s holds no PEM certificate", caFile)
	}
	return c, nil
}

func newClient(cfg Config, tlsCfg *tls.Config, maxRetries int) (goredis.UniversalClient, *goredis.ClusterClient) {
	c := goredis.NewUniversalClient(&goredis.UniversalOptions{
		Addrs:                 cfg.Addrs,
		IsClusterMode:         cfg.Cluster,
		Username:              cfg.Username,
		Password:              cfg.Password.Reveal(),
		TLSConfig:             tlsCfg,
		DB:                    cfg.DB,
		PoolSize:              cfg.PoolSize,
		DialTimeout:           cfg.DialTimeout,
		DialerRetries:         1,
		ReadTimeout:           cfg.ReadTimeout,
		WriteTimeout:          cfg.WriteTimeout,
		PoolTimeout:           cfg.OpTimeout,
		ContextTimeoutEnabled: true,
		MaxRetries:            maxRetries,
		MinRetryBackoff:       8 * time.Millisecond,
		MaxRetryBackoff:       64 * time.Millisecond,
		MaxRedirects:          3,
	})
	cluster, _ := c.(*goredis.ClusterClient)
	return c, cluster
}

// Close releases the connections. It is safe to call more than once.
func (s *Store) Close() error {
	err := errors.Join(s.rdb.Close(), s.bids.Close())
	if err != nil && !errors.Is(err, goredis.ErrClosed) {
		return fmt.Errorf("close redis: %w", err)
	}
	return nil
}

// Ping checks that Redis answers (every master, on a cluster).
func (s *Store) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.OpTimeout)
	defer cancel()
	var err error
	if s.cluster != nil {
		err = s.cluster.ForEachMaster(ctx, func(ctx context.Context, c *goredis.Client) error {
			return c.Ping(ctx).Err()
		})
	}
	if err == nil {
		_, err = s.redisTime(ctx)
	}
	if err != nil {
		return fmt.Errorf("ping redis: %w", classify(err))
	}
	return nil
}

// Instance is the run id of the Redis process, or on a cluster the sorted
// run ids of its masters (common.lua's instance, for the whole store).
func (s *Store) Instance(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.OpTimeout)
	defer cancel()
	if s.cluster == nil {
		info, err := s.rdb.Info(ctx, "server").Result()
		if err != nil {
			return "", fmt.Errorf("redis instance: %w", classify(err))
		}
		return runID(info), nil
	}
	var (
		mu  sync.Mutex
		ids []string
	)
	err := s.cluster.ForEachMaster(ctx, func(ctx context.Context, c *goredis.Client) error {
		info, err := c.Info(ctx, "server").Result()
		if err != nil {
			return err
		}
		mu.Lock()
		ids = append(ids, runID(info))
		mu.Unlock()
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("redis instance: %w", classify(err))
	}
	slices.Sort(ids)
	return strings.Join(ids, ","), nil
}

// redisTime reads Redis's clock and, when the round trip was quick enough
// to say something, remembers its offset from this host's clock.
func (s *Store) redisTime(ctx context.Context) (time.Time, error) {
	before := time.Now()
	t, err := s.rdb.Time(ctx).Result()
	if err != nil {
		return t, err
	}
	if rtt := time.Since(before); rtt < 20*time.Millisecond {
		s.clockOffset.Store(int64(t.Sub(before.Add(rtt / 2))))
	}
	return t, nil
}

// queueTime queues a read of the clock the rules decide by on p, and
// returns how to read its answer once p has run: Redis's TIME, or in
// tests the time in clockKey.
func (s *Store) queueTime(ctx context.Context, p goredis.Pipeliner) func() time.Time {
	if s.clockKey != "" {
		cmd := p.HMGet(ctx, s.clockKey, "sec", "usec")
		return func() time.Time {
			v := cmd.Val()
			if len(v) != 2 {
				return time.Time{}
			}
			sec, _ := v[0].(string)
			usec, _ := v[1].(string)
			return time.Unix(atoi(sec), atoi(usec)*1000)
		}
	}
	cmd := p.Time(ctx)
	return cmd.Val
}

// Keys. Everything of one item carries the hash tag {id} so that each
// script's keys live in one cluster slot. The two global hint keys have no
// item tag and are only ever touched by commands of their own.
func (s *Store) itemKey(id string) string   { return s.cfg.KeyPrefix + "item:{" + id + "}" }
func (s *Store) outboxKey(id string) string { return s.cfg.KeyPrefix + "item:{" + id + "}:outbox" }
func (s *Store) guardKey(id, bidID string) string {
	return s.cfg.KeyPrefix + "item:{" + id + "}:guard:" + bidID
}
func (s *Store) idemKey(id, user, key string) string {
	return s.cfg.KeyPrefix + "idem:{" + id + "}:" + user + ":" + key
}

// idemCountKey counts the idempotency records a user opened on an item, so
// that one user cannot fill Redis with them.
func (s *Store) idemCountKey(id, user string) string {
	return s.cfg.KeyPrefix + "idemn:{" + id + "}:" + user
}

// endsKey is a sorted set of open auctions scored by end time (ms): a hint
// for CloseDue, which re-checks every candidate against the item hash.
func (s *Store) endsKey() string { return s.cfg.KeyPrefix + "auctions:ends" }

// openKey is a sorted set of the auctions that are not final, scored by
// their end as created (see openScore): the index GET /api/v1/items pages
// through. Like endsKey it is a hint, re-checked against each item hash.
func (s *Store) openKey() string { return s.cfg.KeyPrefix + "auctions:open" }

// outboxesKey is a set of item ids whose outbox may hold entries: a hint for
// Pending and Backlog.
func (s *Store) outboxesKey() string { return s.cfg.KeyPrefix + "outbox:items" }

//go:embed lua/common.lua
var commonLua string

//go:embed lua/place.lua
var placeLua string

//go:embed lua/close.lua
var closeLua string

//go:embed lua/create.lua
var createLua string

//go:embed lua/read.lua
var readLua string

//go:embed lua/restore.lua
var restoreLua string

//go:embed lua/cancel.lua
var cancelLua string

//go:embed lua/ack.lua
var ackLua string

// scripts are the Lua scripts that read Redis's clock. They are immutable
// and safe for concurrent use; Script.Run sends EVALSHA and falls back to
// EVAL after a restart or a failover has flushed the script cache.
type scripts struct {
	place, close, create, read, restore, cancel *goredis.Script
}

func newScripts(common string) *scripts {
	return &scripts{
		place:   goredis.NewScript(common + placeLua),
		close:   goredis.NewScript(common + closeLua),
		create:  goredis.NewScript(common + createLua),
		read:    goredis.NewScript(common + readLua),
		restore: goredis.NewScript(common + restoreLua),
		cancel:  goredis.NewScript(common + cancelLua),
	}
}

var (
	redisClockScripts = newScripts(commonLua)
	ackScript         = goredis.NewScript(ackLua)
)

// pipelineScript sends, in one pipeline, what queue adds: calls of script
// through run, and any other command. Calls go by hash; when the script
// cache was emptied by a restart or a failover, the pipeline is sent again
// with the script's body, which loads it for later calls. Commands are sent
// twice then, so they must be safe to repeat.
func pipelineScript(ctx context.Context, rdb goredis.UniversalClient, script *goredis.Script,
	queue func(p goredis.Pipeliner, run func(keys []string, args ...any) *goredis.Cmd)) error {
	noScript := func(c *goredis.Cmd) bool { return goredis.HasErrorPrefix(c.Err(), "NOSCRIPT") }
	for attempt := 0; ; attempt++ {
		var calls []*goredis.Cmd
		_, err := rdb.Pipelined(ctx, func(p goredis.Pipeliner) error {
			queue(p, func(keys []string, args ...any) *goredis.Cmd {
				var c *goredis.Cmd
				if attempt == 0 {
					c = script.EvalSha(ctx, p, keys, args...)
				} else {
					c = script.Eval(ctx, p, keys, args...)
				}
				calls = append(calls, c)
				return c
			})
			return nil
		})
		if attempt == 0 && err != nil && slices.ContainsFunc(calls, noScript) {
			continue
		}
		return err
	}
}

// CreateItem stores a new item with no bids. Its status follows starts_at
// and ends_at compared with Redis TIME; a zero StartsAt means now and a zero
// EndsAt means the auction has no end.
func (s *Store) CreateItem(ctx context.Context, it models.Item) (models.Item, error) {
	if err := models.ValidateID(it.ID); err != nil {
		return models.Item{}, fmt.Errorf("create item %q: %w", it.ID, err)
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.OpTimeout)
	defer cancel()
	ends := unixMilli(it.EndsAt)
	// The end-time hint goes in first: if this gateway dies before the item
	// exists, CloseDue meets an unknown item and drops the hint, whereas the
	// other order could leave an item that never closes.
	if ends > 0 {
		if err := s.rdb.ZAddNX(ctx, s.endsKey(), goredis.Z{Score: float64(ends), Member: it.ID}).Err(); err != nil {
			return models.Item{}, fmt.Errorf("create item %s: %w", it.ID, classify(err))
		}
	}
	res, err := s.scripts.create.Run(ctx, s.rdb, []string{s.itemKey(it.ID)},
		it.ID, it.Name, int64(it.StartingPrice), int64(it.MinIncrement), int64(it.ReservePrice),
		unixMilli(it.StartsAt), ends, s.scriptDeadline(ctx), it.SellerID).Slice()
	if err != nil {
		return models.Item{}, fmt.Errorf("create item %s: %w", it.ID, classify(err))
	}
	switch toInt(res[0]) {
	case -1:
		return models.Item{}, fmt.Errorf("create item %s: %w: redis ran the script after its deadline", it.ID, service.ErrUnavailable)
	case 0:
		return models.Item{}, fmt.Errorf("create item %s: %w", it.ID, service.ErrItemExists)
	}
	// Listed only once it exists (a listing drops ids it cannot read). If
	// either index misses it, the item is created all the same and the
	// periodic scans (scanOpen, scanSellers) list it.
	_ = s.rdb.ZAddNX(ctx, s.openKey(), goredis.Z{Score: float64(openScore(ends)), Member: it.ID}).Err()
	_ = s.indexSeller(ctx, it.SellerID, it.ID, toInt(res[1]))
	return models.Item{
		ID:            it.ID,
		Name:          it.Name,
		Status:        models.Status(toString(res[2])),
		StartingPrice: it.StartingPrice,
		MinIncrement:  it.MinIncrement,
		ReservePrice:  it.ReservePrice,
		StartsAt:      fromMilli(toInt(res[1])),
		EndsAt:        fromMilli(ends),
		SellerID:      it.SellerID,
	}, nil
}

// Item returns the item's current state, its status computed with Redis TIME.
func (s *Store) Item(ctx context.Context, id string) (models.Item, error) {
	if err := models.ValidateID(id); err != nil {
		return models.Item{}, fmt.Errorf("read item %q: %w", id, service.ErrItemNotFound)
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.OpTimeout)
	defer cancel()
	res, err := s.scripts.read.Run(ctx, s.rdb, []string{s.itemKey(id)}).StringSlice()
	if err != nil {
		return models.Item{}, fmt.Errorf("read item %s: %w", id, classify(err))
	}
	it, _, err := readItem(id, res)
	if err != nil {
		return models.Item{}, fmt.Errorf("read item %s: %w", id, err)
	}
	return it, nil
}

// readItem decodes read.lua's answer for id, and returns the stored status
// beside the item's status at Redis's clock.
func readItem(id string, res []string) (it models.Item, stored string, err error) {
	if len(res) == 0 {
		return models.Item{}, "", service.ErrItemNotFound
	}
	h := make(map[string]string, len(res)/2)
	for i := 0; i+1 < len(res); i += 2 {
		h[res[i]] = res[i+1]
	}
	if h["checked"] != "1" {
		return models.Item{}, h["st"], service.ErrUnchecked
	}
	return models.Item{
		ID:              id,
		Name:            h["name"],
		CurrentBid:      models.Money(atoi(h["cur"])),
		HighestBidderID: h["bdr"],
		Status:          models.Status(h["status"]),
		StartingPrice:   models.Money(atoi(h["sp"])),
		MinIncrement:    models.Money(atoi(h["inc"])),
		ReservePrice:    models.Money(atoi(h["res"])),
		StartsAt:        fromMilli(atoi(h["sa"])),
		EndsAt:          fromMilli(atoi(h["ea"])),
		BidCount:        atoi(h["cnt"]),
		Seq:             uint64(atoi(h["seq"])),
		SellerID:        h["sel"],
	}, h["st"], nil
}

// Restore brings an item up to its last published event (nil: none yet),
// recreating it from rec, its terms as created, when Redis lost it, and
// marks it checked on this Redis instance, so that bids are decided on it
// again. An item Redis holds ahead of the log (its outbox not yet
// published) keeps its state.
func (s *Store) Restore(ctx context.Context, rec models.Item, logged *service.OutboxEntry) error {
	if err := models.ValidateID(rec.ID); err != nil {
		return fmt.Errorf("restore item %q: %w", rec.ID, err)
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.OpTimeout)
	defer cancel()
	var (
		seq, cnt, ends int64
		cur, leaderMax models.Money
		bidder, closed = "", "0"
		cancelled      = "0"
	)
	if logged != nil {
		last := logged.Event
		seq, cnt, cur, leaderMax = int64(last.Seq), last.BidCount, last.Amount, max(logged.LeaderMax, last.Amount)
		if last.EndsAt != nil {
			ends = unixMilli(*last.EndsAt)
		}
		switch last.Type {
		case models.EventBid:
			bidder = last.UserID
		case models.EventAuctionClosed:
			closed = "1"
			// A closed event names the winner only when the reserve was
			// met; the leader is the same either way for the archive, but
			// here only the price and count matter once it is closed.
			bidder = last.WinnerID
		case models.EventAuctionCancelled:
			cancelled = "1"
		}
	}
	// The end-time hint first, as CreateItem does, so an open item that
	// comes back is closed on time.
	if end := max(ends, unixMilli(rec.EndsAt)); end > 0 && closed == "0" && cancelled == "0" {
		if err := s.rdb.ZAdd(ctx, s.endsKey(), goredis.Z{Score: float64(end), Member: rec.ID}).Err(); err != nil {
			return fmt.Errorf("restore item %s: %w", rec.ID, classify(err))
		}
	}
	res, err := s.scripts.restore.Run(ctx, s.rdb, []string{s.itemKey(rec.ID)},
		rec.ID, rec.Name, int64(rec.StartingPrice), int64(rec.MinIncrement), int64(rec.ReservePrice),
		unixMilli(rec.StartsAt), unixMilli(rec.EndsAt), seq, int64(cur), bidder, cnt, ends, closed,
		s.cfg.ClosedRetention.Milliseconds(), cancelled, rec.SellerID, int64(leaderMax)).Slice()
	if err != nil {
		return fmt.Errorf("restore item %s: %w", rec.ID, classify(err))
	}
	if len(res) > 0 && toInt(res[0]) == 0 {
		return fmt.Errorf("restore item %s: %w", rec.ID, service.ErrItemNotFound)
	}
	// The restored state decides whether the item is listed; the indexes
	// are hints that scanOpen and scanSellers rebuild, so a failure here is
	// not the restore's.
	_ = s.reindexOpen(ctx, []string{rec.ID})
	_ = s.indexSeller(ctx, rec.SellerID, rec.ID, unixMilli(rec.StartsAt))
	return nil
}

// classifyWrite is classify for a call that may have changed state: a
// connection lost after the call was sent may have lost only the reply.
func classifyWrite(err error) error {
	var op *net.OpError
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET),
		errors.As(err, &op) && op.Op != "dial":
		// A timeout is among these: the write's deadline stops a script
		// that starts after it, but one that started in time may answer
		// after the client gave up, when Redis was descheduled or its
		// fsync was slow between the decision and the reply.
		return fmt.Errorf("%w: %w", service.ErrOutcomeUnknown, err)
	}
	return classify(err)
}

// classify marks failures to reach Redis as service.ErrUnavailable. Error
// replies from a healthy server (a script bug, a wrong type) stay internal
// errors, except the ones a cluster gives while it cannot serve a slot.
func classify(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) {
		return err
	}
	if errors.Is(err, goredis.ErrClosed) {
		return err
	}
	var rerr goredis.Error
	if errors.As(err, &rerr) {
		msg := rerr.Error()
		// A MOVED or ASK that reaches us means go-redis used up its
		// redirects: the slot's owner is unreachable or the cluster is
		// resharding, which is an outage of that item, not a bad request.
		for _, p := range []string{"CLUSTERDOWN", "LOADING", "TRYAGAIN", "MASTERDOWN", "READONLY", "BUSY ", "MOVED ", "ASK "} {
			if strings.HasPrefix(msg, p) {
				return fmt.Errorf("%w: %w", service.ErrUnavailable, err)
			}
		}
		return err
	}
	return fmt.Errorf("%w: %w", service.ErrUnavailable, err)
}

func unixMilli(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromMilli(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

func atoi(s string) int64 {
	n, _ := strconv.ParseInt(s, 10, 64) // written by our own scripts; "" reads as 0
	return n
}

// toInt and toString read values from a script's reply, where Lua numbers
// arrive as int64 and strings as string.
func toInt(v any) int64 {
	switch x := v.(type) {
	case int64:
		return x
	case string:
		return atoi(x)
	}
	return 0
}

func toString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case int64:
		return strconv.FormatInt(x, 10)
	}
	return ""
}

// RouteLibraryLogs sends go-redis's own messages (dial failures while Redis
// is down, pool events) to l at debug level instead of the standard logger.
// go-redis keeps its logger in a package variable, so this affects every
// client in the process; main calls it once.
func RouteLibraryLogs(l *slog.Logger) {
	goredis.SetLogger(libraryLogger{l})
}

type libraryLogger struct{ l *slog.Logger }

func (g libraryLogger) Printf(ctx context.Context, format string, v ...any) {
	g.l.DebugContext(ctx, fmt.Sprintf(format, v...), "component", "go-redis")
}
