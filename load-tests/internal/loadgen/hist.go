package loadgen

import (
	"math/bits"
	"time"
)

// subBits sets the histogram's precision: each power of two is split into
// 2^(subBits-1) buckets, so a reported percentile is within 1/64 (1.6%) of
// the true value. Exact samples would cost 8 bytes per request, which at
// 100k requests/s for minutes is more memory than the measurement is worth.
const subBits = 7

const (
	subCount = 1 << subBits       // values below this are stored exactly
	halfSub  = 1 << (subBits - 1) // buckets per power of two above that
	// 64-bit values need at most 64-subBits doublings above subCount.
	bucketCount = subCount + (64-subBits)*halfSub
)

// Histogram records durations with bounded relative error in constant
// memory. It is not safe for concurrent use: each worker keeps its own and
// the report merges them.
type Histogram struct {
	counts [bucketCount]uint64
	n      uint64
	max    time.Duration
	sum    time.Duration
}

func bucketOf(v uint64) int {
	if v < subCount {
		return int(v)
	}
	e := bits.Len64(v) - subBits // >= 1
	top := v >> uint(e)          // in [halfSub, subCount)
	return subCount + (e-1)*halfSub + int(top-halfSub)
}

// bucketUpper is the largest value that falls into bucket i; percentiles
// report it so they never understate latency.
func bucketUpper(i int) uint64 {
	if i < subCount {
		return uint64(i)
	}
	e := (i-subCount)/halfSub + 1
	top := uint64((i-subCount)%halfSub + halfSub)
	return (top+1)<<uint(e) - 1
}

// Record adds one sample. Negative durations count as zero.
func (h *Histogram) Record(d time.Duration) {
	if d < 0 {
		d = 0
	}
	h.counts[bucketOf(uint64(d))]++
	h.n++
	h.sum += d
	if d > h.max {
		h.max = d
	}
}

// Merge adds other's samples to h.
func (h *Histogram) Merge(other *Histogram) {
	for i, c := range other.counts {
		h.counts[i] += c
	}
	h.n += other.n
	h.sum += other.sum
	if other.max > h.max {
		h.max = other.max
	}
}

// Count is the number of samples.
func (h *Histogram) Count() uint64 { return h.n }

// Max is the largest sample, exact.
func (h *Histogram) Max() time.Duration { return h.max }

// Mean is the exact average, zero without samples.
func (h *Histogram) Mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return h.sum / time.Duration(h.n)
}

// Percentile returns the smallest bucket bound at or below which at least
// q (0..1) of the samples lie, capped at the exact maximum. Zero without
// samples.
func (h *Histogram) Percentile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	if q <= 0 {
		q = 0
	}
	if q > 1 {
		q = 1
	}
	// Nearest-rank: the ceil(q*n)-th smallest sample, at least the first.
	rank := uint64(q * float64(h.n))
	if float64(rank) < q*float64(h.n) {
		rank++
	}
	if rank == 0 {
		rank = 1
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			v := time.Duration(bucketUpper(i))
			if v > h.max {
				v = h.max
			}
			return v
		}
	}
	return h.max
}
