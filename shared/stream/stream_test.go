package stream

import (
	"strconv"
	"testing"

	"github.com/bidding-platform/shared/config"
)

func TestReadReplicas(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		set    string // "" leaves the variable unset
		want   int
		wantOK bool
	}{
		{"", 1, true},
		{"1", 1, true},
		{"3", 3, true},
		{"5", 5, true},
		{"0", 0, false},
		{"2", 2, false},
		{"4", 4, false},
		{"7", 7, false},
		{"-1", -1, false},
		{"three", 1, false},
	} {
		t.Run("set="+strconv.Quote(tc.set), func(t *testing.T) {
			t.Parallel()
			vars := map[string]string{}
			if tc.set != "" {
				vars["NATS_STREAM_REPLICAS"] = tc.set
			}
			e := config.FromMap(vars)
			got := 1
			ReadReplicas(e, "NATS_STREAM_REPLICAS", &got)
			if err := e.Err(); (err == nil) != tc.wantOK {
				t.Errorf("NATS_STREAM_REPLICAS=%q: error %v, want ok=%v", tc.set, err, tc.wantOK)
			}
			if tc.wantOK && got != tc.want {
				t.Errorf("NATS_STREAM_REPLICAS=%q: read %d, want %d", tc.set, got, tc.want)
			}
		})
	}
}

func TestConfigCarriesReplicas(t *testing.T) {
	t.Parallel()
	for _, n := range []int{1, 3, 5} {
		if got := Config(n).Replicas; got != n {
			t.Errorf("Config(%d).Replicas = %d", n, got)
		}
	}
}
