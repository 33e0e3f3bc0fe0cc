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

type deadlineRecorder struct {
	net.Conn
	set []time.Time
}

func (r *deadlineRecorder) SetReadDeadline(t time.Time) error {
	r.set = append(r.set, t)
	return nil
}
