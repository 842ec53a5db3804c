// Package postgres reads the archived bid history and closed items that the
// archival worker writes (tables from shared/schema). A bid reaches
// PostgreSQL only when Redis does not hold its item; every call here has a
// short deadline, and the store opens without the server so the gateway
// starts and bids while it is down.
package postgres

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bidding-platform/shared/models"
)

// Page sizes for BidHistory.
const (
	DefaultLimit = 50
	MaxLimit     = 500
)

// queryTimeout bounds every call, so a hung or unreachable PostgreSQL turns
// into a quick 503 instead of a request piling up.
const queryTimeout = 2 * time.Second

// Store is the gateway's read-only view of the archive.
type Store struct {
	pool *pgxpool.Pool
}

// Open prepares a pool without connecting; it fails only for a malformed
// URL.
func Open(ctx context.Context, url string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parse postgres url: %w", err)
	}
	if cfg.ConnConfig.ConnectTimeout == 0 || cfg.ConnConfig.ConnectTimeout > queryTimeout {
		cfg.ConnConfig.ConnectTimeout = queryTimeout
	}
	// History reads are light; a small pool keeps a busy gateway from
	// exhausting PostgreSQL's connections.
	cfg.MaxConns = 8
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open postgres pool: %w", err)
	}
	return &Store{pool: pool}, nil
}

// Close closes the pool. Safe to call more than once.
func (s *Store) Close() { s.pool.Close() }

// Ping checks that PostgreSQL answers.
func (s *Store) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("ping postgres: %w", err)
	}
	return nil
}

// BidHistory returns one page of an item's archived bids, newest first
// (highest seq first). The cursor names the last bid of the previous page
// and the query continues strictly below it (keyset pagination), so bids
// archived while a client pages never shift or repeat rows. A limit outside
// 1..MaxLimit is clamped (0 means DefaultLimit). A cursor this store did not
// issue for this item gives models.ErrBadCursor.
func (s *Store) BidHistory(ctx context.Context, itemID string, limit int, cursor string) (models.BidPage, error) {
	switch {
	case limit <= 0:
		limit = DefaultLimit
	case limit > MaxLimit:
		limit = MaxLimit
	}
	ctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()

	const cols = `SELECT event_id, bid_id, item_id, user_id, amount_cents, previous_cents, seq, bid_time, auto FROM bids `
	// One row more than asked says whether another page exists.
	var (
		rows pgx.Rows
		err  error
	)
	if cursor == "" {
		rows, err = s.pool.Query(ctx, cols+`WHERE item_id = $1
			ORDER BY seq DESC, event_id DESC LIMIT $2`, itemID, limit+1)
	} else {
		seq, eventID, cerr := decodeCursor(itemID, cursor)
		if cerr != nil {
			return models.BidPage{}, cerr
		}
		rows, err = s.pool.Query(ctx, cols+`WHERE item_id = $1 AND (seq, event_id) < ($2, $3)
			ORDER BY seq DESC, event_id DESC LIMIT $4`, itemID, seq, eventID, limit+1)
	}
	if err != nil {
		if isUndefinedTable(err) {
			return emptyPage(itemID), nil
		}
		return models.BidPage{}, fmt.Errorf("query bid history of %s: %w", itemID, err)
	}
	bids, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (models.Bid, error) {
		var (
			b            models.Bid
			amount, prev int64
			seq          int64
		)
		err := r.Scan(&b.EventID, &b.BidID, &b.ItemID, &b.UserID, &amount, &prev, &seq, &b.Timestamp, &b.Auto)
		b.Amount, b.PreviousBid, b.Seq = models.Money(amount), models.Money(prev), uint64(seq)
		b.Timestamp = b.Timestamp.UTC()
		return b, err
	})
	if isUndefinedTable(err) {
		// The archival worker creates the tables when it first starts; until
		// then nothing has been archived, which is an empty history, not an
		// outage.
		return emptyPage(itemID), nil
	}
	if err != nil {
		return models.BidPage{}, fmt.Errorf("read bid history of %s: %w", itemID, err)
	}
	page := models.BidPage{ItemID: itemID, Bids: bids}
	if len(bids) > limit {
		page.Bids = bids[:limit]
		last := page.Bids[limit-1]
		page.NextCursor = encodeCursor(itemID, last.Seq, last.EventID)
	}
	if page.Bids == nil {
		page.Bids = []models.Bid{}
	}
	return page, nil
}

// ArchivedItem returns a closed or cancelled item as the archive holds it, for when the
// live store has let it go. found is false for an item the archive does not
// hold closed with its description (older archives lack the columns).
func (s *Store) ArchivedItem(ctx context.Context, id string) (it models.Item, found bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	f, err := scanArchived(s.pool.QueryRow(ctx, `SELECT `+archivedColumns+` FROM items
		WHERE item_id = $1 AND status IN ('closed', 'cancelled') AND `+archivedWhole, id))
	switch {
	case errors.Is(err, pgx.ErrNoRows), isUndefinedTable(err), isUndefinedColumn(err):
		return models.Item{}, false, nil
	case err != nil:
		return models.Item{}, false, fmt.Errorf("read archived item %s: %w", id, err)
	}
	return f.Item, true, nil
}

func emptyPage(itemID string) models.BidPage {
	return models.BidPage{ItemID: itemID, Bids: []models.Bid{}}
}

func isUndefinedTable(err error) bool { return hasCode(err, "42P01") }

func isUndefinedColumn(err error) bool { return hasCode(err, "42703") }

func hasCode(err error, code string) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == code
}

// cursorVersion lets the format change without misreading old cursors.
const cursorVersion = "h1"

// encodeCursor makes an opaque token for "after this bid of this item".
// The item id inside it stops a cursor from one item being used on another.
func encodeCursor(itemID string, seq uint64, eventID string) string {
	raw := []byte(cursorVersion + "\x00" + itemID + "\x00" + strconv.FormatUint(seq, 10) + "\x00" + eventID)
	sum := sha256.Sum256(raw)
	return base64.RawURLEncoding.EncodeToString(append(raw, sum[:checkLen]...))
}

// checkLen bytes of a SHA-256 end every cursor, so a truncated, edited or
// made-up one is refused rather than read as a different position.
const checkLen = 8

func decodeCursor(itemID, cursor string) (int64, string, error) {
	b, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil || len(b) <= checkLen {
		return 0, "", models.ErrBadCursor
	}
	raw, check := b[:len(b)-checkLen], b[len(b)-checkLen:]
	if sum := sha256.Sum256(raw); !bytes.Equal(sum[:checkLen], check) {
		return 0, "", models.ErrBadCursor
	}
	parts := strings.Split(string(raw), "\x00")
	if len(parts) != 4 || parts[0] != cursorVersion || parts[1] != itemID || parts[3] == "" {
		return 0, "", models.ErrBadCursor
	}
	seq, err := strconv.ParseInt(parts[2], 10, 64)
	if err != nil || seq <= 0 {
		return 0, "", models.ErrBadCursor
	}
	return seq, parts[3], nil
}
