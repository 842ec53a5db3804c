package redis

import (
	"errors"
	"testing"

	"github.com/bidding-platform/api-gateway/internal/service"
)

// replyError is an error reply as go-redis returns it.
type replyError string

func (e replyError) Error() string { return string(e) }
func (replyError) RedisError()     {}

func TestClassify(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		err         error
		unavailable bool
	}{
		{replyError("MOVED 5645 127.0.0.1:42399"), true},
		{replyError("ASK 5645 127.0.0.1:42399"), true},
		{replyError("CLUSTERDOWN The cluster is down"), true},
		{replyError("LOADING Redis is loading the dataset in memory"), true},
		{errors.New("dial tcp 127.0.0.1:1: connect: connection refused"), true},
		{replyError("ERR wrong number of arguments"), false},
		{replyError("NOSCRIPT No matching script"), false},
	} {
		if got := errors.Is(classify(tt.err), service.ErrUnavailable); got != tt.unavailable {
			t.Errorf("classify(%q) unavailable = %v, want %v", tt.err, got, tt.unavailable)
		}
	}
}
