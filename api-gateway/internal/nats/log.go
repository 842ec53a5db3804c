package nats

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/bidding-platform/api-gateway/internal/service"
	"github.com/bidding-platform/shared/models"
	"github.com/bidding-platform/shared/stream"
)

// ItemsBucket is the JetStream key-value bucket holding every item's terms
// as created, keyed by item id. With the event stream it is the record the
// gateway restores Redis from (service.EventLog); it is replicated like the
// stream.
const ItemsBucket = "ITEMS"

var _ service.EventLog = (*Client)(nil)

// itemsKV is the bucket, opened once it was needed.
type itemsKV struct {
	mu sync.Mutex
	kv jetstream.KeyValue
}

func (c *Client) items(ctx context.Context) (jetstream.KeyValue, error) {
	c.kv.mu.Lock()
	kv := c.kv.kv
	c.kv.mu.Unlock()
	if kv != nil {
		return kv, nil
	}
	var err error
	// Create or update, so that a bucket lost with NATS's storage comes
	// back, and a change of replicas is applied. Not under the lock, and
	// in short attempts: a cluster still electing its leader can leave a
	// request unanswered, where a new one soon succeeds. Concurrent
	// creations of the same bucket are harmless.
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	for {
		actx, acancel := context.WithTimeout(ctx, 2*time.Second)
		kv, err = c.js.CreateOrUpdateKeyValue(actx, jetstream.KeyValueConfig{
			Bucket:      ItemsBucket,
			Description: "Every item's terms as created, for restoring a Redis that lost them",
			History:     1,
			Storage:     jetstream.FileStorage,
			Replicas:    c.cfg.StreamReplicas,
		})
		acancel()
		if err == nil {
			break
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("open bucket %s: %w", ItemsBucket, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
	c.kv.mu.Lock()
	c.kv.kv = kv
	c.kv.mu.Unlock()
	return kv, nil
}

// forgetItems drops the bucket handle after an error that says it is gone.
func (c *Client) forgetItems(err error) {
	if errors.Is(err, jetstream.ErrBucketNotFound) || errors.Is(err, jetstream.ErrStreamNotFound) {
		c.kv.mu.Lock()
		c.kv.kv = nil
		c.kv.mu.Unlock()
	}
}

// RecordItem stores a new item's terms; service.ErrItemExists if the id
// was recorded before, by this or any gateway.
func (c *Client) RecordItem(ctx context.Context, it models.Item) error {
	kv, err := c.items(ctx)
	if err != nil {
		return err
	}
	b, err := json.Marshal(it)
	if err != nil {
		return fmt.Errorf("record item %s: %w", it.ID, err)
	}
	_, err = kv.Create(ctx, it.ID, b)
	switch {
	case errors.Is(err, jetstream.ErrKeyExists):
		return fmt.Errorf("record item %s: %w", it.ID, service.ErrItemExists)
	case err != nil:
		c.forgetItems(err)
		return fmt.Errorf("record item %s: %w", it.ID, err)
	}
	return nil
}

// ItemRecord returns an item's terms as created; service.ErrItemNotFound
// if none was recorded.
func (c *Client) ItemRecord(ctx context.Context, id string) (models.Item, error) {
	kv, err := c.items(ctx)
	if err != nil {
		return models.Item{}, err
	}
	e, err := kv.Get(ctx, id)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return models.Item{}, fmt.Errorf("item record %s: %w", id, service.ErrItemNotFound)
	case err != nil:
		c.forgetItems(err)
		return models.Item{}, fmt.Errorf("item record %s: %w", id, err)
	}
	var it models.Item
	if err := json.Unmarshal(e.Value(), &it); err != nil || it.ID != id {
		return models.Item{}, fmt.Errorf("item record %s is not an item: %q: %w", id, e.Value(), err)
	}
	return it, nil
}

// lateWindow is how much earlier than an item's last message an event of
// it may have been published and still be stored after it: an event the
// relay republished for a gateway that died before publishing it (found
// within RelayAge, or by the orphan scan within a minute), or one caught in
// flight when a full stream freed room. Such an event can carry a higher
// seq than the last message.
const lateWindow = 3 * time.Minute

// LastEvent returns the item's event with the highest seq: its last message,
// unless an event stored just before that one (see lateWindow) has a higher
// seq. A message that is not a valid event is an error: the item's state
// cannot be known without it, and guessing could rewind the auction.
func (c *Client) LastEvent(ctx context.Context, id string) (service.OutboxEntry, bool, error) {
	s, err := c.js.Stream(ctx, stream.Name)
	if err != nil {
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			// Lost with NATS's storage: nothing was published that
			// anyone could still read.
			return service.OutboxEntry{}, false, nil
		}
		return service.OutboxEntry{}, false, fmt.Errorf("last event of %s: %w", id, err)
	}
	subject := stream.Subject(id)
	m, err := s.GetLastMsgForSubject(ctx, subject)
	switch {
	case errors.Is(err, jetstream.ErrMsgNotFound):
		return service.OutboxEntry{}, false, nil
	case err != nil:
		return service.OutboxEntry{}, false, fmt.Errorf("last event of %s: %w", id, err)
	}
	last, err := logged(m.Subject, m.Data, m.Header)
	if err != nil {
		return service.OutboxEntry{}, false, fmt.Errorf("last event of %s: %w", id, err)
	}
	// A plain consumer, not an ordered one: an ordered consumer recreates
	// itself when a server goes away and can wait for ever, whereas this
	// one fails within ctx and the caller answers 503.
	start := m.Time.Add(-lateWindow)
	cons, err := s.CreateConsumer(ctx, jetstream.ConsumerConfig{
		FilterSubject:     subject,
		DeliverPolicy:     jetstream.DeliverByStartTimePolicy,
		OptStartTime:      &start,
		AckPolicy:         jetstream.AckNonePolicy,
		InactiveThreshold: time.Minute,
		Replicas:          1,
		MemoryStorage:     true,
	})
	if err != nil {
		return service.OutboxEntry{}, false, fmt.Errorf("recent events of %s: %w", id, err)
	}
	defer func() {
		// Best effort: the server drops it after InactiveThreshold anyway.
		dctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = s.DeleteConsumer(dctx, cons.CachedInfo().Name)
	}()
	wait := time.Second
	if d, ok := ctx.Deadline(); ok {
		wait = min(wait, time.Until(d))
	}
	for {
		batch, err := cons.Fetch(256, jetstream.FetchMaxWait(max(wait, 100*time.Millisecond)))
		if err != nil {
			return service.OutboxEntry{}, false, fmt.Errorf("recent events of %s: %w", id, err)
		}
		n := 0
		for msg := range batch.Messages() {
			n++
			meta, err := msg.Metadata()
			if err != nil {
				return service.OutboxEntry{}, false, fmt.Errorf("recent events of %s: %w", id, err)
			}
			if meta.Sequence.Stream >= m.Sequence {
				return last, true, nil
			}
			e, err := logged(msg.Subject(), msg.Data(), msg.Headers())
			if err != nil {
				continue // not an event: nothing to restore from
			}
			if e.Event.Seq > last.Event.Seq {
				last = e
			}
		}
		if err := batch.Error(); err != nil {
			return service.OutboxEntry{}, false, fmt.Errorf("recent events of %s: %w", id, err)
		}
		if n == 0 {
			// Nothing more arrived: the last message was purged since it
			// was read, which leaves nothing newer.
			if ctx.Err() != nil {
				return service.OutboxEntry{}, false, fmt.Errorf("recent events of %s: %w", id, ctx.Err())
			}
			return last, true, nil
		}
	}
}

// logged decodes a stored event with the leader's maximum logged beside it
// (the entry's ID stays empty).
func logged(subject string, data []byte, h nats.Header) (service.OutboxEntry, error) {
	e, err := stream.Decode(subject, data)
	if err != nil {
		return service.OutboxEntry{}, err
	}
	n, _ := strconv.ParseInt(h.Get(stream.LeaderMaxHeader), 10, 64)
	return service.OutboxEntry{Event: e, LeaderMax: models.Money(n)}, nil
}

// ItemIDs lists every recorded item.
func (c *Client) ItemIDs(ctx context.Context) ([]string, error) {
	kv, err := c.items(ctx)
	if err != nil {
		return nil, err
	}
	keys, err := kv.ListKeys(ctx)
	if err != nil {
		c.forgetItems(err)
		return nil, fmt.Errorf("list item records: %w", err)
	}
	defer keys.Stop()
	var ids []string
	for id := range keys.Keys() {
		ids = append(ids, id)
	}
	return ids, nil
}
