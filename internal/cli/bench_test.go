package cli

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"mqtk/internal/bench"
	"mqtk/internal/mqttc"
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

// A level that counted errors fails bench; with several kinds, the exit code
// is the first that applies of rejected (5), network or stall (3), timeout
// (27), other, across the levels run.
func TestBenchFailed(t *testing.T) {
	lost := &mqttc.NetError{Op: "publish", Addr: "mqtt://b", Err: errors.New("connection reset by peer")}
	rejected := &mqttc.RejectedError{Op: "publish", Topic: "t", Code: 0x87}
	stalled := &bench.StallError{After: 10 * time.Second}
	late := &bench.AckTimeoutError{Topic: "t"}
	level := func(qos byte, unsent uint64, errs map[string]error) bench.Result {
		r := bench.Result{QoS: qos, Unsent: unsent, Errors: map[string]uint64{}}
		kinds := slices.Sorted(maps.Keys(errs))
		for _, k := range kinds {
			r.Errors[k] = 3
			r.Failures = append(r.Failures, errs[k])
		}
		return r
	}
	for _, tc := range []struct {
		name    string
		results []bench.Result
		code    int
		msg     string
	}{
		{"clean", []bench.Result{level(0, 0, nil), level(1, 0, nil)}, ExitOK, ""},
		{"lost", []bench.Result{level(0, 0, nil), level(1, 1204, map[string]error{"connection lost": lost})}, ExitNetwork,
			"QoS 1 run failed: publish mqtt://b: connection reset by peer (3 times; 1,204 planned messages never sent)"},
		{"stalled", []bench.Result{level(2, 0, map[string]error{"stalled": stalled})}, ExitNetwork,
			"QoS 2 run failed: the broker stalled: nothing was published, acknowledged or delivered for 10s (3 times)"},
		{"rejected before lost", []bench.Result{level(1, 0, map[string]error{"connection lost": lost, "publish rejected": rejected})}, ExitRejected,
			`QoS 1 run failed: publish "t": broker rejected it: not authorized (0x87) (3 times; 1 other kind of error in the report)`},
		{"lost before late", []bench.Result{level(1, 0, map[string]error{"a late ack": late}), level(2, 0, map[string]error{"connection lost": lost})}, ExitNetwork,
			"QoS 2 run failed: publish mqtt://b: connection reset by peer (3 times)"},
		{"late", []bench.Result{level(1, 0, map[string]error{"late": late})}, ExitTimeout,
			`QoS 1 run failed: publish "t": no acknowledgement by the end of the drain (3 times)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := benchFailed(tc.results)
			if code := exitCode(err); code != tc.code {
				t.Errorf("exit code %d, want %d (%v)", code, tc.code, err)
			}
			if err != nil && err.Error() != tc.msg {
				t.Errorf("message\n%s\nwant\n%s", err, tc.msg)
			}
		})
	}
}

// TestStatusLineWrite: a line written while the progress line is shown (a
// warning of bench --embedded's broker) replaces it and stands on its own;
// the next draw puts the progress line back below it.
func TestStatusLineWrite(t *testing.T) {
	var b bytes.Buffer
	l := &statusLine{w: &b, on: true}
	l.draw("qos 0  measuring")
	fmt.Fprintln(l, "level=WARN msg=dropped")
	l.draw("qos 0  draining")
	if want := "\r\033[Kqos 0  measuring\r\033[Klevel=WARN msg=dropped\n\r\033[Kqos 0  draining"; b.String() != want {
		t.Errorf("wrote %q, want %q", b.String(), want)
	}
}
