package broker

import (
	"log/slog"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// logHook logs what mosquitto -v logs: connects, disconnects, subscriptions
// and publishes, with client, user and topic, never a payload or password.
type logHook struct {
	mqtt.HookBase
	log         *slog.Logger
	verbose     bool
	maxInflight int              // the broker's --max-inflight, to tell why a message was dropped
	now         func() time.Time // time.Now, but in tests

	mu      sync.Mutex
	dropped map[string]*drops // per client, for logging drops sparingly
}

// drops are the messages dropped for one client.
type drops struct {
	total    int64     // since the first
	unlogged int64     // since the last line logged
	logged   time.Time // when that line was logged
}

// dropLogInterval is how often at most a client's drops are logged.
const dropLogInterval = 10 * time.Second

func (h *logHook) ID() string { return "mqtk-log" }

func (h *logHook) Provides(b byte) bool {
	switch b {
	case mqtt.OnPublishDropped, mqtt.OnDisconnect, mqtt.OnClientExpired:
		return true
	case mqtt.OnSessionEstablished, mqtt.OnSubscribed, mqtt.OnUnsubscribed, mqtt.OnPublished:
		return h.verbose
	}
	return false
}

func (h *logHook) OnSessionEstablished(cl *mqtt.Client, pk packets.Packet) {
	h.log.Info("client connected", "client", cl.ID, "user", string(cl.Properties.Username),
		"listener", cl.Net.Listener, "remote", cl.Net.Remote, "protocol", cl.Properties.ProtocolVersion,
		"clean", pk.Connect.Clean, "keepalive", cl.State.Keepalive)
}

// flushDrops logs what was dropped for cl and not logged yet, and forgets
// it: at a disconnect, and when an offline session (whose messages are
// dropped at the in-flight limit after its disconnect) expires.
func (h *logHook) flushDrops(cl *mqtt.Client) {
	h.mu.Lock()
	d := h.dropped[cl.ID]
	delete(h.dropped, cl.ID)
	h.mu.Unlock()
	if d != nil && d.unlogged > 0 {
		h.log.Warn("messages dropped: the client did not keep up", "client", cl.ID, "dropped", d.unlogged, "total", d.total)
	}
}

func (h *logHook) OnClientExpired(cl *mqtt.Client) { h.flushDrops(cl) }

func (h *logHook) OnDisconnect(cl *mqtt.Client, err error, expire bool) {
	h.flushDrops(cl)
	if !h.verbose {
		return
	}
	args := []any{"client", cl.ID}
	if err != nil {
		args = append(args, "reason", err.Error())
	}
	h.log.Info("client disconnected", args...)
}

func (h *logHook) OnSubscribed(cl *mqtt.Client, pk packets.Packet, reasonCodes []byte) {
	for i, f := range pk.Filters {
		code := byte(0)
		if i < len(reasonCodes) {
			code = reasonCodes[i]
		}
		h.log.Info("subscribe", "client", cl.ID, "filter", f.Filter, "qos", f.Qos, "result", code)
	}
}

func (h *logHook) OnUnsubscribed(cl *mqtt.Client, pk packets.Packet) {
	for _, f := range pk.Filters {
		h.log.Info("unsubscribe", "client", cl.ID, "filter", f.Filter)
	}
}

func (h *logHook) OnPublished(cl *mqtt.Client, pk packets.Packet) {
	h.log.Info("publish", "client", cl.ID, "topic", pk.TopicName, "qos", pk.FixedHeader.Qos,
		"retain", pk.FixedHeader.Retain, "bytes", len(pk.Payload))
}

// OnPublishDropped logs the messages dropped for a client that does not
// keep up: its queue is full (--max-queued), or it has as many QoS 1 and 2
// messages in flight as it may (--max-inflight), as an offline session
// soon has. Each is counted in $SYS/broker/messages/dropped; the log gets
// a line for the first, then at most one every dropLogInterval with the
// number dropped since, and the rest when the client disconnects, so a
// client that stays behind cannot flood the log (mochi logged a warning
// for every message).
func (h *logHook) OnPublishDropped(cl *mqtt.Client, pk packets.Packet) {
	now := h.now()
	h.mu.Lock()
	if h.dropped == nil {
		h.dropped = map[string]*drops{}
	}
	d := h.dropped[cl.ID]
	if d == nil {
		d = &drops{}
		h.dropped[cl.ID] = d
	}
	d.total++
	d.unlogged++
	if d.total > 1 && now.Sub(d.logged) < dropLogInterval {
		h.mu.Unlock()
		return
	}
	n, total := d.unlogged, d.total
	d.unlogged, d.logged = 0, now
	h.mu.Unlock()
	why := "its queue is full (--max-queued)"
	if pk.FixedHeader.Qos > 0 && h.maxInflight > 0 && cl.State.Inflight.Len() >= h.maxInflight {
		why = "it has the most messages in flight it may (--max-inflight)"
	}
	h.log.Warn("messages dropped: the client does not keep up, "+why, "client", cl.ID, "topic", pk.TopicName,
		"dropped", n, "total", total)
}

// limitsHook caps the keep-alive a client may ask for. An MQTT 5 client
// asking for more (or for 0, none) is told the cap in CONNACK's Server Keep
// Alive. An MQTT 3 client cannot be told: as mosquitto 2 does, it is
// refused with "identifier rejected", rather than accepted and then
// disconnected for an idleness it was entitled to.
type limitsHook struct {
	mqtt.HookBase
	maxKeepalive uint16
}

func (h *limitsHook) ID() string           { return "mqtk-limits" }
func (h *limitsHook) Provides(b byte) bool { return b == mqtt.OnConnect && h.maxKeepalive > 0 }

func (h *limitsHook) OnConnect(cl *mqtt.Client, pk packets.Packet) error {
	if ka := cl.State.Keepalive; ka == 0 || ka > h.maxKeepalive {
		if cl.Properties.ProtocolVersion < 5 {
			// mochi sends no CONNACK for a hook's refusal.
			_ = cl.WritePacket(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connack},
				ReasonCode: packets.Err3ClientIdentifierNotValid.Code})
			return packets.ErrClientIdentifierNotValid
		}
		cl.State.Keepalive = h.maxKeepalive
		cl.State.ServerKeepalive = true // sent as Server Keep Alive in CONNACK
	}
	return nil
}
