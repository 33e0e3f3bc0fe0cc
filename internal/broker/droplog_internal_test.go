package broker

import (
	"log/slog"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// TestDropLogForgetsExpiredSessions: the drops of an offline session
// (at the in-flight limit, change 15) come after its OnDisconnect, where
// logHook forgets a client, so it must forget it again when the session
// expires, and log the drops not logged yet: without OnClientExpired the
// entry stayed, one per expired session that dropped anything, and its
// count was never logged.
func TestDropLogForgetsExpiredSessions(t *testing.T) {
	watch := newLogWatch()
	h := &logHook{log: slog.New(watch), maxInflight: 1, now: time.Now}
	cl := mqtt.New(nil).NewClient(nil, "t", "offline", false)
	h.OnDisconnect(cl, nil, false) // a persistent session: it stays
	for range 3 {
		h.OnPublishDropped(cl, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}})
	}
	// The session expires: mochi calls OnClientExpired on the hooks that
	// provide it.
	if h.Provides(mqtt.OnClientExpired) {
		h.OnClientExpired(cl)
	}
	h.mu.Lock()
	n := len(h.dropped)
	h.mu.Unlock()
	if n != 0 {
		t.Errorf("after the session expired the drop log still holds %d client(s)", n)
	}
	// The first drop is logged at once; the other two within the interval
	// wait, and the expiry logs them.
	recs := watch.all()
	if len(recs) != 2 {
		t.Fatalf("%d lines logged, want 2 (the first drop, then the rest at expiry)", len(recs))
	}
	if last := recs[1]; attr(last, "client") != "offline" || attr(last, "dropped") != "2" || attr(last, "total") != "3" {
		t.Errorf("at expiry: %q client=%s dropped=%s total=%s, want client=offline dropped=2 total=3",
			last.Message, attr(last, "client"), attr(last, "dropped"), attr(last, "total"))
	}
}
