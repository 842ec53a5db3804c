package websocket

import (
	"encoding/binary"
	"encoding/json"
	"math"
	"time"

	"github.com/gorilla/websocket"

	"github.com/bidding-platform/shared/models"
)

// Message types the service sends besides the events it relays ("bid",
// "auction_closed", "auction_cancelled"). Every message carries "type" and "server_time", so a
// page can correct its countdown for a wrong local clock.
const (
	TypeSnapshot         = "snapshot"
	TypeViewers          = "viewers"
	TypeHistoryTruncated = "history_truncated"
	TypeMissed           = "missed"
)

// eventMessage is a relayed event: the documented WebSocket message fields,
// "type" and "seq", plus the server's time. Replay marks events sent from
// JetStream history rather than live.
type eventMessage struct {
	models.Event
	ServerTime time.Time `json:"server_time"`
	Replay     bool      `json:"replay,omitempty"`
}

// public is what viewers may see of an event: the reserve, which the
// closing events carry for the archive, is the seller's secret.
func public(ev models.Event) models.Event {
	ev.ReservePrice = 0
	return ev
}

// snapshotMessage is the item's state after event Seq (0: no event yet).
type snapshotMessage struct {
	Type            string       `json:"type"`
	ItemID          string       `json:"item_id"`
	CurrentBid      models.Money `json:"current_bid"`
	HighestBidderID string       `json:"highest_bidder_id"`
	Status          string       `json:"status"`
	Seq             uint64       `json:"seq"`
	EndsAt          *time.Time   `json:"ends_at"`
	BidCount        int64        `json:"bid_count"`
	WinnerID        string       `json:"winner_id,omitempty"`
	Viewers         int          `json:"viewers"`
	ServerTime      time.Time    `json:"server_time"`
}

// viewersMessage is the number of viewers of the item on this instance.
type viewersMessage struct {
	Type       string    `json:"type"`
	ItemID     string    `json:"item_id"`
	Count      int       `json:"count"`
	ServerTime time.Time `json:"server_time"`
}

// truncatedMessage tells a resuming viewer that events after SinceSeq and
// before FirstSeq are no longer retained, so it cannot show them.
type truncatedMessage struct {
	Type       string    `json:"type"`
	ItemID     string    `json:"item_id"`
	SinceSeq   uint64    `json:"since_seq"`
	FirstSeq   uint64    `json:"first_seq"`
	ServerTime time.Time `json:"server_time"`
}

// missedMessage tells viewers that events FromSeq..ToSeq never became
// available (published out of order and not stored in time, or discarded),
// rather than skipping them silently.
type missedMessage struct {
	Type       string    `json:"type"`
	ItemID     string    `json:"item_id"`
	FromSeq    uint64    `json:"from_seq"`
	ToSeq      uint64    `json:"to_seq"`
	ServerTime time.Time `json:"server_time"`
}

// outMsg is one message framed once and shared by every viewer it goes to.
type outMsg struct {
	// frame is the complete WebSocket frame: server frames are not masked
	// and compression is not negotiated, so the same bytes suit every
	// viewer, and queued frames can go out in one writev.
	frame []byte
	// seq is the event's item seq, 0 for messages that are not events.
	seq uint64
	// ts is the event's acceptance time, for the delivery latency histogram.
	ts time.Time
	// rest marks the unwritten end of a frame the socket took only part of.
	rest bool
}

func prepare(v any, seq uint64, ts time.Time) (*outMsg, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return &outMsg{frame: textFrame(data), seq: seq, ts: ts}, nil
}

// textFrame frames data as one final, unmasked text frame (RFC 6455 5.2).
func textFrame(data []byte) []byte {
	n := len(data)
	var f []byte
	switch {
	case n < 126:
		f = make([]byte, 2, 2+n)
		f[1] = byte(n)
	case n <= math.MaxUint16:
		f = make([]byte, 4, 4+n)
		f[1] = 126
		binary.BigEndian.PutUint16(f[2:], uint16(n))
	default:
		f = make([]byte, 10, 10+n)
		f[1] = 127
		binary.BigEndian.PutUint64(f[2:], uint64(n))
	}
	f[0] = 0x80 | websocket.TextMessage // FIN + opcode
	return append(f, data...)
}

// state is an item's live state folded from its events, for snapshots.
type state struct {
	currentBid models.Money
	bidder     string
	status     string
	endsAt     *time.Time
	bidCount   int64
	winner     string
}

func (s *state) apply(ev models.Event) {
	if ev.EndsAt != nil {
		t := *ev.EndsAt
		s.endsAt = &t
	}
	if ev.BidCount != 0 {
		s.bidCount = ev.BidCount
	}
	switch ev.Type {
	case models.EventBid:
		s.currentBid, s.bidder, s.status = ev.Amount, ev.UserID, string(models.StatusActive)
	case models.EventAuctionCancelled:
		s.status = string(models.StatusCancelled)
	case models.EventAuctionClosed:
		s.status, s.winner = string(models.StatusClosed), ev.WinnerID
		if ev.Amount != 0 {
			s.currentBid = ev.Amount
		}
		if ev.WinnerID != "" {
			s.bidder = ev.WinnerID
		}
	}
}
