package broker

import (
	"io"
	"log/slog"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// TestDropLogForgetsExpiredSessions: the drops of an offline session
// (at the in-flight limit, change 15) come after its OnDisconnect, which is
// where logHook forgets a client; when the session then expires the entry
// stays, one per expired session that dropped anything, and its unlogged
// count is never logged.
func TestDropLogForgetsExpiredSessions(t *testing.T) {
	h := &logHook{log: slog.New(slog.NewTextHandler(io.Discard, nil)), maxInflight: 1, now: time.Now}
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
	defer h.mu.Unlock()
	if n := len(h.dropped); n != 0 {
		t.Errorf("after the session expired the drop log still holds %d client(s)", n)
	}
}
