package app

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
)

// redisLogger carries go-redis's own lines (a pool that cannot dial, a
// connection it dropped) into the gateway's logger. Left alone, go-redis
// prints them to stderr in its own format, past LOG_LEVEL and LOG_FORMAT.
type redisLogger struct{ log *slog.Logger }

// Printf is go-redis's logging interface. It logs at Warn: go-redis prints
// only trouble, and the error it returns to the gateway is handled there.
func (l redisLogger) Printf(ctx context.Context, format string, v ...any) {
	l.log.WarnContext(ctx, strings.TrimPrefix(fmt.Sprintf(format, v...), "redis: "))
}
