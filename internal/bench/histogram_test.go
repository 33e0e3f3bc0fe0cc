package bench

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// within reports whether got is want within HdrHistogram's precision at 3
// significant digits (a relative error below 1/1000).
func within(got, want float64) bool {
	return math.Abs(got-want) <= want/1000
}

func TestHistogramUniform(t *testing.T) {
	h := NewHistogram()
	// 1..100,000 µs, each once, in a shuffled order.
	for _, i := range rand.New(rand.NewPCG(1, 2)).Perm(100_000) {
		h.Record(time.Duration(i+1) * time.Microsecond)
	}
	if h.Count() != 100_000 {
		t.Fatalf("Count() = %d", h.Count())
	}
	s := h.Summary()
	want := Latency{Count: 100_000, P50: 50_000, P90: 90_000, P99: 99_000, P999: 99_900, Max: 100_000}
	if s.Count != want.Count || !within(s.P50, want.P50) || !within(s.P90, want.P90) ||
		!within(s.P99, want.P99) || !within(s.P999, want.P999) || !within(s.Max, want.Max) {
		t.Errorf("Summary() = %+v\nwant       %+v (within 0.1%%)", s, want)
	}
	// Percentiles are never below the true value (HdrHistogram reports the
	// highest equivalent value).
	if s.P50 < want.P50 || s.P99 < want.P99 || s.Max < want.Max {
		t.Errorf("Summary() = %+v below the true values %+v", s, want)
	}
}

func TestHistogramKnownDistributions(t *testing.T) {
	tests := []struct {
		name   string
		record func(h *Histogram)
		want   Latency
	}{
		{"one sample", func(h *Histogram) { h.Record(1234 * time.Microsecond) },
			Latency{Count: 1, P50: 1234, P90: 1234, P99: 1234, P999: 1234, Max: 1234}},
		{"constant", func(h *Histogram) {
			for range 1000 {
				h.Record(5 * time.Millisecond)
			}
		}, Latency{Count: 1000, P50: 5000, P90: 5000, P99: 5000, P999: 5000, Max: 5000}},
		{"bimodal 95/5", func(h *Histogram) {
			for i := range 10_000 {
				if i%20 == 0 {
					h.Record(time.Second)
				} else {
					h.Record(100 * time.Microsecond)
				}
			}
		}, Latency{Count: 10_000, P50: 100, P90: 100, P99: 1e6, P999: 1e6, Max: 1e6}},
		{"exact small values", func(h *Histogram) {
			for i := 1; i <= 1000; i++ {
				h.Record(time.Duration(i)) // ns: exact below 2048
			}
		}, Latency{Count: 1000, P50: 0.5, P90: 0.9, P99: 0.99, P999: 0.999, Max: 1}},
	}
	for _, tt := range tests {
		h := NewHistogram()
		tt.record(h)
		s := h.Summary()
		if s.Count != tt.want.Count || !within(s.P50, tt.want.P50) || !within(s.P90, tt.want.P90) ||
			!within(s.P99, tt.want.P99) || !within(s.P999, tt.want.P999) || !within(s.Max, tt.want.Max) {
			t.Errorf("%s: Summary() = %+v\nwant %+v", tt.name, s, tt.want)
		}
	}
}

func TestHistogramEmpty(t *testing.T) {
	h := NewHistogram()
	if h.Count() != 0 || h.Summary() != (Latency{}) {
		t.Errorf("empty: Count() = %d, Summary() = %+v", h.Count(), h.Summary())
	}
	h.Merge(NewHistogram())
	h.Merge(nil)
	if h.Summary() != (Latency{}) {
		t.Errorf("after merging empties: %+v", h.Summary())
	}
}

func TestHistogramClamp(t *testing.T) {
	h := NewHistogram()
	h.Record(0)
	h.Record(-time.Second)
	h.Record(time.Nanosecond)
	if s := h.Summary(); s.Count != 3 || s.P50 != 0.001 || s.Max != 0.001 {
		t.Errorf("below 1ns: Summary() = %+v, want 3 samples at 0.001µs", s)
	}
	h.Record(2 * time.Hour)
	h.Record(math.MaxInt64)
	h.Record(time.Hour)
	s := h.Summary()
	hour := float64(time.Hour / time.Microsecond)
	if s.Count != 6 || s.Max != hour || s.P90 != hour {
		t.Errorf("above an hour: Summary() = %+v, want 6 samples, max %v", s, hour)
	}
}

func TestHistogramMerge(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	a, b, both := NewHistogram(), NewHistogram(), NewHistogram()
	for i := range 50_000 {
		// Log-normal-ish latencies, 10µs to 10s.
		d := time.Duration(math.Exp(r.Float64()*13.8) * 10e3)
		both.Record(d)
		if i%3 == 0 {
			a.Record(d)
		} else {
			b.Record(d)
		}
	}
	a.Merge(b)
	if a.Count() != both.Count() || a.Summary() != both.Summary() {
		t.Errorf("merged %+v\nwant   %+v", a.Summary(), both.Summary())
	}
	if !a.h.Equals(both.h) {
		t.Error("merged histogram differs from one fed both")
	}
	if b.Count() != 50_000-16_667 {
		t.Errorf("Merge changed its argument: Count() = %d", b.Count())
	}
}

func TestHistogramMergeNotAverage(t *testing.T) {
	// One fast worker with many samples, one slow with few: the merged p50 is
	// the fast one's, not the mean of the two p50s.
	fast, slow := NewHistogram(), NewHistogram()
	for range 900 {
		fast.Record(time.Millisecond)
	}
	for range 100 {
		slow.Record(time.Second)
	}
	fast.Merge(slow)
	s := fast.Summary()
	if !within(s.P50, 1000) || !within(s.P90, 1000) || !within(s.P99, 1e6) || s.Count != 1000 {
		t.Errorf("merged Summary() = %+v", s)
	}
}

func TestHistogramRecordAllocs(t *testing.T) {
	h := NewHistogram()
	var d time.Duration
	n := testing.AllocsPerRun(10_000, func() {
		h.Record(d)
		h.Record(2 * time.Hour) // clamped, not an error
		d += 12345
	})
	if n != 0 {
		t.Errorf("Record: %v allocations per run, want 0", n)
	}
}

func BenchmarkHistogramRecord(b *testing.B) {
	h := NewHistogram()
	b.ReportAllocs()
	var d time.Duration
	for b.Loop() {
		h.Record(d)
		d = (d + 7919) % time.Second
	}
}
