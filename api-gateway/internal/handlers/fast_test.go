package handlers

import "testing"

func TestBidItem(t *testing.T) {
	tests := []struct {
		path, item string
		ok         bool
	}{
		{"/api/v1/items/lot1/bid", "lot1", true},
		{"/api/v1/items/a-b_c/bid", "a-b_c", true},
		{"/api/v1/items//bid", "", false},
		{"/api/v1/items/a/b/bid", "", false},
		{"/api/v1/items/lot1/bids", "", false},
		{"/api/v1/items/lot1/bid/", "", false},
		{"/api/v1/items/lot1", "", false},
		{"/api/v2/items/lot1/bid", "", false},
		{"/api/v1/items/bid", "", false},
	}
	for _, tt := range tests {
		item, ok := bidItem([]byte(tt.path))
		if ok != tt.ok || string(item) != tt.item {
			t.Errorf("bidItem(%q) = %q, %v; want %q, %v", tt.path, item, ok, tt.item, tt.ok)
		}
	}
}
