package websocket

import (
	"net/http/httptest"
	"testing"
)

func TestClientAddr(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		peer   string
		xff    []string
		trust  bool
		wanted string
	}{
		{"peer without header", "192.0.2.7:5000", nil, false, "192.0.2.7"},
		{"forged header not trusted", "192.0.2.7:5000", []string{"10.0.0.1"}, false, "192.0.2.7"},
		{"trusted: the entry the load balancer appended", "10.1.0.5:5000", []string{"6.6.6.6, 198.51.100.9"}, true, "198.51.100.9"},
		{"trusted: the last of several headers", "10.1.0.5:5000", []string{"6.6.6.6", "7.7.7.7,198.51.100.9"}, true, "198.51.100.9"},
		{"trusted without header: the peer", "10.1.0.5:5000", nil, true, "10.1.0.5"},
		{"trusted but not an address: the peer", "10.1.0.5:5000", []string{"1.2.3.4, unknown"}, true, "10.1.0.5"},
		{"IPv4-mapped IPv6 is the IPv4 address", "[::ffff:192.0.2.7]:5000", nil, false, "192.0.2.7"},
		{"IPv6 counted per /64", "[2001:db8:1:2:aaaa::1]:5000", nil, false, "2001:db8:1:2::/64"},
		{"trusted IPv6 entry per /64", "10.1.0.5:5000", []string{"2001:db8:1:2::99"}, true, "2001:db8:1:2::/64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := httptest.NewRequest("GET", "/ws?item_id=x", nil)
			r.RemoteAddr = tt.peer
			for _, v := range tt.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if got := clientAddr(r, tt.trust); got != tt.wanted {
				t.Errorf("clientAddr(peer %s, X-Forwarded-For %q, trust %v) = %q, want %q", tt.peer, tt.xff, tt.trust, got, tt.wanted)
			}
		})
	}
}
