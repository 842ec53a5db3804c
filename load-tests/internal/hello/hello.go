// Package hello is the baseline the gateway is compared with: a plain
// net/http server that answers every request with a small JSON body and does
// nothing else. Its rate is the most any HTTP service can reach on the same
// machine with the same load generator.
package hello

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"
)

var body = []byte(`{"success":true,"message":"hello"}`)

// Handler answers 200 with a fixed JSON body after draining the request.
func Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	})
}

// Server is the baseline bound to a listener.
type Server struct {
	ln  net.Listener
	srv *http.Server
}

// Listen binds addr now, so a busy port is reported before serving starts.
func Listen(addr string) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	return &Server{ln: ln, srv: &http.Server{Handler: Handler(), ReadHeaderTimeout: 5 * time.Second}}, nil
}

// Addr is the bound address, useful with ":0".
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Run serves until ctx ends, then shuts down gracefully.
func (s *Server) Run(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(s.ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.srv.Shutdown(shutCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}
