package database

import (
	"context"

	"github.com/jackc/pgx/v5"
)

// QueryRow lets tests read what was written.
func QueryRow(ctx context.Context, s *Store, sql string, args ...any) pgx.Row {
	return s.pool.QueryRow(ctx, sql, args...)
}
