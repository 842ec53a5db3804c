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

func TestParseBidFast(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		in           string
		user, amount string
		ok           bool
		max          bool
	}{
		{`{"user_id":"user_1","amount":200.00}`, "user_1", "200.00", true, false},
		{`{"max_amount":350.5,"user_id":"user_1"}`, "user_1", "350.5", true, true},
		{`{"amount":1,"max_amount":2}`, "", "", false, false},
		{`{"user_id":"u","amount":1,"max_amount":2}`, "", "", false, false},
		{" {\n \"amount\" : 5 ,\t\"user_id\" : \"u-2\" } \n", "u-2", "5", true, false},
		{`{"user_id":"u","amount":1e2}`, "u", "1e2", true, false},
		{`{"user_id":"u","amount":-3}`, "u", "-3", true, false},
		{`{"user_id":"u\u0041","amount":1}`, "", "", false, false},
		{`{"user_id":"u","amount":"1"}`, "", "", false, false},
		{`{"user_id":"u","amount":1,"x":1}`, "", "", false, false},
		{`{"user_id":"u","user_id":"v"}`, "", "", false, false},
		{`{"user_id":"u","amount":1}{}`, "", "", false, false},
		{`{"user_id":"u","amount":--1}`, "", "", false, false},
		{`{"USER_ID":"u","amount":1}`, "", "", false, false},
		{`{"user_id":"u"}`, "", "", false, false},
		{``, "", "", false, false},
	} {
		u, a, m, ok := parseBidFast([]byte(tt.in))
		if ok != tt.ok || ok && (string(u) != tt.user || string(a) != tt.amount || m != tt.max) {
			t.Errorf("parseBidFast(%q) = %q, %q, max %v, %v; want %q, %q, max %v, %v", tt.in, u, a, m, ok, tt.user, tt.amount, tt.max, tt.ok)
		}
	}
}

// Whatever the fast path accepts, encoding/json reads the same way.
func FuzzParseBid(f *testing.F) {
	for _, s := range []string{
		`{"user_id":"user_1","amount":200.00}`, `{"amount":5,"user_id":"u"}`, `{"user_id":"u","amount":1e2}`,
		`{"user_id":"u","amount":-0}`, `{"user_id":"a","amount":01}`, `{"user_id":"a","amount":1.}`, ` { "user_id" : "x" , "amount" : 3 } `,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		user, amount, maxBid, ok := parseBidFast(b)
		if !ok {
			return
		}
		var body bidBody
		if err := decodeBytes(b, &body, bidFields); err != nil {
			t.Fatalf("fast path accepted %q, encoding/json says %v", b, err)
		}
		read := body.Amount
		if maxBid {
			read = body.MaxAmount
		}
		if body.UserID == nil || *body.UserID != string(user) || string(read) != string(amount) || len(body.Amount) > 0 && len(body.MaxAmount) > 0 {
			t.Fatalf("fast path read %q as %q/%q, encoding/json as %v/%q", b, user, amount, body.UserID, read)
		}
	})
}
