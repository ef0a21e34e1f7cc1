package loadgen

import (
	"math/bits"
	"time"
)

// histogram is a fixed-size log-linear latency histogram: values are bucketed
// by their power of two and, within it, by their next subBits bits, so every
// bucket is within 1/2^subBits (≈3%) of its values from 1 ns to ~290 years,
// in 8 KiB whatever the run length.
type histogram struct {
	counts [64 << subBits]uint32
	n      uint64
	max    time.Duration
}

const subBits = 5

func bucketOf(v uint64) int {
	if v < 1<<subBits {
		return int(v) // exact below 2^subBits
	}
	exp := bits.Len64(v) - 1 // ≥ subBits
	sub := (v >> (exp - subBits)) & (1<<subBits - 1)
	return (exp-subBits+1)<<subBits | int(sub)
}

// lowerBound is the smallest value of bucket i.
func lowerBound(i int) uint64 {
	if i < 1<<subBits {
		return uint64(i)
	}
	exp := i>>subBits + subBits - 1
	sub := uint64(i & (1<<subBits - 1))
	return (1<<subBits | sub) << (exp - subBits)
}

func (h *histogram) record(d time.Duration) {
	if d < 0 {
		d = 0
	}
	h.counts[bucketOf(uint64(d))]++
	h.n++
	if d > h.max {
		h.max = d
	}
}

func (h *histogram) merge(o *histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.max = max(h.max, o.max)
}

// quantile returns the value at quantile q (0..1): the midpoint of the
// bucket holding it, never more than the largest value seen.
func (h *histogram) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q*float64(h.n) + 0.5)
	rank = max(rank, 1)
	var seen uint64
	for i, c := range h.counts {
		seen += uint64(c)
		if seen >= rank {
			lo, hi := lowerBound(i), lowerBound(i+1)
			return min(time.Duration(lo+(hi-lo)/2), h.max)
		}
	}
	return h.max
}
