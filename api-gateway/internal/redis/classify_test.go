package redis

import (
	"errors"
	"io"
	"net"
	"os"
	"testing"

	"github.com/bidding-platform/api-gateway/internal/service"
	"github.com/bidding-platform/shared/models"
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

// A write whose reply did not come may have been applied: only a write that
// never left (its dial failed) is plainly unavailable. A read timeout is of
// unknown outcome too, since a script that passed its deadline check can
// still answer late.
func TestClassifyWrite(t *testing.T) {
	t.Parallel()
	timeout := &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}
	for _, tt := range []struct {
		err     error
		unknown bool
	}{
		{timeout, true},
		{io.EOF, true},
		{&net.OpError{Op: "write", Net: "tcp", Err: errors.New("broken pipe")}, true},
		{&net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}, false},
		{&net.OpError{Op: "dial", Net: "tcp", Err: os.ErrDeadlineExceeded}, false},
	} {
		got := classifyWrite(tt.err)
		if errors.Is(got, service.ErrOutcomeUnknown) != tt.unknown || !errors.Is(got, service.ErrUnavailable) {
			t.Errorf("classifyWrite(%v) = %v, want unavailable, of unknown outcome %v", tt.err, got, tt.unknown)
		}
	}
}

// A script that fails is a bug, not an outage: the bid's error is internal
// (a 500 with its cause logged), never "Redis unavailable" (a 503).
func TestScriptErrorIsInternal(t *testing.T) {
	t.Parallel()
	s, _ := storeOnOwnRedis(t, StrategyLua, nil)
	it := newItem(t, s, models.Item{})
	// A starting price that is not a number breaks the script's arithmetic,
	// as a hand-edited or corrupted hash would.
	if _, err := s.rdbHSetForTest(t, it.ID, "sp", "ten"); err != nil {
		t.Fatal(err)
	}
	_, err := s.PlaceBids(ctxT(t), []service.BidRequest{bid(it.ID, "u1", 5000)})
	if err == nil {
		t.Fatal("PlaceBids on a corrupted item succeeded")
	}
	if got := models.ErrorKind(err); got != models.KindInternal || errors.Is(err, service.ErrUnavailable) {
		t.Errorf("PlaceBids = %v (kind %q), want an internal error, not unavailable", err, got)
	}
}
