package broker

import (
	"sync"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// dupHook mends the DUP flag of messages mochi (v2.7.9) queued for a
// session while its client was away: mochi sends every queued message on
// resuming as a resend, DUP 1, though it never sent it. The first sending
// of a QoS 1 or 2 message is "a PUBLISH packet ... with QoS 1 and DUP flag
// set to 0" (MQTT 5 [MQTT-4.3.2-2] [MQTT-4.3.3-2], 3.1.1 [MQTT-4.3.2-1]
// [MQTT-4.3.3-1]); DUP 1 is for re-delivery [MQTT-3.3.1-1], which a client
// may handle differently (discard as seen, or count as redelivered).
//
// The hook notes each message mochi queues for a client (by client ID and
// Packet Identifier) until a first attempt is made to write it, and clears
// DUP on that attempt. A write flowHook holds back is no attempt: it must
// come after flowHook. A message restored from the store after a restart
// keeps DUP 1: whether it was sent before is not known.
type dupHook struct {
	mqtt.HookBase
	mu sync.Mutex
	// client ID -> Packet Identifiers never written; a session's map is
	// kept while it is empty (it was made anew for every message) and
	// forgotten with the session.
	unsent map[string]map[uint16]bool
}

func newDupHook() *dupHook { return &dupHook{unsent: map[string]map[uint16]bool{}} }

func (h *dupHook) ID() string { return "mqtk-dup" }

func (h *dupHook) Provides(b byte) bool {
	switch b {
	case mqtt.OnQosPublish, mqtt.OnPacketEncode, mqtt.OnQosComplete,
		mqtt.OnQosDropped, mqtt.OnDisconnect, mqtt.OnClientExpired:
		return true
	}
	return false
}

// OnQosPublish notes a message newly queued for a client (mochi calls it
// with DUP 1 for the resends of a resumed session).
func (h *dupHook) OnQosPublish(cl *mqtt.Client, pk packets.Packet, _ int64, _ int) {
	if pk.FixedHeader.Type != packets.Publish || pk.FixedHeader.Dup {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.unsent[cl.ID] == nil {
		h.unsent[cl.ID] = map[uint16]bool{}
	}
	h.unsent[cl.ID][pk.PacketID] = true
}

// EncodePacket clears DUP on the first attempt to send a message: the
// message is not unsent any more, whether or not the write succeeds.
func (h *dupHook) EncodePacket(cl *mqtt.Client, pk *packets.Packet) {
	if pk.FixedHeader.Type != packets.Publish || pk.FixedHeader.Qos == 0 || pk.Mods.MaxSize == heldBackSize {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if m := h.unsent[cl.ID]; m[pk.PacketID] {
		pk.FixedHeader.Dup = false
		delete(m, pk.PacketID)
	}
}

func (h *dupHook) OnQosComplete(cl *mqtt.Client, pk packets.Packet) { h.forget(cl, pk) }

// OnQosDropped forgets a dropped message, but not the queue of a
// connection whose session another has just taken over with the queue.
func (h *dupHook) OnQosDropped(cl *mqtt.Client, pk packets.Packet) {
	if !cl.IsTakenOver() {
		h.forget(cl, pk)
	}
}

func (h *dupHook) forget(cl *mqtt.Client, pk packets.Packet) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.unsent[cl.ID], pk.PacketID)
}

func (h *dupHook) OnDisconnect(cl *mqtt.Client, _ error, expire bool) {
	if expire && !cl.IsTakenOver() {
		h.OnClientExpired(cl)
	}
}

func (h *dupHook) OnClientExpired(cl *mqtt.Client) {
	h.mu.Lock()
	delete(h.unsent, cl.ID)
	h.mu.Unlock()
}
