package service

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/bidding-platform/shared/models"
)

// A user's own activity: their bids, and the items they bid on, won or
// sell. Bids and final items come from the archive; whatever is still live
// (name, status, price, leader) from the store, read once per distinct item
// of a page.

// Page sizes of the user lists.
const (
	DefaultUserLimit = 20
	MaxUserLimit     = 100
	// biddingScanFactor bounds how many archive rows one page of the
	// bidding list looks at, per item asked for: a user whose archive
	// holds many items as active that Redis has closed gets a short page
	// with a cursor instead of a request that reads until it times out.
	biddingScanFactor = 10
)

// Role picks one of a user's item lists.
type Role string

const (
	// RoleBidding lists the open items the user bid on, latest bid first.
	RoleBidding Role = "bidding"
	// RoleWon lists the closed items the user won, latest close first.
	RoleWon Role = "won"
	// RoleSelling lists the items the user created, latest start first.
	RoleSelling Role = "selling"
)

// Roles are the valid roles, in the order the API documents them.
var Roles = []Role{RoleBidding, RoleWon, RoleSelling}

// BidKey is a position in a user's bids: newest first by bid time, ties by
// event id, both descending.
type BidKey struct {
	At      time.Time
	EventID string
}

// ItemKey is a position in one of a user's item lists, descending by At
// (what At means depends on the list), ties by item id descending.
type ItemKey struct {
	At time.Time
	ID string
}

// ArchivedItem is one row of a user's item list as the archive has it.
type ArchivedItem struct {
	Key ItemKey
	// Item holds at least the id. Complete says the archive holds the whole
	// final item (its description came with the close), so the store need
	// not be asked.
	Item     models.Item
	Complete bool
	// YourBid is the user's highest archived bid on it (bidding and won).
	YourBid models.Money
}

// UserArchive is what the archive says about one user. Each call returns at
// most n rows strictly after the position given (nil: from the start).
type UserArchive interface {
	// UserBids are the user's bids, newest first.
	UserBids(ctx context.Context, userID string, after *BidKey, n int) ([]models.Bid, error)
	// BiddingItems are the items the user bid on that the archive does not
	// hold as final, by the user's latest bid on each (Key.At), newest
	// first; Item has only its id.
	BiddingItems(ctx context.Context, userID string, after *ItemKey, n int) ([]ArchivedItem, error)
	// WonItems are the closed items the user won, by close time, newest
	// first.
	WonItems(ctx context.Context, userID string, after *ItemKey, n int) ([]ArchivedItem, error)
	// SoldItems are the final items the user created, by start time,
	// newest first; only complete ones.
	SoldItems(ctx context.Context, sellerID string, after *ItemKey, n int) ([]ArchivedItem, error)
	// ArchivedItems returns, in one read, those of ids the archive holds
	// final (closed or cancelled) and complete.
	ArchivedItems(ctx context.Context, ids []string) (map[string]models.Item, error)
}

// LiveItems reads many items from the store at once, and keeps the index
// of each seller's items.
type LiveItems interface {
	// Items reads ids in one round trip. found holds the items the store
	// holds checked against the event log, unchecked the ones it holds
	// unchecked (see ErrUnchecked); the others it does not hold.
	Items(ctx context.Context, ids []string) (found map[string]models.Item, unchecked []string, err error)
	// SellerItems returns up to n entries of the seller's index strictly
	// after the position given, newest start first; At is the item's start.
	SellerItems(ctx context.Context, sellerID string, after *ItemKey, n int) ([]ItemKey, error)
	// ForgetSellerItems drops entries from the seller's index.
	ForgetSellerItems(ctx context.Context, sellerID string, ids []string) error
}

// UserBid is one of a user's bids with its item as it is now.
type UserBid struct {
	models.Bid
	ItemName   string
	ItemStatus models.Status
	// Leading: the item is open and the user is its highest bidder.
	Leading bool
	// Won: the item closed with the user as its winner.
	Won bool
}

// UserBidPage is one page of a user's bids.
type UserBidPage struct {
	Bids       []UserBid
	NextCursor string
}

// UserItem is one item of a user's list, as it is now.
type UserItem struct {
	Item models.Item
	// Leading: the item is open and the user is its highest bidder.
	Leading bool
	// YourBid is the user's highest bid on it; nil for RoleSelling.
	YourBid *models.Money
}

// UserItemPage is one page of a user's items.
type UserItemPage struct {
	Items      []UserItem
	NextCursor string
}

// ErrBadUserCursor is the answer to a cursor not issued for this list.
var ErrBadUserCursor = &models.Error{Kind: models.KindInvalid, Message: "cursor is not valid for this list"}

// archiveUnavailable is what a client reads while PostgreSQL is down.
const archiveUnavailable = "A user's bids and items are temporarily unavailable (PostgreSQL unreachable); bidding is not affected"

// UserBids returns one page of userID's bids, newest first (bid time, then
// event id, descending). limit 0 means DefaultUserLimit.
func (s *Service) UserBids(ctx context.Context, userID string, limit int, cursor string) (UserBidPage, error) {
	limit, err := userLimit(userID, limit)
	if err != nil {
		return UserBidPage{}, err
	}
	var after *BidKey
	if cursor != "" {
		k, err := decodeUserCursor("bids", userID, cursor)
		if err != nil {
			return UserBidPage{}, err
		}
		after = &BidKey{At: k.At, EventID: k.ID}
	}
	if s.cfg.Users == nil || s.cfg.Live == nil {
		return UserBidPage{}, archiveError(errors.New("no archive configured"))
	}
	// One row more than asked says whether another page exists.
	bids, err := s.cfg.Users.UserBids(ctx, userID, after, limit+1)
	if err != nil {
		return UserBidPage{}, archiveError(err)
	}
	page := UserBidPage{Bids: make([]UserBid, 0, min(len(bids), limit))}
	if len(bids) > limit {
		bids = bids[:limit]
		last := bids[limit-1]
		page.NextCursor = encodeUserCursor("bids", userID, ItemKey{At: last.Timestamp, ID: last.EventID})
	}
	ids := make([]string, 0, len(bids))
	for _, b := range bids {
		ids = append(ids, b.ItemID)
	}
	items, err := s.currentItems(ctx, ids)
	if err != nil {
		return UserBidPage{}, err
	}
	for _, b := range bids {
		ub := UserBid{Bid: b}
		if it, ok := items[b.ItemID]; ok {
			ub.ItemName, ub.ItemStatus = it.Name, it.Status
			ub.Leading, ub.Won = leading(it, userID), won(it, userID)
		}
		page.Bids = append(page.Bids, ub)
	}
	return page, nil
}

// UserItems returns one page of userID's items in role. limit 0 means
// DefaultUserLimit.
func (s *Service) UserItems(ctx context.Context, userID string, role Role, limit int, cursor string) (UserItemPage, error) {
	limit, err := userLimit(userID, limit)
	if err != nil {
		return UserItemPage{}, err
	}
	switch role {
	case RoleBidding, RoleWon, RoleSelling:
	default:
		return UserItemPage{}, models.Errorf(models.KindInvalid, "role must be one of %s", joinRoles())
	}
	var after *ItemKey
	if cursor != "" {
		k, err := decodeUserCursor(string(role), userID, cursor)
		if err != nil {
			return UserItemPage{}, err
		}
		after = &k
	}
	if s.cfg.Users == nil || s.cfg.Live == nil {
		return UserItemPage{}, archiveError(errors.New("no archive configured"))
	}
	var (
		rows []listed
		next *ItemKey
	)
	switch role {
	case RoleBidding:
		rows, next, err = s.bidding(ctx, userID, after, limit)
	case RoleWon:
		rows, next, err = s.won(ctx, userID, after, limit)
	case RoleSelling:
		rows, next, err = s.selling(ctx, userID, after, limit)
	}
	if err != nil {
		return UserItemPage{}, err
	}
	page := UserItemPage{Items: make([]UserItem, 0, len(rows))}
	for _, r := range rows {
		ui := UserItem{Item: r.item, Leading: leading(r.item, userID)}
		if role != RoleSelling {
			bid := r.yourBid
			ui.YourBid = &bid
		}
		page.Items = append(page.Items, ui)
	}
	if next != nil {
		page.NextCursor = encodeUserCursor(string(role), userID, *next)
	}
	return page, nil
}

// listed is one item of a page with its position.
type listed struct {
	key     ItemKey
	item    models.Item
	yourBid models.Money
}

// bidding lists the open items userID bid on. The archive names them by the
// user's latest bid; the store says whether they are still open, since an
// item that closed moments ago may not be archived as closed yet. Such
// items are skipped and the archive asked for more, up to
// biddingScanFactor rows per item asked for; the cursor is then where the
// walk stopped, so a short page continues where it left off.
func (s *Service) bidding(ctx context.Context, userID string, after *ItemKey, limit int) ([]listed, *ItemKey, error) {
	var out []listed
	for budget := biddingScanFactor * limit; ; {
		// One row more than the page holds says whether another page
		// exists.
		n := min(limit+1, budget)
		budget -= n
		rows, err := s.cfg.Users.BiddingItems(ctx, userID, after, n)
		if err != nil {
			return nil, nil, archiveError(err)
		}
		ids := make([]string, len(rows))
		for i, r := range rows {
			ids[i] = r.Item.ID
		}
		items, err := s.currentItems(ctx, ids)
		if err != nil {
			return nil, nil, err
		}
		for _, r := range rows {
			it, ok := items[r.Item.ID]
			if !ok || !open(it) {
				continue
			}
			if len(out) == limit {
				return out, &out[limit-1].key, nil
			}
			out = append(out, listed{key: r.Key, item: it, yourBid: r.YourBid})
		}
		switch {
		case len(rows) < n:
			return out, nil, nil
		case budget == 0:
			return out, &rows[len(rows)-1].Key, nil
		}
		after = &rows[len(rows)-1].Key
	}
}

// won lists the items the archive holds as won by userID.
func (s *Service) won(ctx context.Context, userID string, after *ItemKey, limit int) ([]listed, *ItemKey, error) {
	rows, err := s.cfg.Users.WonItems(ctx, userID, after, limit+1)
	if err != nil {
		return nil, nil, archiveError(err)
	}
	more := len(rows) > limit
	rows = rows[:min(len(rows), limit)]
	// A close archived before closes carried the description is completed
	// from the store (or is shown as the archive has it).
	var partial []string
	for _, r := range rows {
		if !r.Complete {
			partial = append(partial, r.Item.ID)
		}
	}
	items, err := s.currentItems(ctx, partial)
	if err != nil {
		return nil, nil, err
	}
	out := make([]listed, 0, len(rows))
	for _, r := range rows {
		it := r.Item
		if cur, ok := items[it.ID]; ok && !r.Complete {
			it = cur
		}
		out = append(out, listed{key: r.Key, item: it, yourBid: r.YourBid})
	}
	if !more {
		return out, nil, nil
	}
	return out, &out[len(out)-1].key, nil
}

// selling lists the items sellerID created: the live ones from the store's
// index of the seller's items, the ones the store has let go from the
// archive, merged by start time without repeats (an item both hold is the
// same item with the same start, and shown as the store has it). The
// archive is read first: the live walk drops index entries on the word
// that the archive lists their items, and restores items into the store,
// neither of which a read that ends in 503 may do. An item the store lets
// go between the two reads closed CLOSED_ITEM_RETENTION (at least a
// minute) before, so the archive had it final for the first read.
func (s *Service) selling(ctx context.Context, sellerID string, after *ItemKey, limit int) ([]listed, *ItemKey, error) {
	rows, err := s.cfg.Users.SoldItems(ctx, sellerID, after, limit+1)
	if err != nil {
		return nil, nil, archiveError(err)
	}
	live, err := s.liveSold(ctx, sellerID, after, limit+1)
	if err != nil {
		return nil, nil, err
	}
	seen := make(map[string]bool, len(live))
	all := live
	for _, l := range live {
		seen[l.item.ID] = true
	}
	for _, r := range rows {
		if !seen[r.Item.ID] {
			all = append(all, listed{key: r.Key, item: r.Item})
		}
	}
	// Each source gave its first limit+1 after the cursor, so the first
	// limit+1 of the merge are the union's.
	sortKeys(all)
	if len(all) > limit {
		return all[:limit], &all[limit-1].key, nil
	}
	return all, nil, nil
}

// liveSold returns up to n items of the seller's index after the position,
// reading each once. Entries the store no longer holds are dropped from the
// index once they are older than a create in flight could be: the store let
// the item go after it closed and the archive lists it, or Redis lost it
// and restoring it from the event log puts it back. An entry for an item of
// another seller (a create that found the id taken) is dropped at once.
func (s *Service) liveSold(ctx context.Context, sellerID string, after *ItemKey, n int) ([]listed, error) {
	var out []listed
	for len(out) < n {
		want := n - len(out)
		keys, err := s.cfg.Live.SellerItems(ctx, sellerID, after, want)
		if err != nil {
			return nil, err
		}
		ids := make([]string, len(keys))
		for i, k := range keys {
			ids[i] = k.ID
		}
		found, unchecked, err := s.cfg.Live.Items(ctx, ids)
		if err != nil {
			return nil, err
		}
		for _, id := range unchecked {
			switch it, err := s.find(ctx, id); {
			case err == nil:
				found[id] = it
			case !errors.Is(err, ErrItemNotFound):
				return nil, err
			}
		}
		var stale []string
		for _, k := range keys {
			it, ok := found[k.ID]
			switch {
			case ok && it.SellerID == sellerID:
				out = append(out, listed{key: k, item: it})
			case ok || s.now().Sub(k.At) > staleSellerEntry:
				stale = append(stale, k.ID)
			}
		}
		if len(stale) > 0 {
			if err := s.cfg.Live.ForgetSellerItems(ctx, sellerID, stale); err != nil {
				return nil, err
			}
		}
		if len(keys) < want {
			break
		}
		after = &keys[len(keys)-1]
	}
	return out, nil
}

// staleSellerEntry is how long an index entry may name an item the store
// does not hold: a create writes the entry once the item exists, and an
// item starts no earlier than its create, so only an entry whose start is
// this far past can be a leftover.
const staleSellerEntry = time.Minute

// currentItems reads the distinct ids as they are now: from the store in
// one round trip, those it does not hold from the archive in one query
// (closed items the store has let go, the most common by far on a long
// history), and only the few left checked against the event log one by one
// (restored when the log has them). An item whose check cannot reach the
// log is left out, like an item nobody knows: a user's lists show what is
// known rather than fail while NATS is down.
func (s *Service) currentItems(ctx context.Context, ids []string) (map[string]models.Item, error) {
	distinct := make([]string, 0, len(ids))
	seen := make(map[string]bool, len(ids))
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			distinct = append(distinct, id)
		}
	}
	if len(distinct) == 0 {
		return map[string]models.Item{}, nil
	}
	found, unchecked, err := s.cfg.Live.Items(ctx, distinct)
	if err != nil {
		return nil, err
	}
	held := make(map[string]bool, len(unchecked))
	for _, id := range unchecked {
		held[id] = true
	}
	var gone []string
	for _, id := range distinct {
		if _, ok := found[id]; !ok && !held[id] {
			gone = append(gone, id)
		}
	}
	if len(gone) > 0 {
		archived, err := s.cfg.Users.ArchivedItems(ctx, gone)
		if err != nil {
			return nil, archiveError(err)
		}
		for id, it := range archived {
			found[id] = it
		}
	}
	for _, id := range distinct {
		if _, ok := found[id]; ok {
			continue
		}
		switch it, err := s.find(ctx, id); {
		case err == nil:
			found[id] = it
		case errors.Is(err, errLogUnavailable):
			s.log.DebugContext(ctx, "item left out of a user's list: the event log is unavailable", "item_id", id, "err", err)
		case !errors.Is(err, ErrItemNotFound):
			return nil, err
		}
	}
	return found, nil
}

func open(it models.Item) bool {
	return it.Status == models.StatusActive || it.Status == models.StatusScheduled
}

func leading(it models.Item, userID string) bool {
	return open(it) && it.HighestBidderID == userID
}

func won(it models.Item, userID string) bool {
	if it.Status != models.StatusClosed {
		return false
	}
	winner, met := it.CloseOutcome()
	return met && winner == userID
}

func userLimit(userID string, limit int) (int, error) {
	if err := models.ValidateID(userID); err != nil {
		return 0, models.Errorf(models.KindInvalid, "user id: %w", err)
	}
	switch {
	case limit == 0:
		return DefaultUserLimit, nil
	case limit < 0 || limit > MaxUserLimit:
		return 0, models.Errorf(models.KindInvalid, "limit must be a whole number from 1 to %d", MaxUserLimit)
	}
	return limit, nil
}

func joinRoles() string {
	s := make([]string, len(Roles))
	for i, r := range Roles {
		s[i] = string(r)
	}
	return strings.Join(s, ", ")
}

// archiveError makes a failure the archive's reader could not name itself
// an outage: PostgreSQL did not answer.
func archiveError(err error) error {
	if models.ErrorKind(err) == models.KindInternal {
		return models.Wrap(models.KindUnavailable, archiveUnavailable, err)
	}
	return err
}

func sortKeys(l []listed) {
	less := func(a, b ItemKey) bool {
		if !a.At.Equal(b.At) {
			return a.At.After(b.At)
		}
		return a.ID > b.ID
	}
	// Both inputs are sorted; a simple insertion sort keeps this stable
	// and short for pages of at most 2*(MaxUserLimit+1) items.
	for i := 1; i < len(l); i++ {
		for j := i; j > 0 && less(l[j].key, l[j-1].key); j-- {
			l[j], l[j-1] = l[j-1], l[j]
		}
	}
}

// userCursorVersion lets the format change without misreading old cursors.
const userCursorVersion = "u1"

// cursorCheck bytes of a SHA-256 end every cursor, so that a truncated,
// edited or made-up one is refused rather than read as another position.
const cursorCheck = 8

// encodeUserCursor makes an opaque token for "after this position of this
// user's list"; the list and the user inside it stop a cursor of one list
// from being used on another. Times keep microseconds, PostgreSQL's
// precision.
func encodeUserCursor(list, userID string, k ItemKey) string {
	raw := []byte(userCursorVersion + "\x00" + list + "\x00" + userID + "\x00" +
		strconv.FormatInt(k.At.UnixMicro(), 10) + "\x00" + k.ID)
	sum := sha256.Sum256(raw)
	return base64.RawURLEncoding.EncodeToString(append(raw, sum[:cursorCheck]...))
}

func decodeUserCursor(list, userID, cursor string) (ItemKey, error) {
	b, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil || len(b) <= cursorCheck {
		return ItemKey{}, ErrBadUserCursor
	}
	raw, check := b[:len(b)-cursorCheck], b[len(b)-cursorCheck:]
	if sum := sha256.Sum256(raw); !bytes.Equal(sum[:cursorCheck], check) {
		return ItemKey{}, ErrBadUserCursor
	}
	parts := strings.Split(string(raw), "\x00")
	if len(parts) != 5 || parts[0] != userCursorVersion || parts[1] != list || parts[2] != userID || parts[4] == "" {
		return ItemKey{}, ErrBadUserCursor
	}
	us, err := strconv.ParseInt(parts[3], 10, 64)
	if err != nil {
		return ItemKey{}, ErrBadUserCursor
	}
	return ItemKey{At: time.UnixMicro(us).UTC(), ID: parts[4]}, nil
}
