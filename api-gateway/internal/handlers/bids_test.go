package handlers

import (
	"testing"
	"time"

	"github.com/bidding-platform/shared/models"
)

func TestAppendMoney(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		in   models.Money
		want string
	}{{0, "0.00"}, {1, "0.01"}, {10, "0.10"}, {15050, "150.50"}, {models.MaxMoney, "1000000000.00"}, {-5, "-0.05"}} {
		if got := string(appendMoney(nil, tt.in)); got != tt.want || got != tt.in.String() {
			t.Errorf("appendMoney(%d) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestAppendString(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{"evt_abc": `"evt_abc"`, `a"b`: `"a\"b"`, "é<": `"é\u003c"`} {
		if got := string(appendString(nil, in)); got != want {
			t.Errorf("appendString(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestLimiterBounded(t *testing.T) {
	t.Parallel()
	l := newLimiter(1, 64)
	for i := 0; i < 10_000; i++ {
		l.allow(string(rune('a'+i%26))+string(rune(i)), timeZero.Add(0))
	}
	n := 0
	for i := range l.shards {
		n += len(l.shards[i].m)
	}
	if n > 64 {
		t.Errorf("limiter holds %d keys, want at most 64", n)
	}
	if ok, _ := l.allow("k", timeZero); !ok {
		t.Error("first request of a key refused")
	}
	if ok, wait := l.allow("k", timeZero); ok || wait <= 0 {
		t.Errorf("second request within the second: ok=%v wait=%v, want refused with a wait", ok, wait)
	}
}

var timeZero = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
