package app

import (
	"context"
	"errors"
)

// openHistory connects the bid history reader.
func openHistory(ctx context.Context, url string) (historyDB, error) {
	return nil, errors.New("bid history reader is not built yet")
}
