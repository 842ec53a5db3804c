package app

import (
	"context"

	"github.com/bidding-platform/api-gateway/internal/postgres"
)

// openHistory prepares the bid history reader; it does not need PostgreSQL
// to be up.
func openHistory(ctx context.Context, url string) (historyDB, error) {
	return postgres.Open(ctx, url)
}
