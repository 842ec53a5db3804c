package handlers

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"
)

// The bid route is where contention is: thousands of bidders on one lot in
// the same seconds, most of them answered from the local price cache. On
// net/http, reading and writing each request cost several times what
// deciding the bid does, so the gateway serves HTTP with fasthttp: bids from
// API clients take a native path, and every other request, including bids
// from browsers (which need CORS), goes through the chi router unchanged.

// bidPattern is the bid route inside /api/v1; bidRoute is its full pattern,
// the label request metrics use for it.
const (
	bidPattern = "/items/{id}/bid"
	bidRoute   = "/api/v1" + bidPattern
)

var (
	itemsPrefix = []byte("/api/v1/items/")
	bidSuffix   = []byte("/bid")
)

// NewFast returns the gateway's handlers for a fasthttp server: one for
// requests, one for what fasthttp could not read as a request.
func NewFast(cfg Config, d Deps) (handler fasthttp.RequestHandler, onError func(*fasthttp.RequestCtx, error)) {
	s := newServer(cfg, d)
	router := s.router()
	// A fasthttp request's context ends when the server shuts down, but a
	// request in flight must still finish then, as on net/http.
	slow := fasthttpadaptor.NewFastHTTPHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		router.ServeHTTP(w, r.WithContext(context.WithoutCancel(r.Context())))
	}))
	handler = func(ctx *fasthttp.RequestCtx) {
		if ctx.IsPost() && len(ctx.Request.Header.Peek("Origin")) == 0 {
			if item, ok := bidItem(ctx.Path()); ok {
				s.fastBid(ctx, string(item))
				return
			}
		}
		slow(ctx)
	}
	return handler, s.fastError
}

// bidItem returns the item id of a bid path, /api/v1/items/{id}/bid.
func bidItem(path []byte) ([]byte, bool) {
	rest, ok := bytes.CutPrefix(path, itemsPrefix)
	if !ok {
		return nil, false
	}
	item, ok := bytes.CutSuffix(rest, bidSuffix)
	if !ok || len(item) == 0 || bytes.IndexByte(item, '/') >= 0 {
		return nil, false
	}
	return item, true
}

// fastBid is placeBid on fasthttp, with what chi's middleware does for it:
// the per-IP limit, panic recovery and request metrics.
func (s *server) fastBid(ctx *fasthttp.RequestCtx, itemID string) {
	// When the server read the request: one clock read fewer per bid.
	start := ctx.Time()
	bp := s.bufs.Get().(*[]byte)
	buf := (*bp)[:0]
	defer func() {
		if v := recover(); v != nil {
			s.d.Log.Error("handler panic", "panic", fmt.Sprint(v), "path", string(ctx.Path()))
			ctx.Response.Reset()
			writeFast(ctx, errorAnswer(buf[:0], http.StatusInternalServerError, "internal error"))
		}
		*bp = buf[:0]
		s.bufs.Put(bp)
		s.d.Metrics.request(bidRoute, http.MethodPost, ctx.Response.StatusCode(), time.Since(start))
	}()
	if s.perIP != nil {
		ip := s.clientIPOf(string(ctx.Request.Header.Peek("X-Forwarded-For")), ctx.RemoteIP().String())
		if ok, wait := s.perIP.allow(ip, time.Now()); !ok {
			s.d.Metrics.bid("rate_limited")
			writeFast(ctx, tooManyAnswer(buf, wait, "rate limit exceeded for this client address"))
			return
		}
	}
	in := bidInput{
		itemID:  itemID,
		body:    ctx.Request.Body(),
		auth:    string(ctx.Request.Header.Peek("Authorization")),
		idemKey: string(ctx.Request.Header.Peek("Idempotency-Key")),
	}
	if len(in.body) > int(s.cfg.MaxBody) {
		in.body, in.bodyErr = nil, errBodyTooLarge(s.cfg.MaxBody)
	}
	// Not ctx: it ends when the server shuts down, and an in-flight bid
	// must still get its answer then.
	a := s.decideBid(context.Background(), in, buf)
	writeFast(ctx, a)
	buf = a.body
}

var (
	jsonTypeBytes = []byte("application/json")
	cacheControl  = []byte("Cache-Control")
	noStoreBytes  = []byte("no-store")
)

func writeFast(ctx *fasthttp.RequestCtx, a bidAnswer) {
	h := &ctx.Response.Header
	h.SetContentTypeBytes(jsonTypeBytes)
	h.SetBytesKV(cacheControl, noStoreBytes)
	if a.retryAfter != "" {
		h.Set("Retry-After", a.retryAfter)
	}
	if a.challenge != "" {
		h.Set("WWW-Authenticate", a.challenge)
	}
	ctx.SetStatusCode(a.status)
	ctx.SetBody(a.body)
}

// fastError answers a request fasthttp could not read, in the API's error
// shape; fasthttp closes the connection afterwards.
func (s *server) fastError(ctx *fasthttp.RequestCtx, err error) {
	status, msg := http.StatusBadRequest, "malformed HTTP request"
	var small *fasthttp.ErrSmallBuffer
	var nerr net.Error
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		status, msg = http.StatusRequestEntityTooLarge, errBodyTooLarge(s.cfg.MaxBody).Error()
	case errors.As(err, &small):
		status, msg = http.StatusRequestHeaderFieldsTooLarge, "request headers are too large"
	case errors.As(err, &nerr) && nerr.Timeout():
		status, msg = http.StatusRequestTimeout, "request not received in time"
	}
	writeFast(ctx, errorAnswer(nil, status, msg))
}

func errBodyTooLarge(max int64) error {
	return errors.New("request body must not exceed " + strconv.FormatInt(max, 10) + " bytes")
}
