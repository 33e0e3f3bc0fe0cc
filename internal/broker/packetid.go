package broker

import (
	"sync"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// packetIDHook works around a mochi bug: it refuses a SUBSCRIBE or
// UNSUBSCRIBE with "packet identifier in use" (0x91) when the identifier
// equals one of the server's own in-flight PUBLISH identifiers, though MQTT
// 5 (2.2.1) says client and server assign identifiers independently. A
// client resuming a session with queued QoS 1 messages hits it at once.
//
// Packets of one client are read and answered in order on one goroutine, so
// when the identifier collides, the hook hands mochi a free one instead and
// puts the client's back on the SUBACK or UNSUBACK that answers the packet.
type packetIDHook struct {
	mqtt.HookBase
	mu      sync.Mutex
	pending map[*mqtt.Client]swappedID
}

type swappedID struct{ given, real uint16 }

func (h *packetIDHook) ID() string { return "mqtk-packet-id" }

func (h *packetIDHook) Provides(b byte) bool {
	return b == mqtt.OnPacketRead || b == mqtt.OnPacketEncode || b == mqtt.OnDisconnect
}

func (h *packetIDHook) PacketRead(cl *mqtt.Client, pk *packets.Packet) error {
	t := pk.FixedHeader.Type
	if t != packets.Subscribe && t != packets.Unsubscribe {
		return nil
	}
	if !cl.State.Inflight.Has(pk.PacketID) {
		return nil
	}
	for id := uint16(65535); id > 0; id-- {
		if !cl.State.Inflight.Has(id) {
			h.mu.Lock()
			h.pending[cl] = swappedID{given: id, real: pk.PacketID}
			h.mu.Unlock()
			pk.PacketID = id
			break
		}
	}
	return nil
}

func (h *packetIDHook) EncodePacket(cl *mqtt.Client, pk *packets.Packet) {
	if t := pk.FixedHeader.Type; t == packets.Suback || t == packets.Unsuback {
		h.mu.Lock()
		if sw, ok := h.pending[cl]; ok && sw.given == pk.PacketID {
			pk.PacketID = sw.real
			delete(h.pending, cl)
		}
		h.mu.Unlock()
	}
}

func (h *packetIDHook) OnDisconnect(cl *mqtt.Client, err error, expire bool) {
	h.mu.Lock()
	delete(h.pending, cl)
	h.mu.Unlock()
}
