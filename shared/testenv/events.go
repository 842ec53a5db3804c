package testenv

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/bidding-platform/shared/models"
	"github.com/bidding-platform/shared/stream"
)

// StreamEvents reads every event JetStream holds for an item, in stream
// order, checking each against the event contract and that it was stored
// under its own event id (the Nats-Msg-Id duplicates are dropped by). It
// reads one message at a time through the stream's leader, so a dead node
// makes it fail within ctx rather than wait, as an ordered consumer can.
func StreamEvents(ctx context.Context, js jetstream.JetStream, itemID string) ([]models.Event, error) {
	s, err := js.Stream(ctx, stream.Name)
	if err != nil {
		return nil, fmt.Errorf("events of %s: %w", itemID, err)
	}
	subject := stream.Subject(itemID)
	var out []models.Event
	for seq := uint64(1); ; {
		m, err := s.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subject))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("events of %s at %d: %w", itemID, seq, err)
		}
		e, err := stream.Decode(m.Subject, m.Data)
		if err != nil {
			return nil, fmt.Errorf("events of %s at %d: %w", itemID, m.Sequence, err)
		}
		if h := m.Header.Get(jetstream.MsgIDHeader); h != e.EventID {
			return nil, fmt.Errorf("event %s stored under Nats-Msg-Id %q", e.EventID, h)
		}
		out = append(out, e)
		seq = m.Sequence + 1
	}
}
