package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bidding-platform/api-gateway/internal/service"
	"github.com/bidding-platform/shared/models"
)

var _ service.UserArchive = (*Store)(nil)

// UserBids walks bids_user_time down from the position.
func (s *Store) UserBids(ctx context.Context, userID string, after *service.BidKey, n int) ([]models.Bid, error) {
	ctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	const cols = `SELECT event_id, bid_id, item_id, user_id, amount_cents, previous_cents, seq, bid_time, auto FROM bids `
	var (
		rows pgx.Rows
		err  error
	)
	if after == nil {
		rows, err = s.pool.Query(ctx, cols+`WHERE user_id = $1
			ORDER BY bid_time DESC, event_id DESC LIMIT $2`, userID, n)
	} else {
		rows, err = s.pool.Query(ctx, cols+`WHERE user_id = $1 AND (bid_time, event_id) < ($2, $3)
			ORDER BY bid_time DESC, event_id DESC LIMIT $4`, userID, after.At, after.EventID, n)
	}
	if err != nil {
		return emptyOr[models.Bid](fmt.Errorf("query bids of user %s: %w", userID, err))
	}
	bids, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (models.Bid, error) {
		var (
			b                 models.Bid
			amount, prev, seq int64
		)
		err := r.Scan(&b.EventID, &b.BidID, &b.ItemID, &b.UserID, &amount, &prev, &seq, &b.Timestamp, &b.Auto)
		b.Amount, b.PreviousBid, b.Seq = models.Money(amount), models.Money(prev), uint64(seq)
		b.Timestamp = b.Timestamp.UTC()
		return b, err
	})
	if err != nil {
		return emptyOr[models.Bid](fmt.Errorf("read bids of user %s: %w", userID, err))
	}
	return bids, nil
}

// BiddingItems groups the user's bids by item, leaving out items the
// archive holds as final.
func (s *Store) BiddingItems(ctx context.Context, userID string, after *service.ItemKey, n int) ([]service.ArchivedItem, error) {
	ctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	q := `SELECT b.item_id, max(b.bid_time) AS last_bid, max(b.amount_cents)
		FROM bids b LEFT JOIN items i ON i.item_id = b.item_id
		WHERE b.user_id = $1 AND coalesce(i.status, 'active') IN ('scheduled', 'active')
		GROUP BY b.item_id `
	args := []any{userID, n}
	if after != nil {
		q += `HAVING (max(b.bid_time), b.item_id) < ($3, $4) `
		args = append(args, after.At, after.ID)
	}
	rows, err := s.pool.Query(ctx, q+`ORDER BY last_bid DESC, b.item_id DESC LIMIT $2`, args...)
	if err != nil {
		return emptyOr[service.ArchivedItem](fmt.Errorf("query items user %s bid on: %w", userID, err))
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (service.ArchivedItem, error) {
		var (
			a   service.ArchivedItem
			bid int64
		)
		err := r.Scan(&a.Item.ID, &a.Key.At, &bid)
		a.Key.ID, a.Key.At, a.YourBid = a.Item.ID, a.Key.At.UTC(), models.Money(bid)
		return a, err
	})
	if err != nil {
		return emptyOr[service.ArchivedItem](fmt.Errorf("read items user %s bid on: %w", userID, err))
	}
	return out, nil
}

// itemCols are an archived item's columns as scanItem reads them; the
// description is NULL for items that have not closed, or closed before
// closes carried it.
const itemCols = `i.item_id, i.name, i.starting_cents, i.min_increment_cents, coalesce(i.reserve_cents, 0), i.starts_at,
	i.ends_at, i.current_cents, i.highest_bidder_id, i.bid_count, i.seq, i.status, coalesce(i.seller_id, '')`

// scanItem reads itemCols and then extra; complete says the description
// was there.
func scanItem(r pgx.CollectableRow, extra ...any) (it models.Item, complete bool, err error) {
	var (
		name                  *string
		starting, inc         *int64
		reserve, current, seq int64
		startsAt, endsAt      *time.Time
		status                string
	)
	dst := append([]any{&it.ID, &name, &starting, &inc, &reserve, &startsAt, &endsAt, &current, &it.HighestBidderID,
		&it.BidCount, &seq, &status, &it.SellerID}, extra...)
	if err := r.Scan(dst...); err != nil {
		return it, false, err
	}
	it.Status, it.ReservePrice, it.CurrentBid, it.Seq = models.Status(status), models.Money(reserve), models.Money(current), uint64(seq)
	if endsAt != nil {
		it.EndsAt = endsAt.UTC()
	}
	complete = name != nil && starting != nil && inc != nil && startsAt != nil
	if complete {
		it.Name, it.StartingPrice, it.MinIncrement, it.StartsAt = *name, models.Money(*starting), models.Money(*inc), startsAt.UTC()
	}
	return it, complete, nil
}

// WonItems walks items_winner_closed down from the position.
func (s *Store) WonItems(ctx context.Context, userID string, after *service.ItemKey, n int) ([]service.ArchivedItem, error) {
	ctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	q := `SELECT ` + itemCols + `, i.closed_at,
			coalesce((SELECT max(b.amount_cents) FROM bids b WHERE b.item_id = i.item_id AND b.user_id = $1), 0)
		FROM items i WHERE i.winner_id = $1 AND i.status = 'closed' AND i.closed_at IS NOT NULL `
	args := []any{userID, n}
	if after != nil {
		q += `AND (i.closed_at, i.item_id) < ($3, $4) `
		args = append(args, after.At, after.ID)
	}
	rows, err := s.pool.Query(ctx, q+`ORDER BY i.closed_at DESC, i.item_id DESC LIMIT $2`, args...)
	if err != nil {
		return emptyOr[service.ArchivedItem](fmt.Errorf("query items user %s won: %w", userID, err))
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (service.ArchivedItem, error) {
		var (
			a      service.ArchivedItem
			closed time.Time
			bid    int64
		)
		var err error
		a.Item, a.Complete, err = scanItem(r, &closed, &bid)
		a.Key, a.YourBid = service.ItemKey{At: closed.UTC(), ID: a.Item.ID}, models.Money(bid)
		return a, err
	})
	if err != nil {
		return emptyOr[service.ArchivedItem](fmt.Errorf("read items user %s won: %w", userID, err))
	}
	return out, nil
}

// SoldItems walks items_seller_starts_bytewise down from the position,
// final and complete items only: the store answers for the others. Ids
// compare byte-wise (COLLATE "C"), as the service merges these rows with
// the store's and as the cursor was made: in a database's own collation,
// such as en_US.UTF-8, "Lot2" and "lot1" swap places and pages skip or
// repeat items of one start time.
func (s *Store) SoldItems(ctx context.Context, sellerID string, after *service.ItemKey, n int) ([]service.ArchivedItem, error) {
	ctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	q := `SELECT ` + itemCols + ` FROM items i
		WHERE i.seller_id = $1 AND i.status IN ('closed', 'cancelled') AND i.name IS NOT NULL
			AND i.starting_cents IS NOT NULL AND i.min_increment_cents IS NOT NULL AND i.starts_at IS NOT NULL `
	args := []any{sellerID, n}
	if after != nil {
		q += `AND (i.starts_at, i.item_id COLLATE "C") < ($3, $4) `
		args = append(args, after.At, after.ID)
	}
	rows, err := s.pool.Query(ctx, q+`ORDER BY i.starts_at DESC, i.item_id COLLATE "C" DESC LIMIT $2`, args...)
	if err != nil {
		return emptyOr[service.ArchivedItem](fmt.Errorf("query items of seller %s: %w", sellerID, err))
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (service.ArchivedItem, error) {
		var (
			a   service.ArchivedItem
			err error
		)
		a.Item, a.Complete, err = scanItem(r)
		a.Key = service.ItemKey{At: a.Item.StartsAt, ID: a.Item.ID}
		return a, err
	})
	if err != nil {
		return emptyOr[service.ArchivedItem](fmt.Errorf("read items of seller %s: %w", sellerID, err))
	}
	return out, nil
}

// ArchivedItems reads the final, complete items among ids by primary key in
// one query.
func (s *Store) ArchivedItems(ctx context.Context, ids []string) (map[string]models.Item, error) {
	out := make(map[string]models.Item, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	ctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	rows, err := s.pool.Query(ctx, `SELECT `+archivedColumns+` FROM items
		WHERE item_id = ANY($1) AND status IN ('closed', 'cancelled') AND `+archivedWhole, ids)
	if err == nil {
		var finals []service.FinalItem
		finals, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (service.FinalItem, error) { return scanArchived(r) })
		for _, f := range finals {
			out[f.Item.ID] = f.Item
		}
	}
	switch {
	case isUndefinedTable(err), isUndefinedColumn(err):
		// An archive not created or migrated yet holds nothing.
		return map[string]models.Item{}, nil
	case err != nil:
		return nil, fmt.Errorf("read %d archived items: %w", len(ids), err)
	}
	return out, nil
}

// emptyOr is no rows for an archive the worker has not created (or not
// migrated) yet, which has archived nothing, and err otherwise.
func emptyOr[T any](err error) ([]T, error) {
	if isUndefinedTable(err) || isUndefinedColumn(err) {
		return []T{}, nil
	}
	return nil, err
}
