package broker

import (
	"sync"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// aliasHook resolves the topic aliases of MQTT 5 clients' PUBLISH packets
// as soon as they are read, where mochi (v2.7.9) resolves them late and
// loosely:
//
//   - a PUBLISH with an empty topic and an alias the connection never set
//     goes to the empty topic (and gets a PUBACK); "If the Topic Name is
//     zero length and the receiver has no mapping for the Topic Alias, this
//     is a Protocol Error" (§3.3.2.3.4): the hook sends DISCONNECT 0x82 and
//     closes the connection, as mosquitto does;
//   - mochi checks the ACL against the empty topic of such a PUBLISH, not
//     the topic its alias stands for.
//
// Mappings live with the connection (*mqtt.Client), never beyond it
// [MQTT-3.3.2-7]. An alias of 0 or above the maximum is left to mochi,
// which answers DISCONNECT 0x94 (topic alias invalid).
type aliasHook struct {
	mqtt.HookBase
	m   *mqtt.Server
	max uint16 // the Topic Alias Maximum announced in CONNACK

	mu      sync.Mutex
	aliases map[*mqtt.Client]map[uint16]string
}

func newAliasHook(m *mqtt.Server, maxAlias uint16) *aliasHook {
	return &aliasHook{m: m, max: maxAlias, aliases: map[*mqtt.Client]map[uint16]string{}}
}

func (h *aliasHook) ID() string { return "mqtk-alias" }

func (h *aliasHook) Provides(b byte) bool { return b == mqtt.OnPacketRead || b == mqtt.OnDisconnect }

func (h *aliasHook) PacketRead(cl *mqtt.Client, pk *packets.Packet) error {
	a := pk.Properties.TopicAlias
	if pk.FixedHeader.Type != packets.Publish || !pk.Properties.TopicAliasFlag || a == 0 || a > h.max {
		return nil
	}
	h.mu.Lock()
	if pk.TopicName != "" {
		if h.aliases[cl] == nil {
			h.aliases[cl] = map[uint16]string{}
		}
		h.aliases[cl][a] = pk.TopicName
	} else {
		pk.TopicName = h.aliases[cl][a]
	}
	h.mu.Unlock()
	if pk.TopicName == "" {
		_ = h.m.DisconnectClient(cl, packets.ErrProtocolViolationNoTopic)
		return packets.ErrRejectPacket // mochi ends the connection
	}
	return nil
}

func (h *aliasHook) OnDisconnect(cl *mqtt.Client, _ error, _ bool) {
	h.mu.Lock()
	delete(h.aliases, cl)
	h.mu.Unlock()
}
