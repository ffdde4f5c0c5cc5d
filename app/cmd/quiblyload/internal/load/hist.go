package load

import (
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Latency is a summary of a latency histogram, in milliseconds.
type Latency struct {
	Count int64   `json:"count"`
	Mean  float64 `json:"mean_ms"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	P999  float64 `json:"p999_ms"`
	Max   float64 `json:"max_ms"`
}

// histShards is how many independently locked histograms one Hist spreads its
// recordings over, so that thousands of reader goroutines do not queue on one lock.
const histShards = 16

// Hist is a concurrent HDR histogram of durations, in microseconds from 1 µs to 2 min
// with 3 significant digits.
type Hist struct {
	shards [histShards]struct {
		mu sync.Mutex
		h  *hdrhistogram.Histogram
	}
}

// NewHist returns an empty histogram.
func NewHist() *Hist {
	h := &Hist{}
	for i := range h.shards {
		h.shards[i].h = hdrhistogram.New(1, int64(2*time.Minute/time.Microsecond), 3)
	}
	return h
}

// Record adds d; shard spreads concurrent callers (any number, e.g. a connection index).
func (h *Hist) Record(shard int, d time.Duration) {
	us := d.Microseconds()
	if us < 1 {
		us = 1
	}
	s := &h.shards[uint(shard)%histShards]
	s.mu.Lock()
	_ = s.h.RecordValue(us) // values past the top are clamped below by the caller's timeouts
	s.mu.Unlock()
}

// Merged returns one histogram of everything recorded.
func (h *Hist) Merged() *hdrhistogram.Histogram {
	out := hdrhistogram.New(1, int64(2*time.Minute/time.Microsecond), 3)
	for i := range h.shards {
		s := &h.shards[i]
		s.mu.Lock()
		out.Merge(s.h)
		s.mu.Unlock()
	}
	return out
}

// Summary returns the percentiles.
func (h *Hist) Summary() Latency { return Summarize(h.Merged()) }

// Summarize turns a histogram in microseconds into a Latency in milliseconds.
func Summarize(m *hdrhistogram.Histogram) Latency {
	ms := func(us int64) float64 { return float64(us) / 1000 }
	if m.TotalCount() == 0 {
		return Latency{}
	}
	return Latency{
		Count: m.TotalCount(), Mean: m.Mean() / 1000,
		P50: ms(m.ValueAtQuantile(50)), P90: ms(m.ValueAtQuantile(90)), P99: ms(m.ValueAtQuantile(99)),
		P999: ms(m.ValueAtQuantile(99.9)), Max: ms(m.Max()),
	}
}
