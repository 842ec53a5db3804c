package nats_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/bidding-platform/broadcast-service/internal/nats"
	"github.com/bidding-platform/shared/models"
	"github.com/bidding-platform/shared/stream"
	"github.com/bidding-platform/shared/testenv"
)

// TestAfter reads one item's history out of a stream shared with other
// items, from any starting point.
func TestAfter(t *testing.T) {
	n := testenv.NATS(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := nats.Connect(ctx, n.URL(), nats.Options{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	js := n.JetStream()
	if _, err := stream.Ensure(ctx, js); err != nil {
		t.Fatal(err)
	}
	// Three items interleaved, so stream and item sequences differ.
	items := []string{"a_item", "b_item", "c_item"}
	for seq := uint64(1); seq <= 60; seq++ {
		for _, id := range items {
			data, _ := json.Marshal(models.Event{Type: models.EventBid, ItemID: id, Seq: seq, EventID: models.NewEventID()})
			if _, err := js.Publish(ctx, stream.Subject(id), data); err != nil {
				t.Fatal(err)
			}
		}
	}
	seqs := func(from, to uint64) []uint64 {
		var out []uint64
		for s := from; s <= to; s++ {
			out = append(out, s)
		}
		return out
	}
	tests := []struct {
		name        string
		after, upTo uint64
		want        []uint64
	}{
		{"everything", 0, 0, seqs(1, 60)},
		{"from the middle", 37, 0, seqs(38, 60)},
		{"a window", 10, 20, seqs(11, 20)},
		{"nothing newer", 60, 0, nil},
		{"first only", 0, 1, []uint64{1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []uint64
			oldest, err := c.After(ctx, "b_item", tt.after, tt.upTo, func(ev models.Event) error {
				if ev.ItemID != "b_item" {
					t.Errorf("got an event of %s", ev.ItemID)
				}
				got = append(got, ev.Seq)
				return nil
			})
			if err != nil {
				t.Fatalf("After(%d, %d): %v", tt.after, tt.upTo, err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("After(%d, %d) = %v, want %v", tt.after, tt.upTo, got, tt.want)
			}
			if oldest != 1 {
				t.Errorf("oldest = %d, want 1", oldest)
			}
		})
	}

	last, ok, err := c.Last(ctx, "c_item")
	if err != nil || !ok || last.Seq != 60 {
		t.Fatalf("Last(c_item) = %d, %v, %v; want 60, true, nil", last.Seq, ok, err)
	}
	if _, ok, err := c.Last(ctx, "nobody"); ok || err != nil {
		t.Fatalf("Last of an item without events: ok=%v err=%v, want false, nil", ok, err)
	}

	s, err := js.Stream(ctx, stream.Name)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Purge(ctx, jetstream.WithPurgeSubject(stream.Subject("a_item")), jetstream.WithPurgeKeep(10)); err != nil {
		t.Fatal(err)
	}
	var got []uint64
	oldest, err := c.After(ctx, "a_item", 5, 0, func(ev models.Event) error { got = append(got, ev.Seq); return nil })
	if err != nil {
		t.Fatal(err)
	}
	if oldest != 51 || !slices.Equal(got, seqs(51, 60)) {
		t.Errorf("after purge: oldest %d, events %v; want 51 and 51..60", oldest, got)
	}
}
