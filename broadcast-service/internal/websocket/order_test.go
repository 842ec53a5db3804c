package websocket

import (
	"slices"
	"testing"

	"github.com/bidding-platform/shared/models"
)

func TestOrderer(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		next     uint64
		in       []uint64
		want     []uint64
		wantHole [2]uint64 // zero: no hole expected
	}{
		{name: "in order", next: 1, in: []uint64{1, 2, 3}, want: []uint64{1, 2, 3}},
		{name: "swapped pair", next: 1, in: []uint64{1, 3, 2, 4}, want: []uint64{1, 2, 3, 4}},
		{name: "duplicates and old ones dropped", next: 5, in: []uint64{3, 5, 5, 4, 6}, want: []uint64{5, 6}},
		{name: "hole stays open", next: 1, in: []uint64{1, 4, 5}, want: []uint64{1}, wantHole: [2]uint64{2, 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var got []uint64
			o := newOrderer(tt.next, func(ev models.Event) error { got = append(got, ev.Seq); return nil })
			for _, seq := range tt.in {
				if err := o.add(models.Event{Seq: seq}); err != nil {
					t.Fatalf("add(%d): %v", seq, err)
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("emitted %v from %v, want %v", got, tt.in, tt.want)
			}
			from, to, ok := o.hole()
			if ok != (tt.wantHole != [2]uint64{}) || (ok && [2]uint64{from, to} != tt.wantHole) {
				t.Errorf("hole() = %d..%d ok=%v, want %v", from, to, ok, tt.wantHole)
			}
			if ok {
				if err := o.skip(to); err != nil {
					t.Fatal(err)
				}
				if last := got[len(got)-1]; last != tt.in[len(tt.in)-1] {
					t.Errorf("after skip the last emitted is %d, want %d", last, tt.in[len(tt.in)-1])
				}
			}
		})
	}
}

func TestCheckOrigin(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		allowed []string
		origin  string
		host    string
		want    bool
	}{
		{"no origin header", nil, "", "svc:8081", true},
		{"same host", nil, "http://svc:8081", "svc:8081", true},
		{"other host, none allowed", nil, "http://evil.example", "svc:8081", false},
		{"listed", []string{"https://shop.example/"}, "https://SHOP.example", "svc:8081", true},
		{"wildcard", []string{"*"}, "http://any.example", "svc:8081", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := httptestRequest(tt.host, tt.origin)
			if got := checkOrigin(tt.allowed)(r); got != tt.want {
				t.Errorf("checkOrigin(%v) for Origin %q on %s = %v, want %v", tt.allowed, tt.origin, tt.host, got, tt.want)
			}
		})
	}
}
