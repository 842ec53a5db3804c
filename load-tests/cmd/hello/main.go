// Command hello serves the plain baselines (net/http, fasthttp) that
// bench/contended.sh measures next to the gateway.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/bidding-platform/load-tests/internal/hello"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "hello:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("hello", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:8090", "listen address")
	kind := fs.String("server", "net/http", fmt.Sprintf("HTTP server, one of %q", hello.Servers))
	if err := fs.Parse(args); err != nil {
		return err
	}
	srv, err := hello.Listen(*addr, *kind)
	if err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "hello: listening on", srv.Addr())
	return srv.Run(ctx)
}
