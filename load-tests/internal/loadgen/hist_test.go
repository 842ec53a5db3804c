package loadgen

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestBucketBoundsCoverEveryValue(t *testing.T) {
	t.Parallel()
	values := []uint64{0, 1, 127, 128, 129, 255, 256, 1000, 1 << 20, 123456789, 1<<40 + 12345, 1<<62 + 1}
	for _, v := range values {
		i := bucketOf(v)
		if up := bucketUpper(i); up < v {
			t.Errorf("value %d in bucket %d whose upper bound %d is below it", v, i, up)
		}
		if i > 0 {
			if low := bucketUpper(i-1) + 1; low > v {
				t.Errorf("value %d in bucket %d whose lower bound %d is above it", v, i, low)
			}
		}
		if i >= bucketCount {
			t.Errorf("value %d: bucket %d out of range %d", v, i, bucketCount)
		}
	}
}

func TestPercentileExactForSmallValues(t *testing.T) {
	t.Parallel()
	var h Histogram
	for v := 1; v <= 100; v++ {
		h.Record(time.Duration(v))
	}
	tests := []struct {
		q    float64
		want time.Duration
	}{
		{0, 1}, {0.01, 1}, {0.5, 50}, {0.9, 90}, {0.99, 99}, {0.991, 100}, {1, 100},
	}
	for _, tt := range tests {
		if got := h.Percentile(tt.q); got != tt.want {
			t.Errorf("Percentile(%v) = %d, want %d", tt.q, got, tt.want)
		}
	}
	if got, want := h.Max(), time.Duration(100); got != want {
		t.Errorf("Max = %d, want %d", got, want)
	}
	if got, want := h.Mean(), time.Duration(50); got != want {
		t.Errorf("Mean = %d, want %d (sum 5050 / 100, truncated)", got, want)
	}
}

func TestPercentileWithinRelativeError(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	var h, other Histogram
	samples := make([]time.Duration, 0, 20000)
	for i := 0; i < 20000; i++ {
		// Log-uniform from 1µs to 1s, like real latencies.
		d := time.Duration(float64(time.Microsecond) * pow10(rng.Float64()*6))
		samples = append(samples, d)
		// Split between two histograms to check Merge too.
		if i%2 == 0 {
			h.Record(d)
		} else {
			other.Record(d)
		}
	}
	h.Merge(&other)
	slices.Sort(samples)
	if got, want := h.Count(), uint64(len(samples)); got != want {
		t.Fatalf("Count = %d, want %d", got, want)
	}
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
		exact := samples[int(q*float64(len(samples)))-1]
		got := h.Percentile(q)
		// Never below the true value, and at most 1/64 above it.
		if got < exact || float64(got) > float64(exact)*(1+1.0/64)+1 {
			t.Errorf("Percentile(%v) = %v, exact %v: outside [exact, exact*(1+1/64)]", q, got, exact)
		}
	}
	if got, want := h.Max(), samples[len(samples)-1]; got != want {
		t.Errorf("Max = %v, want %v", got, want)
	}
}

func TestEmptyHistogram(t *testing.T) {
	t.Parallel()
	var h Histogram
	if got := h.Percentile(0.99); got != 0 {
		t.Errorf("Percentile of empty = %v, want 0", got)
	}
	if got := h.Mean(); got != 0 {
		t.Errorf("Mean of empty = %v, want 0", got)
	}
}

func pow10(x float64) float64 {
	r := 1.0
	for x >= 1 {
		r *= 10
		x--
	}
	// 10^x for x in [0,1) by exp/log would need math; a linear blend between
	// decades is fine for spreading test samples.
	return r * (1 + 9*x)
}
