package config

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestEnv(t *testing.T) {
	t.Parallel()
	env := FromMap(map[string]string{
		"ADDR": " :9090 ", "N": "42", "ON": "yes", "D": "250ms", "LIST": "a, b,,c", "BLANK": "  ", "SECRET": "hunter2",
	})
	var (
		addr  = ":8080"
		n     = 1
		on    = false
		d     = time.Second
		list  []string
		blank = "kept"
		sec   Secret
		unset = "default"
	)
	env.String("ADDR", &addr)
	env.Int("N", &n)
	env.Bool("ON", &on)
	env.Duration("D", &d)
	env.Strings("LIST", &list)
	env.String("BLANK", &blank)
	env.Secret("SECRET", &sec)
	env.String("UNSET", &unset)
	if err := env.Err(); err != nil {
		t.Fatalf("Err() = %v, want nil", err)
	}
	if addr != ":9090" || n != 42 || !on || d != 250*time.Millisecond || strings.Join(list, "|") != "a|b|c" || blank != "kept" || unset != "default" {
		t.Errorf("got addr=%q n=%d on=%v d=%v list=%v blank=%q unset=%q", addr, n, on, d, list, blank, unset)
	}
	if sec.Reveal() != "hunter2" || sec.String() != "[redacted]" {
		t.Errorf("secret: Reveal=%q String=%q", sec.Reveal(), sec.String())
	}
}

func TestEnvCollectsEveryError(t *testing.T) {
	t.Parallel()
	env := FromMap(map[string]string{"N": "many", "ON": "maybe", "D": "5", "LOG_LEVEL": "loud"})
	var n int
	var on bool
	var d time.Duration
	env.Int("N", &n)
	env.Bool("ON", &on)
	env.Duration("D", &d)
	l := DefaultLog()
	l.Read(env)
	err := env.Err()
	if err == nil {
		t.Fatal("Err() = nil, want errors")
	}
	for _, key := range []string{"N=", "ON=", "D=", "LOG_LEVEL="} {
		if !strings.Contains(err.Error(), key) {
			t.Errorf("Err() = %q, want it to mention %s", err, key)
		}
	}
}

func TestLoggerRedactsSecrets(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	log := DefaultLog().NewLogger(&buf, "svc")
	log.Info("config", "jwt", Secret("hunter2"))
	if strings.Contains(buf.String(), "hunter2") || !strings.Contains(buf.String(), `"service":"svc"`) {
		t.Errorf("log line %s: want service field and no secret", buf.String())
	}
}

func TestPositive(t *testing.T) {
	if got := Positive(0, 5); got != 5 {
		t.Errorf("Positive(0, 5) = %d", got)
	}
	if got := Positive(-1*time.Second, time.Minute); got != time.Minute {
		t.Errorf("Positive(-1s, 1m) = %v", got)
	}
	if got := Positive(2.5, 1.0); got != 2.5 {
		t.Errorf("Positive(2.5, 1) = %v", got)
	}
}
