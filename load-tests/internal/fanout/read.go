package fanout

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// The load program speaks just enough WebSocket to be a viewer: the
// handshake, unmasked frames from the server, and pongs. Going through a
// full client library costs a goroutine wake-up and an extra read per
// message, which on two shared cores measured the load program as much as
// the service.

// viewer is one connection and what it has received.
type viewer struct {
	conn   net.Conn // until a reader takes the socket over
	fd     int      // the socket once a reader took it over
	buf    []byte   // received bytes not yet parsed: buf[:n]
	n      int
	joined bool // the snapshot (an item's viewer) or ready (a user's channel) arrived
	// personal marks a user's channel (/ws/users/{id}), which gets outbid
	// notices instead of an item's events.
	personal bool
	lat      []time.Duration
	last     uint64
	bad      int64
	closed   bool
}

// run is what all viewers of one measurement share.
type run struct {
	lastSeq   uint64
	remaining atomic.Int64 // viewers that have not got lastSeq yet
	allDone   chan struct{}
	doneOnce  sync.Once
	// published holds each event's publish time (unix ns) by seq, for the
	// outbid notices, which a user's channel sends in its own shape.
	published       []atomic.Int64
	noticesLeft     atomic.Int64 // outbid notices not received yet
	noticesDone     chan struct{}
	noticesDoneOnce sync.Once
}

// newRun prepares a run of events events, users of which expect an outbid
// notice each when users > 0.
func newRun(events, viewers, users int) *run {
	r := &run{lastSeq: uint64(events), allDone: make(chan struct{}), noticesDone: make(chan struct{}),
		published: make([]atomic.Int64, events+1)}
	r.remaining.Store(int64(viewers))
	if viewers == 0 || events == 0 {
		close(r.allDone)
	}
	if users > 0 {
		r.noticesLeft.Store(int64(events))
	}
	if users == 0 || events == 0 {
		close(r.noticesDone)
	}
	return r
}

func (r *run) noticed() {
	if r.noticesLeft.Add(-1) == 0 {
		r.noticesDoneOnce.Do(func() { close(r.noticesDone) })
	}
}

func (r *run) finished() {
	if r.remaining.Add(-1) == 0 {
		r.doneOnce.Do(func() { close(r.allDone) })
	}
}

const wsGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11" // RFC 6455 1.3

// dial opens a viewer connection and reads until the snapshot arrived, so
// the viewer is known to receive live events from then on.
func dial(ctx context.Context, wsURL, itemID string, events int) (*viewer, error) {
	return dialPath(ctx, wsURL, "/ws?item_id="+url.QueryEscape(itemID), false, events)
}

// dialUser opens a user's personal channel and reads until it is ready.
func dialUser(ctx context.Context, wsURL, userID string, notices int) (*viewer, error) {
	return dialPath(ctx, wsURL, "/ws/users/"+url.PathEscape(userID), true, notices)
}

func dialPath(ctx context.Context, wsURL, path string, personal bool, expect int) (*viewer, error) {
	u, err := url.Parse(wsURL)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "ws" {
		return nil, fmt.Errorf("%s: only ws:// URLs are supported", wsURL)
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", u.Host)
	if err != nil {
		return nil, err
	}
	v, err := handshake(conn, u.Host, path, personal, expect)
	if err != nil {
		conn.Close()
		return nil, err
	}
	return v, nil
}

func handshake(conn net.Conn, host, path string, personal bool, events int) (*viewer, error) {
	if err := conn.SetDeadline(time.Now().Add(30 * time.Second)); err != nil {
		return nil, err
	}
	var k [16]byte
	_, _ = rand.Read(k[:]) // crypto/rand.Read does not fail on Linux
	key := base64.StdEncoding.EncodeToString(k[:])
	req := "GET " + path + " HTTP/1.1\r\nHost: " + host + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: " + key + "\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if _, err := conn.Write([]byte(req)); err != nil {
		return nil, err
	}
	br := bufio.NewReaderSize(conn, 4096)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return nil, fmt.Errorf("handshake: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSwitchingProtocols {
		return nil, fmt.Errorf("handshake: %s", resp.Status)
	}
	sum := sha1.Sum([]byte(key + wsGUID))
	if resp.Header.Get("Sec-WebSocket-Accept") != base64.StdEncoding.EncodeToString(sum[:]) {
		return nil, errors.New("handshake: wrong Sec-WebSocket-Accept")
	}
	v := &viewer{conn: conn, fd: -1, buf: make([]byte, 4096), lat: make([]time.Duration, 0, events), personal: personal}
	// Frames that came with the response are in br's buffer.
	rest, _ := br.Peek(br.Buffered())
	v.n = copy(v.buf, rest)
	for {
		if err := v.consume(time.Now(), nil); err != nil {
			return nil, err
		}
		if v.joined {
			break
		}
		if v.n == len(v.buf) {
			v.buf = append(v.buf, make([]byte, len(v.buf))...)
		}
		n, err := conn.Read(v.buf[v.n:])
		if err != nil {
			return nil, fmt.Errorf("read snapshot: %w", err)
		}
		v.n += n
	}
	return v, conn.SetDeadline(time.Time{})
}

var errProtocol = errors.New("websocket protocol error")

// consume handles the complete frames in buf[:n] and keeps the incomplete
// rest; now is when they were read. r is nil before the viewer joined.
func (v *viewer) consume(now time.Time, r *run) error {
	b := v.buf[:v.n]
frames:
	for len(b) >= 2 {
		if b[1]&0x80 != 0 || b[0]&0x80 == 0 {
			return errProtocol // servers do not mask; the service sends unfragmented messages
		}
		size, head := int(b[1]&0x7f), 2
		switch size {
		case 126:
			if len(b) < 4 {
				break frames
			}
			size, head = int(binary.BigEndian.Uint16(b[2:])), 4
		case 127:
			if len(b) < 10 {
				break frames
			}
			size, head = int(binary.BigEndian.Uint64(b[2:])), 10
		}
		if size > 1<<20 {
			return errProtocol
		}
		if len(b) < head+size {
			if head+size > len(v.buf) {
				v.buf = append(v.buf, make([]byte, head+size)...)
			}
			break
		}
		payload := b[head : head+size]
		switch b[0] & 0x0f {
		case 0x1: // text
			v.message(payload, now, r)
		case 0x8: // close
			v.closed = true
		case 0x9: // ping
			if err := v.pong(payload); err != nil {
				return err
			}
		}
		b = b[head+size:]
	}
	v.n = copy(v.buf, b)
	return nil
}

var (
	seqKey    = []byte(`"seq":`)
	tsKey     = []byte(`"timestamp":"`)
	bidKey    = []byte(`"type":"bid"`)
	snapKey   = []byte(`"type":"snapshot"`)
	readyKey  = []byte(`"type":"ready"`)
	outbidKey = []byte(`"type":"outbid"`)
)

// message records the latency of a bid event and checks its order. It picks
// the two fields out of the JSON by hand: decoding 100,000 messages a second
// with reflection would measure the load program rather than the service.
func (v *viewer) message(data []byte, now time.Time, r *run) {
	if v.personal {
		v.notice(data, now, r)
		return
	}
	if !v.joined {
		v.joined = bytes.Contains(data, snapKey)
		return
	}
	if !bytes.Contains(data, bidKey) {
		return
	}
	seq, ts, ok := fields(data)
	if !ok {
		v.bad++
		return
	}
	if seq != v.last+1 {
		v.bad++
	}
	v.last = seq
	v.lat = append(v.lat, now.Sub(ts))
	if r != nil && seq == r.lastSeq {
		r.finished()
	}
}

// notice records the delivery time of an outbid notice: from its event's
// publish, which the run noted by seq, to its receipt.
func (v *viewer) notice(data []byte, now time.Time, r *run) {
	if !v.joined {
		v.joined = bytes.Contains(data, readyKey)
		return
	}
	if !bytes.Contains(data, outbidKey) || r == nil {
		return
	}
	seq, _, ok := fields(data)
	if !ok || seq == 0 || seq >= uint64(len(r.published)) {
		v.bad++
		return
	}
	if seq <= v.last {
		v.bad++ // a user's notices come in the order of their events
	}
	v.last = seq
	v.lat = append(v.lat, now.Sub(time.Unix(0, r.published[seq].Load())))
	r.noticed()
}

func fields(data []byte) (seq uint64, ts time.Time, ok bool) {
	i := bytes.Index(data, seqKey)
	j := bytes.Index(data, tsKey)
	if i < 0 || j < 0 {
		return 0, time.Time{}, false
	}
	rest := data[i+len(seqKey):]
	end := bytes.IndexAny(rest, ",}")
	if end < 0 {
		return 0, time.Time{}, false
	}
	seq, err := strconv.ParseUint(string(rest[:end]), 10, 64)
	if err != nil {
		return 0, time.Time{}, false
	}
	rest = data[j+len(tsKey):]
	end = bytes.IndexByte(rest, '"')
	if end < 0 {
		return 0, time.Time{}, false
	}
	ts, err = time.Parse(time.RFC3339Nano, string(rest[:end]))
	return seq, ts, err == nil
}

// pongFrame is a masked pong carrying payload (RFC 6455 5.5.3); the mask
// key is zero, which leaves the payload as it is.
func pongFrame(payload []byte) []byte {
	f := make([]byte, 0, 6+len(payload))
	f = append(f, 0x8a, 0x80|byte(len(payload)), 0, 0, 0, 0)
	return append(f, payload...)
}
