package broker

import (
	"slices"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"mqtk/internal/topic"
)

// subscribeHook mends two things mochi (v2.7.9) does with MQTT 5
// subscriptions:
//
//   - "It is a Protocol Error to set the No Local bit to 1 on a Shared
//     Subscription" [MQTT-3.8.3-4]; mochi answers with a SUBACK reason code
//     0x82, which is not a SUBACK reason code [MQTT-3.9.3-2]. The hook ends
//     the connection with DISCONNECT 0x82, as for any protocol error (4.13);
//   - the retained messages sent on subscribing lack the subscription's
//     Subscription Identifier, which is "associated with any subscription
//     created or modified as the result of this SUBSCRIBE packet"
//     (§3.8.2.1.2) and sent with the messages published as its result
//     [MQTT-3.3.4-3]. The hook puts on a retained PUBLISH (RETAIN 1) that
//     has none the identifiers of the client's subscriptions matching its
//     topic, as on a single copy for overlapping ones [MQTT-3.3.4-4]. (A
//     live message keeps RETAIN 1 only for Retain As Published
//     subscriptions, and mochi gives those their identifiers itself.)
type subscribeHook struct {
	mqtt.HookBase
	m *mqtt.Server
}

func (h *subscribeHook) ID() string { return "mqtk-subscribe" }

func (h *subscribeHook) Provides(b byte) bool {
	return b == mqtt.OnPacketRead || b == mqtt.OnPacketEncode
}

func (h *subscribeHook) PacketRead(cl *mqtt.Client, pk *packets.Packet) error {
	if pk.FixedHeader.Type != packets.Subscribe || cl.Properties.ProtocolVersion != 5 {
		return nil
	}
	for _, f := range pk.Filters {
		if f.NoLocal && mqtt.IsSharedFilter(f.Filter) {
			_ = h.m.DisconnectClient(cl, packets.ErrProtocolViolationInvalidSharedNoLocal)
			return packets.ErrRejectPacket // mochi ends the connection
		}
	}
	return nil
}

func (h *subscribeHook) EncodePacket(cl *mqtt.Client, pk *packets.Packet) {
	if pk.FixedHeader.Type != packets.Publish || !pk.FixedHeader.Retain || pk.TopicName == "" ||
		cl.Properties.ProtocolVersion != 5 || len(pk.Properties.SubscriptionIdentifier) > 0 {
		return
	}
	var ids []int
	for filter, sub := range cl.State.Subscriptions.GetAll() {
		if sub.Identifier > 0 && topic.Match(shareFilter(filter), pk.TopicName) {
			ids = append(ids, sub.Identifier)
		}
	}
	if len(ids) > 0 {
		slices.Sort(ids)
		pk.Properties.SubscriptionIdentifier = ids
	}
}
