package broker

import (
	"log/slog"
	"sync"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// logHook logs what mosquitto -v logs: connects, disconnects, subscriptions
// and publishes, with client, user and topic, never a payload or password.
type logHook struct {
	mqtt.HookBase
	log     *slog.Logger
	verbose bool

	mu      sync.Mutex
	dropped map[string]int64 // per client, for logging drops sparingly
}

func (h *logHook) ID() string { return "mqtk-log" }

func (h *logHook) Provides(b byte) bool {
	switch b {
	case mqtt.OnPublishDropped, mqtt.OnDisconnect:
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

func (h *logHook) OnDisconnect(cl *mqtt.Client, err error, expire bool) {
	h.mu.Lock()
	delete(h.dropped, cl.ID)
	h.mu.Unlock()
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

// OnPublishDropped logs a message dropped because the client's queue was
// full (it is counted in $SYS/broker/messages/dropped): the 1st, 10th,
// 100th... drop for each client, so a stalled subscriber cannot flood the log.
func (h *logHook) OnPublishDropped(cl *mqtt.Client, pk packets.Packet) {
	h.mu.Lock()
	if h.dropped == nil {
		h.dropped = map[string]int64{}
	}
	h.dropped[cl.ID]++
	n := h.dropped[cl.ID]
	h.mu.Unlock()
	for p := int64(1); p <= n; p *= 10 {
		if p == n {
			h.log.Warn("message dropped: the client's queue is full", "client", cl.ID, "topic", pk.TopicName, "dropped", n)
			return
		}
	}
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
