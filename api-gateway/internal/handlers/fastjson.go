package handlers

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
)

var bodyPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// readBody reads at most max bytes of the request body into a pooled
// buffer; put it back with releaseBody.
func readBody(r *http.Request, max int64) (*bytes.Buffer, error) {
	buf := bodyPool.Get().(*bytes.Buffer)
	buf.Reset()
	if _, err := buf.ReadFrom(io.LimitReader(r.Body, max+1)); err != nil {
		releaseBody(buf)
		return nil, fmt.Errorf("reading request body: %w", err)
	}
	if int64(buf.Len()) > max {
		releaseBody(buf)
		return nil, errBodyTooLarge(max)
	}
	return buf, nil
}

func releaseBody(buf *bytes.Buffer) {
	if buf.Cap() <= 64<<10 {
		bodyPool.Put(buf)
	}
}

// parseBidFast reads the common shapes of a bid body,
// {"user_id":"<id chars>","amount":<number>} or the same with
// "max_amount" (maxBid), in either order with any whitespace, without
// encoding/json's allocations. ok is false for anything else (escapes,
// other fields, duplicates, both amounts, other types); the caller then
// decodes with encoding/json, which also words the error. user and amount
// alias body.
func parseBidFast(body []byte) (user, amount []byte, maxBid, ok bool) {
	p := fastParser{b: body}
	if !p.byte('{') {
		return nil, nil, false, false
	}
	for i := 0; i < 2; i++ {
		if i == 1 && !p.byte(',') {
			return nil, nil, false, false
		}
		key, ok := p.str()
		if !ok || !p.byte(':') {
			return nil, nil, false, false
		}
		switch string(key) {
		case "user_id":
			if user != nil {
				return nil, nil, false, false
			}
			if user, ok = p.str(); !ok {
				return nil, nil, false, false
			}
		case "amount", "max_amount":
			maxBid = string(key) == "max_amount"
			if amount != nil {
				return nil, nil, false, false
			}
			if amount, ok = p.number(); !ok {
				return nil, nil, false, false
			}
		default:
			return nil, nil, false, false
		}
	}
	if !p.byte('}') {
		return nil, nil, false, false
	}
	p.space()
	return user, amount, maxBid, p.i == len(p.b)
}

type fastParser struct {
	b []byte
	i int
}

func (p *fastParser) space() {
	for p.i < len(p.b) && (p.b[p.i] == ' ' || p.b[p.i] == '\t' || p.b[p.i] == '\n' || p.b[p.i] == '\r') {
		p.i++
	}
}

func (p *fastParser) byte(c byte) bool {
	p.space()
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

// str reads a string of id characters (letters, digits, '_', '-'); any
// other character, escapes included, sends the body to the slow path.
func (p *fastParser) str() ([]byte, bool) {
	if !p.byte('"') {
		return nil, false
	}
	start := p.i
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			s := p.b[start:p.i]
			p.i++
			return s, true
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '-':
			p.i++
		default:
			return nil, false
		}
	}
	return nil, false
}

// number reads a JSON number token's text; models.ParseMoney judges it.
func (p *fastParser) number() ([]byte, bool) {
	p.space()
	start := p.i
	for p.i < len(p.b) {
		c := p.b[p.i]
		if c >= '0' && c <= '9' || c == '.' || c == '-' || c == '+' || c == 'e' || c == 'E' {
			p.i++
			continue
		}
		break
	}
	if p.i == start || !json.Valid(p.b[start:p.i]) {
		return nil, false
	}
	return p.b[start:p.i], true
}
