// Command healthcheck is the container health check of the distroless service
// images, which have no shell or curl:
//
//	healthcheck http://127.0.0.1:8080/health
//
// It exits 0 when the URL answers 2xx within the timeout and 1 otherwise, as
// Docker's HEALTHCHECK and ECS container health checks expect.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/bidding-platform/infrastructure/internal/probe"
)

func main() {
	if err := run(context.Background(), os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "healthcheck:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	// main prints the returned error; the default usage dump adds nothing to a health log.
	fs.SetOutput(io.Discard)
	timeout := fs.Duration("timeout", 2*time.Second, "give up after this long")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("usage: healthcheck [-timeout 2s] http://127.0.0.1:PORT/health")
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	return probe.Check(ctx, &http.Client{}, fs.Arg(0))
}
