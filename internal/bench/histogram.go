package bench

import (
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// Histogram bounds: nanoseconds from 1 ns to 1 hour, 3 significant digits.
const (
	histMin    = int64(time.Nanosecond)
	histMax    = int64(time.Hour)
	histDigits = 3
)

// Histogram records latencies in nanoseconds, from 1 ns to 1 hour, with 3
// significant digits. Each worker keeps its own and they are merged for the
// report: percentiles are never averaged. A Histogram is not safe for
// concurrent use.
type Histogram struct {
	h *hdrhistogram.Histogram
}

// NewHistogram returns an empty Histogram.
func NewHistogram() *Histogram {
	return &Histogram{h: hdrhistogram.New(histMin, histMax, histDigits)}
}

// Record records d. A value below 1 ns counts as 1 ns and one above an hour
// as an hour: every sample is counted, none is dropped.
func (h *Histogram) Record(d time.Duration) {
	v := min(max(int64(d), histMin), histMax)
	_ = h.h.RecordValue(v) // in range: cannot fail
}

// Merge adds every sample of o to h. o is unchanged.
func (h *Histogram) Merge(o *Histogram) {
	if o == nil {
		return
	}
	h.h.Merge(o.h) // same geometry: nothing is dropped
}

// Count returns the number of samples.
func (h *Histogram) Count() int64 {
	return h.h.TotalCount()
}

// Summary returns the 50th, 90th, 99th and 99.9th percentiles and the
// maximum, in microseconds, and the count; the zero Latency when h is empty.
// A value is the highest of the samples HdrHistogram counts as equivalent to
// it (within 3 significant digits), capped at an hour.
func (h *Histogram) Summary() Latency {
	n := h.h.TotalCount()
	if n == 0 {
		return Latency{}
	}
	us := func(ns int64) float64 {
		return float64(min(ns, histMax)) / 1000
	}
	return Latency{
		Count: n,
		P50:   us(h.h.ValueAtPercentile(50)),
		P90:   us(h.h.ValueAtPercentile(90)),
		P99:   us(h.h.ValueAtPercentile(99)),
		P999:  us(h.h.ValueAtPercentile(99.9)),
		Max:   us(h.h.Max()),
	}
}
