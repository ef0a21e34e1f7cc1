package loadgen

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestHistogramQuantiles(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var h histogram
	var sample []time.Duration
	for range 100000 {
		// Log-normal-ish latencies from ~10 µs to ~100 ms.
		d := time.Duration(10e3 * (1 + rng.ExpFloat64()*rng.ExpFloat64()*50))
		h.record(d)
		sample = append(sample, d)
	}
	slices.Sort(sample)
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
		want := sample[int(q*float64(len(sample)))-1]
		got := h.quantile(q)
		if diff := float64(got-want) / float64(want); diff > 0.04 || diff < -0.04 {
			t.Errorf("q%.3f = %v, exact %v (%.1f%% off)", q, got, want, diff*100)
		}
	}
	if h.max != sample[len(sample)-1] || h.quantile(1) != h.max {
		t.Errorf("max %v, q1 %v, want %v", h.max, h.quantile(1), sample[len(sample)-1])
	}
	var empty histogram
	if empty.quantile(0.5) != 0 {
		t.Error("empty histogram quantile not 0")
	}
}

func TestBucketBounds(t *testing.T) {
	for _, v := range []uint64{0, 1, 31, 32, 33, 63, 64, 65, 1000, 123456789, 1 << 40, 1<<63 - 1} {
		i := bucketOf(v)
		if lo, hi := lowerBound(i), lowerBound(i+1); v < lo || (i+1 < len(histogram{}.counts) && v >= hi) {
			t.Errorf("%d in bucket %d = [%d, %d)", v, i, lo, hi)
		}
	}
}
