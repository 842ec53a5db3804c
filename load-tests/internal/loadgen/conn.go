package loadgen

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"
)

// conn is a minimal HTTP/1.1 keep-alive client for one connection: it writes
// a prebuilt POST and reads the answer's status and body. On a two-core
// machine the load generator competes with the server for CPU, and
// net/http's client spends about as much per request as a small handler
// does; this one spends a fraction of that, so more of the machine measures
// the target. It understands Content-Length and chunked bodies and
// reconnects after Connection: close or any error.
type conn struct {
	addr    string
	host    string
	timeout time.Duration

	c   net.Conn
	r   *bufio.Reader
	req []byte
}

func newConn(addr, host string, timeout time.Duration) *conn {
	return &conn{addr: addr, host: host, timeout: timeout}
}

// errMalformed marks an answer the client could not parse.
var errMalformed = errors.New("malformed HTTP response")

// post sends body to path and appends the answer's body to dst.
func (c *conn) post(ctx context.Context, path string, body []byte, dst *bytes.Buffer) (int, error) {
	if c.c == nil {
		d := net.Dialer{Timeout: c.timeout, KeepAlive: 30 * time.Second}
		nc, err := d.DialContext(ctx, "tcp", c.addr)
		if err != nil {
			return 0, err
		}
		c.c = nc
		c.r = bufio.NewReaderSize(nc, 16<<10)
	}
	// Cancel a request in flight when the run ends instead of waiting out
	// the timeout.
	// The callback may run after post returns and close clears c.c, so it
	// holds its own reference; a deadline on a closed conn is harmless.
	nc := c.c
	stop := context.AfterFunc(ctx, func() { _ = nc.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	_ = nc.SetDeadline(time.Now().Add(c.timeout))

	c.req = append(c.req[:0], "POST "...)
	c.req = append(c.req, path...)
	c.req = append(c.req, " HTTP/1.1\r\nHost: "...)
	c.req = append(c.req, c.host...)
	c.req = append(c.req, "\r\nContent-Type: application/json\r\nContent-Length: "...)
	c.req = strconv.AppendInt(c.req, int64(len(body)), 10)
	c.req = append(c.req, "\r\n\r\n"...)
	c.req = append(c.req, body...)
	if _, err := c.c.Write(c.req); err != nil {
		c.close()
		return 0, err
	}
	status, keep, err := c.readResponse(dst)
	if err != nil || !keep {
		c.close()
	}
	return status, err
}

func (c *conn) close() {
	if c.c != nil {
		_ = c.c.Close()
		c.c, c.r = nil, nil
	}
}

func (c *conn) readResponse(dst *bytes.Buffer) (status int, keep bool, err error) {
	line, err := c.line()
	if err != nil {
		return 0, false, err
	}
	// "HTTP/1.1 200 OK"
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) {
		return 0, false, fmt.Errorf("%w: status line %q", errMalformed, line)
	}
	status, err = strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, false, fmt.Errorf("%w: status line %q", errMalformed, line)
	}
	keep = line[7] == '1'
	length, chunked := -1, false
	for {
		h, err := c.line()
		if err != nil {
			return 0, false, err
		}
		if len(h) == 0 {
			break
		}
		name, value, ok := bytes.Cut(h, []byte(":"))
		if !ok {
			return 0, false, fmt.Errorf("%w: header %q", errMalformed, h)
		}
		value = bytes.TrimSpace(value)
		switch {
		case asciiEqualFold(name, "content-length"):
			length, err = strconv.Atoi(string(value))
			if err != nil || length < 0 {
				return 0, false, fmt.Errorf("%w: content-length %q", errMalformed, value)
			}
		case asciiEqualFold(name, "transfer-encoding"):
			chunked = asciiEqualFold(value, "chunked")
		case asciiEqualFold(name, "connection"):
			if asciiEqualFold(value, "close") {
				keep = false
			}
		}
	}
	switch {
	case chunked:
		err = c.readChunked(dst)
	case length >= 0:
		_, err = io.CopyN(dst, c.r, int64(length))
	default:
		// No length: the body runs to the end of the connection.
		_, err = dst.ReadFrom(c.r)
		keep = false
	}
	return status, keep, err
}

func (c *conn) readChunked(dst *bytes.Buffer) error {
	for {
		line, err := c.line()
		if err != nil {
			return err
		}
		sizeText, _, _ := bytes.Cut(line, []byte(";"))
		size, err := strconv.ParseInt(string(bytes.TrimSpace(sizeText)), 16, 64)
		if err != nil || size < 0 {
			return fmt.Errorf("%w: chunk size %q", errMalformed, line)
		}
		if size == 0 {
			// Trailers, then the empty line.
			for {
				t, err := c.line()
				if err != nil {
					return err
				}
				if len(t) == 0 {
					return nil
				}
			}
		}
		if _, err := io.CopyN(dst, c.r, size); err != nil {
			return err
		}
		if crlf, err := c.line(); err != nil || len(crlf) != 0 {
			return fmt.Errorf("%w: chunk end", errMalformed)
		}
	}
}

// line reads one header line without its CRLF. The returned slice is valid
// until the next read.
func (c *conn) line() ([]byte, error) {
	l, err := c.r.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, bufio.ErrBufferFull) {
			return nil, fmt.Errorf("%w: header line too long", errMalformed)
		}
		return nil, err
	}
	l = l[:len(l)-1]
	if n := len(l); n > 0 && l[n-1] == '\r' {
		l = l[:n-1]
	}
	return l, nil
}

func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		x, y := b[i], s[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}
