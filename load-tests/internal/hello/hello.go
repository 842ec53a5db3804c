// Package hello is the baseline the gateway is compared with: a server that
// answers every request with a small JSON body and does nothing else, on
// net/http or on fasthttp (the gateway's server). Its rate is the most a Go
// HTTP service on that server can reach on the same machine with the same
// load generator.
package hello

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/valyala/fasthttp"
)

var body = []byte(`{"success":true,"message":"hello"}`)

// Servers are the kinds Listen serves.
var Servers = []string{"net/http", "fasthttp"}

// Handler answers 200 with a fixed JSON body after draining the request.
func Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	})
}

func fastHandler(ctx *fasthttp.RequestCtx) {
	ctx.SetContentType("application/json")
	ctx.SetBody(body)
}

// Server is the baseline bound to a listener.
type Server struct {
	ln   net.Listener
	std  *http.Server
	fast *fasthttp.Server
}

// Listen binds addr now, so a busy port is reported before serving starts.
// kind is one of Servers.
func Listen(addr, kind string) (*Server, error) {
	s := &Server{}
	switch kind {
	case "net/http":
		s.std = &http.Server{Handler: Handler(), ReadHeaderTimeout: 5 * time.Second}
	case "fasthttp":
		s.fast = &fasthttp.Server{Handler: fastHandler, ReadTimeout: 5 * time.Second, NoDefaultServerHeader: true}
	default:
		return nil, fmt.Errorf("unknown server %q: want one of %q", kind, Servers)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	s.ln = ln
	return s, nil
}

// Addr is the bound address, useful with ":0".
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Run serves until ctx ends, then shuts down gracefully.
func (s *Server) Run(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() {
		if s.std != nil {
			errc <- s.std.Serve(s.ln)
		} else {
			errc <- s.fast.Serve(s.ln)
		}
	}()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if s.fast != nil {
		err := s.fast.ShutdownWithContext(shutCtx)
		// fasthttp's Serve returns nil once shut down.
		if serr := <-errc; serr != nil {
			err = errors.Join(err, fmt.Errorf("serve: %w", serr))
		}
		return err
	}
	if err := s.std.Shutdown(shutCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}
