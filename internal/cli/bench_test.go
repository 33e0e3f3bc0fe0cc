package cli

import (
	"bytes"
	"testing"

	"mqtk/internal/bench"
)

// The progress line on a terminal: one line, redrawn in place, with the
// phase, the counts and the current rate; nothing when it is off.
func TestBenchProgressLine(t *testing.T) {
	var b bytes.Buffer
	l := newProgressLine(&b, true)
	l.show(bench.Progress{QoS: 1, Phase: bench.PhaseConnect})
	l.show(bench.Progress{QoS: 1, Phase: bench.PhaseMeasure, Sent: 1234567, Received: 1204, Rate: 45678.9})
	l.clear()
	want := "\r\x1b[Kqos 1  connect  " +
		"\r\x1b[Kqos 1  measure    sent 1,234,567  received 1,204  45,678 msg/s" +
		"\r\x1b[K"
	if b.String() != want {
		t.Errorf("progress output\n got %q\nwant %q", b.String(), want)
	}

	b.Reset()
	off := newProgressLine(&b, false)
	off.show(bench.Progress{QoS: 0, Phase: bench.PhaseMeasure, Sent: 1})
	off.clear()
	if b.Len() != 0 {
		t.Errorf("progress off wrote %q", b.String())
	}
}

func TestGroupDigits(t *testing.T) {
	for n, want := range map[uint64]string{0: "0", 999: "999", 1000: "1,000", 1204: "1,204", 1234567: "1,234,567"} {
		if got := groupDigits(n); got != want {
			t.Errorf("groupDigits(%d) = %q, want %q", n, got, want)
		}
	}
}
