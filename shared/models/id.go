package models

import (
	"crypto/rand"
	"encoding/base32"
	"encoding/binary"
	"time"
)

// Lower-case Crockford-like alphabet that sorts in the same order as the bytes,
// so ids generated later sort later.
var idEncoding = base32.NewEncoding("0123456789abcdefghjkmnpqrstvwxyz").WithPadding(base32.NoPadding)

// NewEventID returns a unique, time-ordered event id such as "evt_01jd…".
func NewEventID() string { return newID("evt_") }

// NewBidID returns a unique, time-ordered bid id such as "bid_01jd…".
func NewBidID() string { return newID("bid_") }

// newID encodes 48 bits of milliseconds and 80 random bits (26 characters),
// the ULID layout: unique without coordination across gateways.
func newID(prefix string) string {
	var b [16]byte
	ms := uint64(time.Now().UnixMilli())
	binary.BigEndian.PutUint16(b[0:2], uint16(ms>>32))
	binary.BigEndian.PutUint32(b[2:6], uint32(ms))
	_, _ = rand.Read(b[6:]) // crypto/rand.Read never fails on Linux, and panics rather than return short.
	return prefix + idEncoding.EncodeToString(b[:])
}
