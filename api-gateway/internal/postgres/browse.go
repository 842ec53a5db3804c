package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bidding-platform/api-gateway/internal/service"
	"github.com/bidding-platform/shared/models"
)

var _ service.FinalArchive = (*Store)(nil)

// archivedColumns are a final item's columns as scanArchived reads them.
// archivedWhole holds for a row the archive has whole: closes archived
// before items carried their description lack it.
const (
	archivedColumns = `item_id, name, starting_cents, min_increment_cents, coalesce(reserve_cents, 0), starts_at,
		ends_at, current_cents, highest_bidder_id, bid_count, seq, status, coalesce(seller_id, ''), closed_at`
	archivedWhole = `name IS NOT NULL AND starting_cents IS NOT NULL AND min_increment_cents IS NOT NULL AND starts_at IS NOT NULL`
)

// scanArchived reads one row of archivedColumns.
func scanArchived(row pgx.Row) (service.FinalItem, error) {
	var (
		it                                                  models.Item
		startingCents, incCents, reserveCents, currentCents int64
		startsAt                                            time.Time
		endsAt, closedAt                                    *time.Time
		seq                                                 int64
		status                                              string
	)
	err := row.Scan(&it.ID, &it.Name, &startingCents, &incCents, &reserveCents, &startsAt, &endsAt, &currentCents,
		&it.HighestBidderID, &it.BidCount, &seq, &status, &it.SellerID, &closedAt)
	if err != nil {
		return service.FinalItem{}, err
	}
	it.Status = models.Status(status)
	it.StartingPrice, it.MinIncrement, it.ReservePrice = models.Money(startingCents), models.Money(incCents), models.Money(reserveCents)
	it.CurrentBid, it.Seq, it.StartsAt = models.Money(currentCents), uint64(seq), startsAt.UTC()
	if endsAt != nil {
		it.EndsAt = endsAt.UTC()
	}
	f := service.FinalItem{Item: it}
	if closedAt != nil {
		f.At = closedAt.UTC()
	}
	return f, nil
}

// FinalItems returns up to limit archived items of status (closed or
// cancelled), most recently final first, ties by id descending, strictly
// after after: keyset pagination on (closed_at, item_id), which index
// items_final_recent serves, so that items archived while a client pages
// never shift or repeat rows. Rows the archive does not hold whole are left
// out, as ArchivedItem leaves them.
func (s *Store) FinalItems(ctx context.Context, status models.Status, after service.FinalKey, limit int) ([]service.FinalItem, error) {
	ctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	const query = `SELECT ` + archivedColumns + ` FROM items
		WHERE status = $1 AND closed_at IS NOT NULL AND ` + archivedWhole
	const order = ` ORDER BY closed_at DESC, item_id DESC LIMIT `
	var (
		rows pgx.Rows
		err  error
	)
	if after.ID == "" {
		rows, err = s.pool.Query(ctx, query+order+`$2`, string(status), limit)
	} else {
		rows, err = s.pool.Query(ctx, query+` AND (closed_at, item_id) < ($2, $3)`+order+`$4`,
			string(status), after.At, after.ID, limit)
	}
	if err == nil {
		var items []service.FinalItem
		items, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (service.FinalItem, error) { return scanArchived(r) })
		if err == nil {
			return items, nil
		}
	}
	if isUndefinedTable(err) || isUndefinedColumn(err) {
		// Nothing archived yet (the worker creates the tables when it
		// first starts), or an archive older than item descriptions.
		return nil, nil
	}
	return nil, fmt.Errorf("list %s items: %w", status, err)
}
