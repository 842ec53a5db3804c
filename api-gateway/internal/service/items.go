package service

import (
	"context"
	"errors"
	"fmt"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/bidding-platform/shared/models"
)

// Defaults of an auto-created item: the README's quick start bids 100.00 and
// then 150.00 on a fresh id, and both must be accepted.
const (
	DefaultStartingPrice models.Money = 100 // 1.00
	DefaultMinIncrement  models.Money = 100 // 1.00
	maxNameLen                        = 200
)

// NewItem is a request to create an auction. Zero fields take defaults:
// ID a generated one, MinIncrement 1.00, StartsAt now, EndsAt StartsAt plus
// the default duration.
type NewItem struct {
	ID            string
	Name          string
	StartingPrice models.Money
	MinIncrement  models.Money
	ReservePrice  models.Money
	StartsAt      time.Time
	EndsAt        time.Time
	// SellerID is who creates it: the caller's token subject.
	SellerID string
}

// CreateItem validates and stores a new auction. An id the archive holds
// is taken.
func (s *Service) CreateItem(ctx context.Context, n NewItem) (models.Item, error) {
	it, err := s.validItem(n)
	if err != nil {
		return models.Item{}, err
	}
	if _, found := s.archived(ctx, it.ID); found {
		return models.Item{}, itemExists(it.ID)
	}
	return s.create(ctx, it)
}

// create records a valid new item in the event log, which makes it
// durable and its id taken for good, then in the store.
func (s *Service) create(ctx context.Context, it models.Item) (models.Item, error) {
	if s.cfg.Log != nil {
		err := s.cfg.Log.RecordItem(ctx, it)
		if errors.Is(err, ErrItemExists) {
			return models.Item{}, itemExists(it.ID)
		}
		if err != nil {
			return models.Item{}, fmt.Errorf("%w: %w", errLogUnavailable, err)
		}
	}
	created, err := s.store.CreateItem(ctx, it)
	if errors.Is(err, ErrItemExists) {
		return models.Item{}, itemExists(it.ID)
	}
	return created, err
}

func itemExists(id string) error {
	return &models.Error{Kind: models.KindConflict, Message: fmt.Sprintf("item %q already exists", id), Err: ErrItemExists}
}

// validItem checks n and fills in its defaults.
func (s *Service) validItem(n NewItem) (models.Item, error) {
	now := s.now().UTC()
	if n.ID == "" {
		n.ID = "item_" + models.NewEventID()[len("evt_"):]
	}
	if err := models.ValidateID(n.ID); err != nil {
		return models.Item{}, models.Errorf(models.KindInvalid, "id: %w", err)
	}
	if n.Name == "" || len(n.Name) > maxNameLen {
		return models.Item{}, models.Errorf(models.KindInvalid, "name is required and must be at most %d bytes", maxNameLen)
	}
	if err := checkText(n.Name); err != nil {
		return models.Item{}, models.Errorf(models.KindInvalid, "name: %w", err)
	}
	if n.SellerID != "" {
		if err := models.ValidateID(n.SellerID); err != nil {
			return models.Item{}, models.Errorf(models.KindInvalid, "seller_id: %w", err)
		}
	}
	if n.StartingPrice <= 0 {
		return models.Item{}, models.Errorf(models.KindInvalid, "starting_price is required and must be greater than zero")
	}
	if n.MinIncrement == 0 {
		n.MinIncrement = DefaultMinIncrement
	}
	if n.MinIncrement < 0 || n.ReservePrice < 0 {
		return models.Item{}, models.Errorf(models.KindInvalid, "amounts must not be negative")
	}
	if n.StartsAt.IsZero() {
		n.StartsAt = now
	}
	if n.EndsAt.IsZero() {
		n.EndsAt = n.StartsAt.Add(s.cfg.DefaultDuration)
	}
	if !n.EndsAt.After(n.StartsAt) {
		return models.Item{}, models.Errorf(models.KindInvalid, "ends_at must be after starts_at")
	}
	if !n.EndsAt.After(now) {
		return models.Item{}, models.Errorf(models.KindInvalid, "ends_at must be in the future")
	}
	// An auction holds Redis memory, an end-time hint and its events for
	// as long as it runs: a length without bound is unbounded state.
	if from := maxTime(n.StartsAt, now); n.EndsAt.Sub(from) > s.cfg.MaxDuration {
		return models.Item{}, models.Errorf(models.KindInvalid, "the auction may run at most %v (MAX_AUCTION_DURATION): ends_at is %v after its start",
			s.cfg.MaxDuration, n.EndsAt.Sub(from).Round(time.Second))
	}
	status := models.StatusActive
	if n.StartsAt.After(now) {
		status = models.StatusScheduled
	}
	it := models.Item{
		ID:            n.ID,
		Name:          n.Name,
		Status:        status,
		StartingPrice: n.StartingPrice,
		MinIncrement:  n.MinIncrement,
		ReservePrice:  n.ReservePrice,
		StartsAt:      n.StartsAt.UTC(),
		EndsAt:        n.EndsAt.UTC(),
		SellerID:      n.SellerID,
	}
	return it, nil
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// checkText refuses text a client could use to forge what others see:
// bytes that are not UTF-8, control characters (Unicode category Cc, NUL
// and newlines included: a name is one line), and the bidirectional
// overrides that make text display in another order than it is stored.
func checkText(s string) error {
	if !utf8.ValidString(s) {
		return errors.New("must be valid UTF-8")
	}
	for i, r := range s {
		if unicode.Is(unicode.Cc, r) || r >= '\u202a' && r <= '\u202e' || r >= '\u2066' && r <= '\u2069' {
			return fmt.Errorf("must not contain control characters (%U at byte %d)", r, i)
		}
	}
	return nil
}

// Canceller is who asks to cancel an auction.
type Canceller struct {
	// ID is the caller's user id ("" without authentication).
	ID string
	// Any lets the caller cancel any auction that has not ended (an admin,
	// or everyone when authentication is disabled).
	Any bool
}

// CancelItem cancels an auction as models.Cancel decides, and publishes its
// auction_cancelled event through the outbox like a close. It returns the
// item as it is now.
func (s *Service) CancelItem(ctx context.Context, id string, by Canceller) (models.Item, error) {
	if err := models.ValidateID(id); err != nil {
		return models.Item{}, models.Errorf(models.KindInvalid, "item id: %w", err)
	}
	e, err := s.store.Cancel(ctx, id, by.ID, by.Any)
	// As for bids: an item Redis lost or has not checked since it
	// restarted is brought up to the event log first.
	for range 2 {
		if !errors.Is(err, ErrUnchecked) && !(errors.Is(err, ErrItemNotFound) && s.cfg.Log != nil) {
			break
		}
		if cerr := s.check(ctx, id); errors.Is(cerr, ErrItemNotFound) {
			break
		} else if cerr != nil {
			return models.Item{}, cerr
		}
		e, err = s.store.Cancel(ctx, id, by.ID, by.Any)
	}
	switch {
	case errors.Is(err, ErrUnchecked):
		return models.Item{}, fmt.Errorf("%w: %w", errLogUnavailable, err)
	case errors.Is(err, ErrItemNotFound):
		// Long closed, the archive holds it: final all the same.
		if archived, found := s.archived(ctx, id); found {
			if !by.Any && (archived.SellerID == "" || archived.SellerID != by.ID) {
				return models.Item{}, models.ErrCancelForbidden
			}
			return models.Item{}, models.ErrAuctionFinal
		}
		return models.Item{}, err
	case err != nil:
		return models.Item{}, err
	}
	s.log.Info("auction cancelled", "item_id", id, "by", by.ID, "seq", e.Event.Seq)
	s.pub.Publish(e)
	s.Observe(e.Event)
	return s.Item(ctx, id)
}

// Item returns an item's current state: from the store, or for a closed
// item the store has let go, from the archive. With AutoCreate an unknown id
// becomes a default active auction, as the README's quick start expects.
func (s *Service) Item(ctx context.Context, id string) (models.Item, error) {
	if err := models.ValidateID(id); err != nil {
		return models.Item{}, models.Errorf(models.KindInvalid, "item id: %w", err)
	}
	it, err := s.find(ctx, id)
	if !errors.Is(err, ErrItemNotFound) || !s.cfg.AutoCreate {
		return it, err
	}
	// The archive and the event log were asked by find.
	it, err = s.validItem(NewItem{ID: id, Name: "Item " + id, StartingPrice: DefaultStartingPrice})
	if err != nil {
		return models.Item{}, err
	}
	created, err := s.create(ctx, it)
	if errors.Is(err, ErrItemExists) {
		// Another request created it first; theirs is as good as ours.
		return s.Item(ctx, id)
	}
	return created, err
}

// find is Item without auto-creation: the store's state, checked against
// the event log, or the archive's for an item the store has let go.
func (s *Service) find(ctx context.Context, id string) (models.Item, error) {
	it, err := s.store.Item(ctx, id)
	if errors.Is(err, ErrUnchecked) || errors.Is(err, ErrItemNotFound) && s.cfg.Log != nil {
		// What Redis shows may be older than what viewers have seen.
		switch cerr := s.check(ctx, id); {
		case cerr == nil:
			it, err = s.store.Item(ctx, id)
		case !errors.Is(cerr, ErrItemNotFound):
			return models.Item{}, cerr
		}
	}
	if !errors.Is(err, ErrItemNotFound) {
		return it, err
	}
	if archived, found := s.archived(ctx, id); found {
		return archived, nil
	}
	return it, err
}

// archived looks id up in the archive, PostgreSQL. Only ids the store does
// not hold come here, and each lookup has a short deadline. When the archive
// cannot answer, the item counts as not archived, so a long-closed item
// reads as unknown until PostgreSQL is back.
func (s *Service) archived(ctx context.Context, id string) (models.Item, bool) {
	if s.cfg.Archive == nil {
		return models.Item{}, false
	}
	it, found, err := s.cfg.Archive.ArchivedItem(ctx, id)
	if err != nil {
		s.log.Debug("archive unavailable for an item the store does not hold", "item_id", id, "err", err)
		return models.Item{}, false
	}
	return it, found
}

// RunCloser closes auctions whose end time has passed, every interval, and
// publishes their auction_closed events, so an auction ends on time even
// when no request arrives. Every gateway runs it; the store closes each
// auction once.
func (s *Service) RunCloser(ctx context.Context, every time.Duration) error {
	t := time.NewTicker(every)
	defer t.Stop()
	failing := false
	instance := ""
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		cctx, cancel := context.WithTimeout(ctx, s.cfg.StoreTimeout)
		now, err := s.store.Instance(cctx)
		cancel()
		if err == nil && now != instance {
			// A Redis that restarted empty has lost its end-time hints
			// too: without a sweep, an auction nobody bids on or reads
			// would never close.
			if err := s.sweep(ctx); err != nil {
				if ctx.Err() == nil {
					s.log.Warn("restoring the items Redis lost", "err", err)
				}
			} else {
				instance = now
			}
		}
		cctx, cancel = context.WithTimeout(ctx, s.cfg.StoreTimeout)
		entries, unchecked, err := s.store.CloseDue(cctx)
		cancel()
		// Closing on a state older than the log could name the wrong
		// winner: these close on a later tick, once checked.
		for _, id := range unchecked {
			if err := s.check(ctx, id); err != nil && ctx.Err() == nil {
				s.log.Warn("checking a due auction against the event log", "item_id", id, "err", err)
			}
		}
		if err != nil {
			if !failing && ctx.Err() == nil {
				s.log.Warn("closing due auctions", "err", err)
			}
			failing = true
			continue
		}
		if failing {
			s.log.Info("closing due auctions works again")
			failing = false
		}
		for _, e := range entries {
			s.log.Info("auction closed", "item_id", e.Event.ItemID, "winner_id", e.Event.WinnerID, "amount", e.Event.Amount)
			s.pub.Publish(e)
			s.Observe(e.Event)
		}
	}
}
