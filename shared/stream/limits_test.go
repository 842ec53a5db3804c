package stream_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/bidding-platform/shared/stream"
	"github.com/bidding-platform/shared/testenv"
)

// A stream created by an older version (events dropped after 7 days, by
// size, and past a million per item) is moved to the new limits by Ensure,
// keeping what it holds.
func TestEnsureMovesAnOldStreamToLimitsThatNeverDiscard(t *testing.T) {
	t.Parallel()
	js := testenv.NATS(t).JetStream()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	old := stream.Config(1)
	old.MaxAge, old.MaxMsgsPerSubject, old.Discard = 7*24*time.Hour, 1_000_000, jetstream.DiscardOld
	if _, err := js.CreateStream(ctx, old); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, stream.Subject("lot"), []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	s, err := stream.Ensure(ctx, js, 1)
	if err != nil {
		t.Fatalf("ensure over the old stream: %v", err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c := info.Config
	if c.Discard != jetstream.DiscardNew || c.MaxAge != 0 || c.MaxMsgsPerSubject > 0 || c.MaxMsgs <= 0 || c.MaxBytes > 0 {
		t.Errorf("stream after Ensure: discard %v, max age %v, per subject %d, messages %d, bytes %d; want DiscardNew with only a message limit",
			c.Discard, c.MaxAge, c.MaxMsgsPerSubject, c.MaxMsgs, c.MaxBytes)
	}
	if info.State.Msgs != 1 {
		t.Errorf("stream holds %d messages after Ensure, want the 1 it had", info.State.Msgs)
	}
}

// At its limit the stream refuses a publish with an error that names the
// limit, and keeps every event it has: the oldest is not traded for the
// newest. Room made by purging one subject lets publishes in again.
func TestFullStreamRefusesInsteadOfDiscarding(t *testing.T) {
	t.Parallel()
	js := testenv.NATS(t).JetStream()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg := stream.Config(1)
	cfg.MaxMsgs = 15 // the real policy, at a size a test fills
	s, err := js.CreateStream(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	// Messages of different sizes, as events are: a byte limit would let
	// a small one in after refusing a large one.
	payloads := [][]byte{make([]byte, 300), make([]byte, 200)}
	var refusal error
	stored := 0
	for i := 0; refusal == nil; i++ {
		if i > 1000 {
			t.Fatal("1000 publishes fit in a stream of 15 messages")
		}
		item := "lot"
		if i%2 == 1 {
			item = "other"
		}
		if _, err := js.Publish(ctx, stream.Subject(item), payloads[i%2], jetstream.WithMsgID(fmt.Sprint("evt_", i))); err != nil {
			refusal = err
			continue
		}
		stored++
	}
	var apiErr *jetstream.APIError
	if !errors.As(refusal, &apiErr) || apiErr.Description != "maximum messages exceeded" {
		t.Errorf("publish to the full stream: %v, want JetStream's \"maximum messages exceeded\"", refusal)
	}
	if _, err := js.Publish(ctx, stream.Subject("lot"), payloads[1][:10]); err == nil {
		t.Error("a smaller message got into the full stream")
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != uint64(stored) || info.State.FirstSeq != 1 {
		t.Errorf("full stream holds %d messages from seq %d, want all %d from seq 1", info.State.Msgs, info.State.FirstSeq, stored)
	}
	if err := s.Purge(ctx, jetstream.WithPurgeSubject(stream.Subject("other"))); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, stream.Subject("lot"), payloads[0]); err != nil {
		t.Errorf("publish after a purge made room: %v", err)
	}
}
