package testenv

import (
	"context"
	"errors"
	"testing"

	goredis "github.com/redis/go-redis/v9"
)

// A durable Redis keeps what it answered across Kill and Start, and loses
// all of it when its data files are deleted in between.
func TestDurableRedisKeepsDataUnlessDeleted(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := DurableRedis(t)
	c := r.Client()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("set: %v", err)
	}
	r.Kill()
	r.Start()
	if got, err := c.Get(ctx, "k").Result(); err != nil || got != "v" {
		t.Fatalf("get after Kill and Start = %q, %v; want v from the append-only file", got, err)
	}
	r.Kill()
	r.DeleteData()
	r.Start()
	if err := c.Get(ctx, "k").Err(); !errors.Is(err, goredis.Nil) {
		t.Errorf("get after DeleteData = %v, want redis.Nil", err)
	}
	if err := c.Set(ctx, "k2", "v2", 0).Err(); err != nil {
		t.Errorf("set after DeleteData: %v", err)
	}
}
