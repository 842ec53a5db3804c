package hello

import (
	"context"
	"io"
	"net/http"
	"testing"
)

func TestServerAnswersAndShutsDown(t *testing.T) {
	t.Parallel()
	for _, kind := range Servers {
		t.Run(kind, func(t *testing.T) { testServer(t, kind) })
	}
}

func testServer(t *testing.T, kind string) {
	srv, err := Listen("127.0.0.1:0", kind)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()

	resp, err := http.Post("http://"+srv.Addr()+"/api/v1/items/x/bid", "application/json", nil)
	if err != nil {
		t.Fatalf("post: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(b) != string(body) {
		t.Errorf("answer %d %q, want 200 %q", resp.StatusCode, b, body)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run after cancel = %v, want nil", err)
	}
}

func TestUnknownServer(t *testing.T) {
	if _, err := Listen("127.0.0.1:0", "nginx"); err == nil {
		t.Fatal("Listen with an unknown server kind succeeded")
	}
}
