package service

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/bidding-platform/shared/models"
)

// Page sizes of Browse.
const (
	BrowseDefaultLimit = 20
	BrowseMaxLimit     = 100
	// browseScanFactor bounds how many index entries one page of live
	// items looks at, per item asked for: a page of scheduled auctions
	// among thousands of active ones ends short, with a cursor, instead of
	// reading the whole index in one request.
	browseScanFactor = 10
)

// OpenKey is a place in the open-auction index: the auction's scheduled end
// as created (unix ms; NoEnd for an auction without one), then its id.
// Soft close never changes it, so pages of live auctions stay stable while
// bids arrive.
type OpenKey struct {
	End int64
	ID  string
}

// NoEnd is the OpenKey.End of an auction without an end: after every real
// end (and exact as a Redis score, a double).
const NoEnd int64 = 1 << 53

// OpenEntry is one auction of the open-auction index with its item as the
// store read it. Unchecked says the store holds the item but has not
// checked it against the event log since Redis restarted (Item is then
// empty).
type OpenEntry struct {
	Key       OpenKey
	Item      models.Item
	Unchecked bool
}

// OpenPage is one walk step over the open-auction index.
type OpenPage struct {
	Entries []OpenEntry
	// Last is the last index entry the walk looked at, which may be one
	// left out of Entries (an item the store no longer holds).
	Last OpenKey
	// Done: nothing in the index follows Last.
	Done bool
}

// OpenIndex lists the auctions that are not final, ordered by OpenKey.
type OpenIndex interface {
	// OpenItems looks at up to n index entries strictly after after (the
	// zero key: from the start) and reads their items. Entries whose item
	// the store no longer holds, or holds final, leave the index and the
	// answer.
	OpenItems(ctx context.Context, after OpenKey, n int) (OpenPage, error)
}

// FinalKey is a place in the archive's list of final auctions: when the
// auction closed or was cancelled, then its id.
type FinalKey struct {
	At time.Time
	ID string
}

// FinalItem is a closed or cancelled auction and when it became so.
type FinalItem struct {
	Item models.Item
	At   time.Time
}

// FinalArchive lists closed and cancelled auctions from the archive.
type FinalArchive interface {
	// FinalItems returns up to limit items of status (closed or
	// cancelled), most recently final first, ties by id descending,
	// strictly after after (the zero key: from the newest).
	FinalItems(ctx context.Context, status models.Status, after FinalKey, limit int) ([]FinalItem, error)
}

// ItemPage is one page of Browse.
type ItemPage struct {
	Items []models.Item
	// NextCursor continues the listing; empty on the last page.
	NextCursor string
}

// ErrBrowseLimit is the answer to a limit outside 1..BrowseMaxLimit.
var ErrBrowseLimit = models.Errorf(models.KindInvalid, "limit must be a whole number from 1 to %d", BrowseMaxLimit)

// ErrBadBrowseCursor is the answer to a cursor Browse did not issue for the
// status asked.
var ErrBadBrowseCursor = &models.Error{Kind: models.KindInvalid, Message: "cursor is not valid for this status's listing"}

const finalsUnavailable = "Closed and cancelled auctions are temporarily unavailable (PostgreSQL unreachable); live auctions and bidding are not affected"

// Browse lists auctions of one status. Live ones (active, scheduled) come
// from the open-auction index, soonest scheduled end first; final ones
// (closed, cancelled) from the archive, most recently final first. limit
// must be 1..BrowseMaxLimit; cursor is "" or a NextCursor of the same
// status.
func (s *Service) Browse(ctx context.Context, status models.Status, limit int, cursor string) (ItemPage, error) {
	live := status == models.StatusActive || status == models.StatusScheduled
	if !live && status != models.StatusClosed && status != models.StatusCancelled {
		return ItemPage{}, models.Errorf(models.KindInvalid, "status must be active, scheduled, closed or cancelled")
	}
	if limit < 1 || limit > BrowseMaxLimit {
		return ItemPage{}, ErrBrowseLimit
	}
	num, id, err := decodeBrowseCursor(status, cursor)
	if err != nil {
		return ItemPage{}, err
	}
	if live {
		return s.browseOpen(ctx, status, limit, OpenKey{End: num, ID: id})
	}
	after := FinalKey{ID: id}
	if id != "" {
		after.At = time.UnixMicro(num).UTC()
	}
	return s.browseFinal(ctx, status, limit, after)
}

// browseOpen walks the index from after, keeping the items whose status
// (by Redis's clock) is status, until the page is full or it has looked at
// browseScanFactor entries per item asked for. The cursor is where the walk
// stopped, so a short page still continues where it left off, and an
// auction created meanwhile is listed in its place or not at all, never
// twice.
func (s *Service) browseOpen(ctx context.Context, status models.Status, limit int, after OpenKey) (ItemPage, error) {
	if s.cfg.Open == nil {
		return ItemPage{}, &models.Error{Kind: models.KindUnavailable, Message: "live auctions cannot be listed without the open-auction index"}
	}
	page := ItemPage{Items: []models.Item{}}
	last := after
	for budget := browseScanFactor * limit; ; {
		n := min(budget, limit)
		budget -= n
		step, err := s.cfg.Open.OpenItems(ctx, last, n)
		if err != nil {
			return ItemPage{}, fmt.Errorf("list open auctions: %w", err)
		}
		for i, e := range step.Entries {
			it := e.Item
			if e.Unchecked {
				var found bool
				if it, found, err = s.checkedItem(ctx, e.Key.ID); err != nil {
					return ItemPage{}, err
				} else if !found {
					continue
				}
			}
			if it.Status != status {
				continue
			}
			page.Items = append(page.Items, it)
			if len(page.Items) == limit {
				if !step.Done || i < len(step.Entries)-1 {
					page.NextCursor = encodeBrowseCursor(status, e.Key.End, e.Key.ID)
				}
				return page, nil
			}
		}
		last = step.Last
		switch {
		case step.Done:
			return page, nil
		case budget == 0:
			page.NextCursor = encodeBrowseCursor(status, last.End, last.ID)
			return page, nil
		}
	}
}

// checkedItem brings an item Redis holds unchecked up to the event log, as
// reading it alone would, and reads it again. Leaving it out instead would
// skip a live auction for good on this walk; listing what Redis shows
// could list an auction the log already closed.
func (s *Service) checkedItem(ctx context.Context, id string) (models.Item, bool, error) {
	if err := s.check(ctx, id); errors.Is(err, ErrItemNotFound) {
		return models.Item{}, false, nil
	} else if err != nil {
		return models.Item{}, false, err
	}
	it, err := s.store.Item(ctx, id)
	switch {
	case errors.Is(err, ErrItemNotFound):
		return models.Item{}, false, nil
	case errors.Is(err, ErrUnchecked):
		return models.Item{}, false, fmt.Errorf("%w: %w", errLogUnavailable, err)
	case err != nil:
		return models.Item{}, false, err
	}
	return it, true, nil
}

func (s *Service) browseFinal(ctx context.Context, status models.Status, limit int, after FinalKey) (ItemPage, error) {
	if s.cfg.Finals == nil {
		return ItemPage{}, &models.Error{Kind: models.KindUnavailable, Message: finalsUnavailable}
	}
	// One more than asked says whether another page exists.
	items, err := s.cfg.Finals.FinalItems(ctx, status, after, limit+1)
	if err != nil {
		if models.ErrorKind(err) == models.KindInternal {
			// As for bid history: what the archive's reader could not say
			// itself means PostgreSQL did not answer.
			err = models.Wrap(models.KindUnavailable, finalsUnavailable, err)
		}
		return ItemPage{}, err
	}
	page := ItemPage{Items: make([]models.Item, 0, min(len(items), limit))}
	for _, f := range items[:min(len(items), limit)] {
		page.Items = append(page.Items, f.Item)
	}
	if len(items) > limit {
		last := items[limit-1]
		page.NextCursor = encodeBrowseCursor(status, last.At.UnixMicro(), last.Item.ID)
	}
	return page, nil
}

// browseCursorVersion lets the format change without misreading old
// cursors.
const browseCursorVersion = "i1"

// browseCheckLen bytes of a SHA-256 end every cursor, so that a truncated,
// edited or made-up one is refused rather than read as another position.
const browseCheckLen = 8

// encodeBrowseCursor makes an opaque token for "after this entry of this
// status's listing": num is the scheduled end (ms) of a live auction or
// when a final one became final (µs, PostgreSQL's precision).
func encodeBrowseCursor(status models.Status, num int64, id string) string {
	raw := []byte(browseCursorVersion + "\x00" + string(status) + "\x00" + strconv.FormatInt(num, 10) + "\x00" + id)
	sum := sha256.Sum256(raw)
	return base64.RawURLEncoding.EncodeToString(append(raw, sum[:browseCheckLen]...))
}

// decodeBrowseCursor reads a cursor of status's listing; "" is the start.
func decodeBrowseCursor(status models.Status, cursor string) (int64, string, error) {
	if cursor == "" {
		return 0, "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil || len(b) <= browseCheckLen {
		return 0, "", ErrBadBrowseCursor
	}
	raw, check := b[:len(b)-browseCheckLen], b[len(b)-browseCheckLen:]
	if sum := sha256.Sum256(raw); !bytes.Equal(sum[:browseCheckLen], check) {
		return 0, "", ErrBadBrowseCursor
	}
	parts := strings.Split(string(raw), "\x00")
	if len(parts) != 4 || parts[0] != browseCursorVersion || parts[1] != string(status) || models.ValidateID(parts[3]) != nil {
		return 0, "", ErrBadBrowseCursor
	}
	num, err := strconv.ParseInt(parts[2], 10, 64)
	if err != nil || num <= 0 {
		return 0, "", ErrBadBrowseCursor
	}
	return num, parts[3], nil
}
