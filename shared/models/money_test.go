package models

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestParseMoney(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    Money
		wantErr error
	}{
		{in: "200", want: 20000},
		{in: "200.5", want: 20050},
		{in: "200.50", want: 20050},
		{in: "0.01", want: 1},
		{in: "1000000000", want: MaxMoney},
		{in: "1000000000.00", want: MaxMoney},
		{in: "1000000000.01", wantErr: ErrMoneyTooLarge},
		{in: "99999999999", wantErr: ErrMoneyTooLarge},
		{in: strings.Repeat("9", 400), wantErr: ErrMoneyTooLarge},
		{in: "0", wantErr: ErrMoneyNotPositive},
		{in: "0.00", wantErr: ErrMoneyNotPositive},
		{in: "-5", wantErr: ErrMoneyNotPositive},
		{in: "-0.01", wantErr: ErrMoneyNotPositive},
		{in: "200.123", wantErr: ErrMoneyPrecision},
		{in: "200.001", wantErr: ErrMoneyPrecision},
		{in: "1e2", wantErr: ErrMoneyFormat},
		{in: "1E2", wantErr: ErrMoneyFormat},
		{in: "2.5e1", wantErr: ErrMoneyFormat},
		{in: "NaN", wantErr: ErrMoneyFormat},
		{in: "Infinity", wantErr: ErrMoneyFormat},
		{in: "-Infinity", wantErr: ErrMoneyFormat},
		{in: "+5", wantErr: ErrMoneyFormat},
		{in: " 5", wantErr: ErrMoneyFormat},
		{in: "5 ", wantErr: ErrMoneyFormat},
		{in: "$5", wantErr: ErrMoneyFormat},
		{in: "5.", wantErr: ErrMoneyFormat},
		{in: ".5", wantErr: ErrMoneyFormat},
		{in: "007", wantErr: ErrMoneyFormat},
		{in: "0x10", wantErr: ErrMoneyFormat},
		{in: "1,000", wantErr: ErrMoneyFormat},
		{in: "1.2.3", wantErr: ErrMoneyFormat},
		{in: `"200"`, wantErr: ErrMoneyFormat},
		{in: "", wantErr: ErrMoneyFormat},
		{in: "-", wantErr: ErrMoneyFormat},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			got, err := ParseMoney(tt.in)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("ParseMoney(%q) error = %v, want %v", tt.in, err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("ParseMoney(%q) = %d, want %d", tt.in, got, tt.want)
			}
		})
	}
}

func TestMoneyString(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   Money
		want string
	}{
		{0, "0.00"}, {1, "0.01"}, {10, "0.10"}, {20000, "200.00"}, {15050, "150.50"}, {-250, "-2.50"}, {MaxMoney, "1000000000.00"},
	}
	for _, tt := range tests {
		if got := tt.in.String(); got != tt.want {
			t.Errorf("Money(%d).String() = %q, want %q", int64(tt.in), got, tt.want)
		}
	}
}

func TestMoneyJSON(t *testing.T) {
	t.Parallel()
	var v struct {
		Amount   Money `json:"amount"`
		Previous Money `json:"previous_bid"`
	}
	if err := json.Unmarshal([]byte(`{"amount": 200.5, "previous_bid": 0}`), &v); err != nil {
		t.Fatalf("unmarshal: %v", err)
	}
	if got, want := v.Amount, Money(20050); got != want {
		t.Errorf("amount = %d, want %d", got, want)
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	if got, want := string(b), `{"amount":200.50,"previous_bid":0.00}`; got != want {
		t.Errorf("marshal = %s, want %s", got, want)
	}
	for _, bad := range []string{`{"amount": 1e3}`, `{"amount": "200"}`, `{"amount": 1.001}`, `{"amount": -1}`} {
		if err := json.Unmarshal([]byte(bad), &v); err == nil {
			t.Errorf("unmarshal %s: no error, want one", bad)
		}
	}
}

// FuzzParseMoney checks that every accepted text round-trips exactly through
// cents and back, and that nothing outside the documented range gets in.
func FuzzParseMoney(f *testing.F) {
	for _, s := range []string{"200", "200.5", "0.01", "1e2", "NaN", "-1", "1000000000.00", "00.1", "9.999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseMoney(s)
		if err != nil {
			if m != 0 {
				t.Fatalf("ParseMoney(%q) = %d with error %v, want 0", s, m, err)
			}
			return
		}
		if m <= 0 || m > MaxMoney {
			t.Fatalf("ParseMoney(%q) = %d, outside (0, %d]", s, m, MaxMoney)
		}
		back, err := ParseMoney(m.String())
		if err != nil || back != m {
			t.Fatalf("round trip of %q: %q parsed to %d, %v; want %d", s, m.String(), back, err, m)
		}
		// The canonical form must denote the same value as the input text.
		canon := strings.TrimRight(strings.TrimRight(m.String(), "0"), ".")
		in := s
		if strings.Contains(in, ".") {
			in = strings.TrimRight(strings.TrimRight(in, "0"), ".")
		}
		if canon != in {
			t.Fatalf("ParseMoney(%q) = %s, which is not the same number", s, m)
		}
	})
}
