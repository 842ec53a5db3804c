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

func TestURLs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, value string
		want        string // "" when the value is refused
		wantErr     []string
		notInErr    string
	}{
		{name: "one server", value: "nats://n1:4222", want: "nats://n1:4222"},
		{name: "a cluster, blanks around commas", value: " nats://n1:4222 , tls://n2:4222,, nats://u:pw@n3:4222 ", want: "nats://n1:4222,tls://n2:4222,nats://u:pw@n3:4222"},
		{name: "no scheme", value: "n1:4222", wantErr: []string{"NATS_URL", "nats://host:port"}},
		{name: "wrong scheme", value: "nats://n1:4222,http://n2:80", wantErr: []string{"NATS_URL", "http://n2:80"}},
		{name: "credentials stay out of the error", value: "redis://u:hunter2@n1:4222", wantErr: []string{"NATS_URL"}, notInErr: "hunter2"},
		{name: "only commas", value: ",,", wantErr: []string{"NATS_URL", "no URL"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := FromMap(map[string]string{"NATS_URL": tc.value})
			got := "nats://default:4222"
			env.URLs("NATS_URL", &got, "nats", "tls")
			err := env.Err()
			if tc.want != "" {
				if err != nil || got != tc.want {
					t.Errorf("URLs(%q) = %q, %v; want %q, nil", tc.value, got, err, tc.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("URLs(%q) = %q, nil; want an error", tc.value, got)
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("URLs(%q) error %q does not mention %s", tc.value, err, w)
				}
			}
			if tc.notInErr != "" && strings.Contains(err.Error(), tc.notInErr) {
				t.Errorf("URLs(%q) error %q shows %s", tc.value, err, tc.notInErr)
			}
		})
	}
}
