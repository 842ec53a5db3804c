// Package database writes archived events to PostgreSQL: bids, the latest
// state of each item, and dead letters, one batch per transaction, with
// inserts keyed by event id so that a redelivered batch changes nothing.
package database

import (
	"cmp"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bidding-platform/shared/models"
	"github.com/bidding-platform/shared/schema"
)

// Strategy is how a batch of bids reaches the bids table. All of them are
// idempotent; they differ only in speed (see archival-worker/README.md).
type Strategy string

const (
	// Unnest sends the bids as one INSERT over column arrays, pipelined with
	// the dead letters and item upserts in a single round trip (one
	// implicit transaction). The fastest measured, hence the default.
	Unnest Strategy = "unnest"
	// Copy streams the bids into a per-connection temporary staging table
	// with COPY, then moves them with one INSERT ... SELECT ... ON CONFLICT
	// DO NOTHING, inside an explicit transaction.
	Copy Strategy = "copy"
	// Batch queues one INSERT per bid in a pipelined pgx.Batch.
	Batch Strategy = "batch"
	// Single runs one INSERT per bid, one round trip each: the baseline.
	Single Strategy = "single"
)

// Strategies lists every strategy, for benchmarks and validation.
var Strategies = []Strategy{Unnest, Copy, Batch, Single}

// stageTable is a temporary table each connection creates once; ON COMMIT
// DELETE ROWS empties it at the end of every transaction, including one that
// rolls back, so a retried batch never sees leftovers.
const stageTable = "bids_stage"

const createStage = `CREATE TEMP TABLE IF NOT EXISTS ` + stageTable + ` (
	event_id text, bid_id text, item_id text, user_id text,
	amount_cents bigint, previous_cents bigint, seq bigint, bid_time timestamptz, auto boolean
) ON COMMIT DELETE ROWS`

var bidColumns = []string{"event_id", "bid_id", "item_id", "user_id", "amount_cents", "previous_cents", "seq", "bid_time", "auto"}

// Config says where and how to write.
type Config struct {
	URL      string
	Strategy Strategy
	// MaxConns bounds the pool. One writer uses one connection at a time;
	// the rest serve readiness checks and migrations.
	MaxConns int32
}

// Store is the worker's PostgreSQL adapter.
type Store struct {
	pool     *pgxpool.Pool
	strategy Strategy
}

// Open prepares a connection pool without connecting: the worker must start
// (and report not-ready) while PostgreSQL is down.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.Strategy == "" {
		cfg.Strategy = Unnest
	}
	if !slices.Contains(Strategies, cfg.Strategy) {
		return nil, fmt.Errorf("unknown write strategy %q", cfg.Strategy)
	}
	pc, err := pgxpool.ParseConfig(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("parse postgres url: %w", err)
	}
	if cfg.MaxConns > 0 {
		pc.MaxConns = cfg.MaxConns
	}
	if pc.ConnConfig.ConnectTimeout == 0 {
		// A hung server must fail the attempt so the writer can back off and
		// readiness can say so, rather than block until the OS gives up.
		pc.ConnConfig.ConnectTimeout = 5 * time.Second
	}
	if cfg.Strategy == Copy {
		pc.AfterConnect = func(ctx context.Context, c *pgx.Conn) error {
			_, err := c.Exec(ctx, createStage)
			return err
		}
	}
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("open postgres pool: %w", err)
	}
	return &Store{pool: pool, strategy: cfg.Strategy}, nil
}

// Close closes the pool. Safe to call more than once.
func (s *Store) Close() { s.pool.Close() }

// Ping checks that PostgreSQL answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("ping postgres: %w", err)
	}
	return nil
}

// Migrate applies the shared schema's migrations.
func (s *Store) Migrate(ctx context.Context) error { return schema.Migrate(ctx, s.pool) }

// DeadLetter is a message that could not be decoded into an event.
type DeadLetter struct {
	StreamSeq uint64
	Subject   string
	Reason    string
	Payload   []byte
}

// Result counts what one batch did.
type Result struct {
	// Inserted is the number of new bid rows.
	Inserted int
	// Duplicates is the number of bid events already archived, or repeated
	// within the batch, and therefore skipped.
	Duplicates int
	// DeadLetters is the number of dead letters in the batch.
	DeadLetters int
}

// Write stores one batch in one transaction: dead letters, bids, then item
// state. Either all of it commits or none of it does, so the caller may
// acknowledge the messages exactly when Write returns nil, and simply retry
// the same batch otherwise.
func (s *Store) Write(ctx context.Context, events []models.Event, dead []DeadLetter) (Result, error) {
	bids, dups := uniqueBids(events)
	res := Result{Duplicates: dups, DeadLetters: len(dead)}
	if s.strategy == Unnest {
		inserted, err := s.writePipelined(ctx, bids, events, dead)
		if err != nil {
			return Result{}, err
		}
		res.Inserted = inserted
		res.Duplicates += len(bids) - inserted
		return res, nil
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return Result{}, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // a no-op after Commit
	for _, st := range deadLetterStatements(dead) {
		if _, err := tx.Exec(ctx, st.sql, st.args...); err != nil {
			return Result{}, fmt.Errorf("%s: %w", st.what, err)
		}
	}
	inserted, err := s.insertBids(ctx, tx, bids)
	if err != nil {
		return Result{}, err
	}
	res.Inserted = inserted
	res.Duplicates += len(bids) - inserted
	for _, st := range itemStatements(events) {
		if _, err := tx.Exec(ctx, st.sql, st.args...); err != nil {
			return Result{}, fmt.Errorf("%s: %w", st.what, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return Result{}, fmt.Errorf("commit: %w", err)
	}
	return res, nil
}

// statement is one SQL statement of a batch write.
type statement struct {
	what string // for errors
	sql  string
	args []any
}

// writePipelined sends the whole batch in one round trip: every statement
// queued in a pgx.Batch, which PostgreSQL runs as one implicit transaction
// (the pipeline's single Sync commits it, and an error anywhere rolls all
// of it back). It returns the number of bids inserted.
func (s *Store) writePipelined(ctx context.Context, bids, events []models.Event, dead []DeadLetter) (int, error) {
	stmts := deadLetterStatements(dead)
	bidAt := -1
	if len(bids) > 0 {
		bidAt = len(stmts)
		stmts = append(stmts, statement{what: "insert bids (unnest)", sql: insertBidsUnnestSQL, args: bidArrays(bids)})
	}
	stmts = append(stmts, itemStatements(events)...)
	if len(stmts) == 0 {
		return 0, nil
	}
	var b pgx.Batch
	for _, st := range stmts {
		b.Queue(st.sql, st.args...)
	}
	br := s.pool.SendBatch(ctx, &b)
	inserted := 0
	for i, st := range stmts {
		tag, err := br.Exec()
		if err != nil {
			br.Close()
			return 0, fmt.Errorf("%s: %w", st.what, err)
		}
		if i == bidAt {
			inserted = int(tag.RowsAffected())
		}
	}
	// Close reports a failed commit.
	if err := br.Close(); err != nil {
		return 0, fmt.Errorf("commit: %w", err)
	}
	return inserted, nil
}

// uniqueBids returns the batch's bid events once per event id, sorted by it:
// concurrent workers then lock index entries in the same order and cannot
// deadlock on each other.
func uniqueBids(events []models.Event) ([]models.Event, int) {
	bids := make([]models.Event, 0, len(events))
	for _, e := range events {
		if e.Type == models.EventBid {
			bids = append(bids, e)
		}
	}
	slices.SortFunc(bids, func(a, b models.Event) int { return cmp.Compare(a.EventID, b.EventID) })
	n := len(bids)
	bids = slices.CompactFunc(bids, func(a, b models.Event) bool { return a.EventID == b.EventID })
	return bids, n - len(bids)
}

const insertBidSQL = `INSERT INTO bids (event_id, bid_id, item_id, user_id, amount_cents, previous_cents, seq, bid_time, auto)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (event_id) DO NOTHING`

func bidArgs(e models.Event) []any {
	return []any{e.EventID, e.BidID, e.ItemID, e.UserID, int64(e.Amount), int64(e.PreviousBid), int64(e.Seq), e.Timestamp, e.Auto}
}

func (s *Store) insertBids(ctx context.Context, tx pgx.Tx, bids []models.Event) (int, error) {
	if len(bids) == 0 {
		return 0, nil
	}
	var n int64
	switch s.strategy {
	case Single:
		for _, b := range bids {
			tag, err := tx.Exec(ctx, insertBidSQL, bidArgs(b)...)
			if err != nil {
				return 0, fmt.Errorf("insert bid %s: %w", b.EventID, err)
			}
			n += tag.RowsAffected()
		}
	case Batch:
		var batch pgx.Batch
		for _, b := range bids {
			batch.Queue(insertBidSQL, bidArgs(b)...)
		}
		br := tx.SendBatch(ctx, &batch)
		for range bids {
			tag, err := br.Exec()
			if err != nil {
				br.Close()
				return 0, fmt.Errorf("insert bids (batch): %w", err)
			}
			n += tag.RowsAffected()
		}
		if err := br.Close(); err != nil {
			return 0, fmt.Errorf("insert bids (batch): %w", err)
		}
	default: // Copy; Unnest is written by writePipelined
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{stageTable}, bidColumns,
			pgx.CopyFromSlice(len(bids), func(i int) ([]any, error) { return bidArgs(bids[i]), nil })); err != nil {
			return 0, fmt.Errorf("copy bids to staging: %w", err)
		}
		// ORDER BY keeps the lock order of concurrent workers identical.
		tag, err := tx.Exec(ctx, `INSERT INTO bids (event_id, bid_id, item_id, user_id, amount_cents, previous_cents, seq, bid_time, auto)
			SELECT event_id, bid_id, item_id, user_id, amount_cents, previous_cents, seq, bid_time, auto
			FROM `+stageTable+` ORDER BY event_id ON CONFLICT (event_id) DO NOTHING`)
		if err != nil {
			return 0, fmt.Errorf("insert bids from staging: %w", err)
		}
		n = tag.RowsAffected()
	}
	return int(n), nil
}

const insertBidsUnnestSQL = `INSERT INTO bids (event_id, bid_id, item_id, user_id, amount_cents, previous_cents, seq, bid_time, auto)
	SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::bigint[], $7::bigint[], $8::timestamptz[], $9::boolean[])
	ON CONFLICT (event_id) DO NOTHING`

func bidArrays(bids []models.Event) []any {
	var (
		ids, bidIDs, items, users = make([]string, len(bids)), make([]string, len(bids)), make([]string, len(bids)), make([]string, len(bids))
		amounts, prevs, seqs      = make([]int64, len(bids)), make([]int64, len(bids)), make([]int64, len(bids))
		times                     = make([]time.Time, len(bids))
		autos                     = make([]bool, len(bids))
	)
	for i, b := range bids {
		ids[i], bidIDs[i], items[i], users[i] = b.EventID, b.BidID, b.ItemID, b.UserID
		amounts[i], prevs[i], seqs[i], times[i], autos[i] = int64(b.Amount), int64(b.PreviousBid), int64(b.Seq), b.Timestamp, b.Auto
	}
	return []any{ids, bidIDs, items, users, amounts, prevs, seqs, times, autos}
}

func deadLetterStatements(dead []DeadLetter) []statement {
	out := make([]statement, 0, len(dead))
	for _, d := range dead {
		sum := sha256.Sum256(d.Payload)
		out = append(out, statement{what: "insert dead letter", sql: `INSERT INTO dead_letters (stream_seq, subject, reason, payload, payload_sha256)
			VALUES ($1, $2, $3, $4, $5) ON CONFLICT (stream_seq, payload_sha256) DO NOTHING`,
			args: []any{int64(d.StreamSeq), d.Subject, d.Reason, d.Payload, sum[:]}})
	}
	return out
}

// itemStatements move each item's row to the newest event of the batch, and
// only forward: the WHERE clauses compare seq, so an event older than what
// is stored (out of order, redelivered, or from a batch that lost a race
// with another worker) changes nothing. A close is sticky.
func itemStatements(events []models.Event) []statement {
	var out []statement
	latest := map[string]models.Event{}
	closes := map[string]models.Event{}
	for _, e := range events {
		m := latest
		if e.Type == models.EventAuctionClosed || e.Type == models.EventAuctionCancelled {
			m = closes
		}
		if cur, ok := m[e.ItemID]; !ok || e.Seq > cur.Seq {
			m[e.ItemID] = e
		}
	}
	if len(latest) > 0 {
		rows := sortedByItem(latest)
		var (
			items, bidders     = make([]string, len(rows)), make([]string, len(rows))
			seqs, amts, counts = make([]int64, len(rows)), make([]int64, len(rows)), make([]int64, len(rows))
			ends, times        = make([]*time.Time, len(rows)), make([]time.Time, len(rows))
		)
		for i, e := range rows {
			items[i], bidders[i], seqs[i], amts[i], counts[i], ends[i], times[i] =
				e.ItemID, e.UserID, int64(e.Seq), int64(e.Amount), e.BidCount, e.EndsAt, e.Timestamp
		}
		out = append(out, statement{what: "upsert items from bids", sql: `INSERT INTO items AS i (item_id, seq, current_cents, highest_bidder_id, bid_count, ends_at, last_bid_at)
			SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::text[], $5::bigint[], $6::timestamptz[], $7::timestamptz[])
			ON CONFLICT (item_id) DO UPDATE SET
				seq = EXCLUDED.seq,
				current_cents = EXCLUDED.current_cents,
				highest_bidder_id = EXCLUDED.highest_bidder_id,
				bid_count = GREATEST(i.bid_count, EXCLUDED.bid_count),
				ends_at = coalesce(EXCLUDED.ends_at, i.ends_at),
				last_bid_at = EXCLUDED.last_bid_at,
				updated_at = now()
			WHERE i.seq < EXCLUDED.seq`,
			args: []any{items, seqs, amts, bidders, counts, ends, times}})
	}
	if len(closes) > 0 {
		rows := sortedByItem(closes)
		var (
			items, winners     = make([]string, len(rows)), make([]string, len(rows))
			seqs, amts, counts = make([]int64, len(rows)), make([]int64, len(rows)), make([]int64, len(rows))
			ends, times        = make([]*time.Time, len(rows)), make([]time.Time, len(rows))
			// The description; NULL where an older gateway's close lacks it.
			names             = make([]*string, len(rows))
			starting, incs    = make([]*int64, len(rows)), make([]*int64, len(rows))
			reserves, starts  = make([]*int64, len(rows)), make([]*time.Time, len(rows))
			statuses, sellers = make([]string, len(rows)), make([]*string, len(rows))
		)
		for i, e := range rows {
			items[i], winners[i], seqs[i], amts[i], counts[i], ends[i], times[i] =
				e.ItemID, e.WinnerID, int64(e.Seq), int64(e.Amount), e.BidCount, e.EndsAt, e.Timestamp
			if e.Name != "" {
				sp, inc, res := int64(e.StartingPrice), int64(e.MinIncrement), int64(e.ReservePrice)
				names[i], starting[i], incs[i], reserves[i], starts[i] = &e.Name, &sp, &inc, &res, e.StartsAt
			}
			statuses[i] = string(models.StatusClosed)
			if e.Type == models.EventAuctionCancelled {
				statuses[i] = string(models.StatusCancelled)
			}
			if e.SellerID != "" {
				sellers[i] = &e.SellerID
			}
		}
		// The close (or cancellation) names the final price and winner. Its
		// price only replaces the stored one when it is at least as new,
		// since nothing follows a close.
		out = append(out, statement{what: "upsert items from closes", sql: `INSERT INTO items AS i (item_id, seq, status, current_cents, highest_bidder_id, bid_count, ends_at, winner_id, closed_at,
				name, starting_cents, min_increment_cents, reserve_cents, starts_at, seller_id)
			SELECT u.item_id, u.seq, u.status, u.amount, coalesce(u.winner, ''), u.bid_count, u.ends_at, nullif(u.winner, ''), u.closed_at,
				u.name, u.starting, u.inc, u.reserve, u.starts_at, u.seller
			FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::text[], $5::bigint[], $6::timestamptz[], $7::timestamptz[],
				$8::text[], $9::bigint[], $10::bigint[], $11::bigint[], $12::timestamptz[], $13::text[], $14::text[])
				AS u(item_id, seq, amount, winner, bid_count, ends_at, closed_at, name, starting, inc, reserve, starts_at, status, seller)
			ON CONFLICT (item_id) DO UPDATE SET
				name = coalesce(EXCLUDED.name, i.name),
				starting_cents = coalesce(EXCLUDED.starting_cents, i.starting_cents),
				min_increment_cents = coalesce(EXCLUDED.min_increment_cents, i.min_increment_cents),
				reserve_cents = coalesce(EXCLUDED.reserve_cents, i.reserve_cents),
				starts_at = coalesce(EXCLUDED.starts_at, i.starts_at),
				seller_id = coalesce(EXCLUDED.seller_id, i.seller_id),
				status = EXCLUDED.status,
				seq = GREATEST(i.seq, EXCLUDED.seq),
				current_cents = CASE WHEN EXCLUDED.seq >= i.seq AND EXCLUDED.current_cents > 0
					THEN EXCLUDED.current_cents ELSE i.current_cents END,
				bid_count = GREATEST(i.bid_count, EXCLUDED.bid_count),
				ends_at = coalesce(EXCLUDED.ends_at, i.ends_at),
				winner_id = EXCLUDED.winner_id,
				closed_at = EXCLUDED.closed_at,
				updated_at = now()
			WHERE i.status NOT IN ('closed', 'cancelled') OR i.seq < EXCLUDED.seq`,
			args: []any{items, seqs, amts, winners, counts, ends, times, names, starting, incs, reserves, starts, statuses, sellers}})
	}
	return out
}

func sortedByItem(m map[string]models.Event) []models.Event {
	out := make([]models.Event, 0, len(m))
	for _, e := range m {
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b models.Event) int { return cmp.Compare(a.ItemID, b.ItemID) })
	return out
}

// itemSeqKey is the constraint migration 0003 puts on bids: one archived
// event per item and seq.
const itemSeqKey = "bids_item_seq_key"

// SeqTaken says whether err is PostgreSQL refusing a bid because a different
// event is already archived with the same item and seq. Such an event must
// not be dropped as a duplicate: only the event id says that two messages
// are copies of one event.
func SeqTaken(err error) bool {
	var pe *pgconn.PgError
	const uniqueViolation = "23505"
	return errors.As(err, &pe) && pe.Code == uniqueViolation && pe.ConstraintName == itemSeqKey
}

// SeqHolder returns the id of the event archived with the item and seq, or
// "" if there is none.
func (s *Store) SeqHolder(ctx context.Context, itemID string, seq uint64) (string, error) {
	var id string
	err := s.pool.QueryRow(ctx, "SELECT event_id FROM bids WHERE item_id = $1 AND seq = $2", itemID, int64(seq)).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("event at %s seq %d: %w", itemID, seq, err)
	}
	return id, nil
}

// PurgeDue returns up to limit closed items, oldest close first, that closed
// at or before closedBefore and whose history is still whole in the stream.
func (s *Store) PurgeDue(ctx context.Context, closedBefore time.Time, limit int) ([]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT item_id FROM items
		WHERE status IN ('closed', 'cancelled') AND stream_purged_at IS NULL AND closed_at <= $1
		ORDER BY closed_at LIMIT $2`, closedBefore, limit)
	if err != nil {
		return nil, fmt.Errorf("items due for purging: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("items due for purging: %w", err)
	}
	return ids, nil
}

// MarkPurged records that the items' history is purged from the stream, so
// that later passes leave them alone.
func (s *Store) MarkPurged(ctx context.Context, itemIDs []string) error {
	if len(itemIDs) == 0 {
		return nil
	}
	if _, err := s.pool.Exec(ctx, `UPDATE items SET stream_purged_at = now()
		WHERE item_id = ANY($1) AND stream_purged_at IS NULL`, itemIDs); err != nil {
		return fmt.Errorf("mark %d items purged: %w", len(itemIDs), err)
	}
	return nil
}

// Permanent says whether err will come back however often the same batch is
// retried: PostgreSQL rejected the data itself (a data exception or a
// constraint), not the connection or the server's state.
func Permanent(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return strings.HasPrefix(pe.Code, "22") || strings.HasPrefix(pe.Code, "23")
	}
	return false
}
