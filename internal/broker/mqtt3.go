package broker

import (
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// mqtt3Hook keeps MQTT 5 out of what mochi (v2.7.9) sends MQTT 3.1 and
// 3.1.1 clients:
//
//   - mochi sends a DISCONNECT before closing the connection of a client
//     it disconnects (session taken over, server shutting down, an
//     operator's kick), a packet that in 3.1 and 3.1.1 only a client sends
//     (§3.14: "the final Control Packet sent from the Client to the
//     Server"); a 3.1.1 server closes the connection and says nothing
//     ([MQTT-3.1.4-2], as mosquitto does). The hook makes the write fail
//     (mochi then closes the connection as it would have);
//   - mochi sets the Session Present flag in the CONNACK of a 3.1 client,
//     where 3.1 has a reserved byte ("Reserved values. Not used.", §3.2);
//     the flag came with 3.1.1 ([MQTT-3.2.2-1]: the other bits are 0).
type mqtt3Hook struct{ mqtt.HookBase }

func (h *mqtt3Hook) ID() string           { return "mqtk-mqtt3" }
func (h *mqtt3Hook) Provides(b byte) bool { return b == mqtt.OnPacketEncode }

func (h *mqtt3Hook) EncodePacket(cl *mqtt.Client, pk *packets.Packet) {
	switch v := cl.Properties.ProtocolVersion; {
	case v >= 5:
	case pk.FixedHeader.Type == packets.Disconnect:
		pk.Mods.MaxSize = 1 // no DISCONNECT fits: mochi writes nothing
	case pk.FixedHeader.Type == packets.Connack && v == 3:
		pk.SessionPresent = false
	}
}
