package handlers

import (
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// limiter is a per-key token bucket (per user, per client IP). The map is
// bounded: when a shard is full, keys idle the longest go first, and a key
// that comes back starts with a full bucket, which errs towards serving.
type limiter struct {
	every  rate.Limit
	burst  int
	shards [32]limitShard
	// perShard bounds each shard's map.
	perShard int
}

type limitShard struct {
	mu sync.Mutex
	m  map[string]*bucket
}

type bucket struct {
	lim  *rate.Limiter
	seen time.Time
}

// newLimiter allows perSecond events per key with a burst of one second's
// worth; nil when perSecond is zero (disabled).
func newLimiter(perSecond float64, maxKeys int) *limiter {
	if perSecond <= 0 {
		return nil
	}
	l := &limiter{every: rate.Limit(perSecond), burst: max(1, int(math.Ceil(perSecond))), perShard: max(1, maxKeys/32)}
	for i := range l.shards {
		l.shards[i].m = make(map[string]*bucket)
	}
	return l
}

// allow reports whether key may proceed now, and if not, how long to wait.
func (l *limiter) allow(key string, now time.Time) (bool, time.Duration) {
	h := uint32(2166136261)
	for i := 0; i < len(key); i++ {
		h ^= uint32(key[i])
		h *= 16777619
	}
	sh := &l.shards[h%uint32(len(l.shards))]
	sh.mu.Lock()
	b := sh.m[key]
	if b == nil {
		if len(sh.m) >= l.perShard {
			sh.evict(now, l.perShard)
		}
		b = &bucket{lim: rate.NewLimiter(l.every, l.burst)}
		sh.m[key] = b
	}
	b.seen = now
	r := b.lim.ReserveN(now, 1)
	var wait time.Duration
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		wait = d
	}
	sh.mu.Unlock()
	return wait == 0, wait
}

// evict removes keys idle for more than a minute; if the shard is still
// full, it drops the older half (by last use), so the map stays bounded.
func (sh *limitShard) evict(now time.Time, limit int) {
	var oldest time.Time
	for k, b := range sh.m {
		if now.Sub(b.seen) > time.Minute {
			delete(sh.m, k)
		} else if oldest.IsZero() || b.seen.Before(oldest) {
			oldest = b.seen
		}
	}
	if len(sh.m) < limit {
		return
	}
	mid := oldest.Add(now.Sub(oldest) / 2)
	for k, b := range sh.m {
		if !b.seen.After(mid) {
			delete(sh.m, k)
		}
	}
}
