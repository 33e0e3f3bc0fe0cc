package broker

import (
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// TestReadDeadlineCoalesced: a read deadline that moves on by less than a
// sixth of the span last set is left as it is; any other is set, as is an
// earlier one, or none.
func TestReadDeadlineCoalesced(t *testing.T) {
	rec := &deadlineRecorder{}
	c := newDeadlineConn(rec, time.Second, new(atomic.Int64))
	now := time.Now()
	for _, step := range []struct {
		at  time.Time
		set bool
	}{
		{now.Add(90 * time.Second), true},
		{now.Add(91 * time.Second), false},  // 1 s on: a sixth of 90 s is 15
		{now.Add(104 * time.Second), false}, // 14 s on
		{now.Add(106 * time.Second), true},  // 16 s on
		{now.Add(100 * time.Second), true},  // sooner
		{time.Time{}, true},                 // none
		{now.Add(90 * time.Second), true},
		{now.Add(90 * time.Second), false},
	} {
		before := len(rec.set)
		if err := c.SetDeadline(step.at); err != nil {
			t.Fatal(err)
		}
		if set := len(rec.set) > before; set != step.set {
			t.Errorf("deadline %s from now: set %v, want %v", step.at.Sub(now), set, step.set)
		}
	}
}

// TestKeepaliveAfterLateConnect: a CONNECT that comes late in the connect
// timeout, with a short keep-alive, moves the deadline on by less than a
// sixth of the connect timeout's span; it must still be set, or the client
// is held to the CONNECT deadline and cut off before 1.5 times its
// keep-alive [MQTT-3.1.2-24].
func TestKeepaliveAfterLateConnect(t *testing.T) {
	rec := &deadlineRecorder{}
	c := newDeadlineConn(rec, time.Second, new(atomic.Int64))
	start := time.Now()
	clock := start
	c.now = func() time.Time { return clock }
	if err := c.SetDeadline(start.Add(6 * time.Second)); err != nil { // --connect-timeout 6s
		t.Fatal(err)
	}
	clock = start.Add(5300 * time.Millisecond) // CONNECT, keep-alive 1 s
	if err := c.SetDeadline(clock.Add(1500 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if got := rec.set[len(rec.set)-1]; !got.Equal(clock.Add(1500 * time.Millisecond)) {
		t.Fatalf("read deadline %s after CONNECT, want 1.5 s (the keep-alive's)", got.Sub(clock))
	}
}

type deadlineRecorder struct {
	net.Conn
	set []time.Time
}

func (r *deadlineRecorder) SetReadDeadline(t time.Time) error {
	r.set = append(r.set, t)
	return nil
}
