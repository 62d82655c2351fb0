package main

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// subBits sets the histogram's precision: each power of two is split into
// 2^subBits linear buckets, so a reported percentile is within 1/64 (1.6 %)
// of the true value.
const subBits = 6

const (
	subCount   = 1 << subBits
	numBuckets = subCount + (64-subBits)*subCount
)

// histogram records durations in fixed log-linear buckets: constant memory
// however long the run, safe for concurrent use without locks.
type histogram struct {
	counts [numBuckets]atomic.Uint64
	n      atomic.Uint64
	sum    atomic.Uint64
	max    atomic.Int64
}

func bucketOf(v uint64) int {
	if v < subCount {
		return int(v)
	}
	shift := bits.Len64(v) - subBits - 1
	return subCount + shift*subCount + int(v>>uint(shift)) - subCount
}

// bucketValue is the middle of bucket i.
func bucketValue(i int) uint64 {
	if i < subCount {
		return uint64(i)
	}
	shift := (i - subCount) / subCount
	sub := uint64((i-subCount)%subCount + subCount)
	lo := sub << uint(shift)
	return lo + (uint64(1)<<uint(shift))/2
}

// record adds one sample; negative durations (clock skew) count as zero.
func (h *histogram) record(d time.Duration) {
	v := uint64(max(d, 0))
	h.counts[bucketOf(v)].Add(1)
	h.n.Add(1)
	h.sum.Add(v)
	for {
		m := h.max.Load()
		if int64(v) <= m || h.max.CompareAndSwap(m, int64(v)) {
			return
		}
	}
}

func (h *histogram) count() uint64 { return h.n.Load() }

// maxValue is the largest sample, exactly.
func (h *histogram) maxValue() time.Duration { return time.Duration(h.max.Load()) }

func (h *histogram) mean() time.Duration {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	return time.Duration(h.sum.Load() / n)
}

// quantile returns the q-quantile (0 < q ≤ 1), 0 without samples.
func (h *histogram) quantile(q float64) time.Duration {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	rank := uint64(q*float64(n) + 0.999999)
	rank = min(max(rank, 1), n)
	var seen uint64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			return min(time.Duration(bucketValue(i)), h.maxValue())
		}
	}
	return h.maxValue()
}
