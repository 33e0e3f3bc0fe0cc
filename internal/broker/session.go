package broker

import (
	"sync/atomic"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// sessionHook mends what mochi (v2.7.9) gets wrong about the end of an
// MQTT 5 session:
//
//   - a will with a delay waits out the delay even when the session ends
//     first. "The Server delays publishing the Client's Will Message until
//     the Will Delay Interval has passed or the Session ends, whichever
//     happens first" (§3.1.3.2, [MQTT-3.1.2-8]); mochi shortens the delay to
//     a Session Expiry Interval present in CONNECT, but not when there is
//     none (the session ends with the connection) or when DISCONNECT sets
//     it to 0 (with reason 0x04, "Disconnect with Will Message"), so the
//     will comes as late as the delay says. mosquitto 2.0 had the same
//     fault (eclipse-mosquitto/mosquitto#3505);
//   - an expired session's subscriptions stay in the topic index, so a new
//     session with the same client identifier gets messages it never
//     subscribed to [MQTT-4.1.0-2]. (The store does the same for sessions
//     it keeps; this hook does it without persistence.)
type sessionHook struct {
	mqtt.HookBase
	m *mqtt.Server
}

func (h *sessionHook) ID() string { return "mqtk-session" }

func (h *sessionHook) Provides(b byte) bool {
	return b == mqtt.OnConnect || b == mqtt.OnPacketRead || b == mqtt.OnClientExpired
}

// OnConnect shortens a will's delay to the Session Expiry Interval, 0 when
// CONNECT has none.
func (h *sessionHook) OnConnect(cl *mqtt.Client, pk packets.Packet) error {
	if cl.Properties.ProtocolVersion == 5 {
		h.shorten(cl, pk.Properties.SessionExpiryInterval) // 0 when absent
	}
	return nil
}

// PacketRead shortens it to the Session Expiry Interval a DISCONNECT
// sets.
func (h *sessionHook) PacketRead(cl *mqtt.Client, pk *packets.Packet) error {
	if pk.FixedHeader.Type == packets.Disconnect && pk.Properties.SessionExpiryIntervalFlag {
		h.shorten(cl, pk.Properties.SessionExpiryInterval)
	}
	return nil
}

func (h *sessionHook) shorten(cl *mqtt.Client, sessionExpiry uint32) {
	if atomic.LoadUint32(&cl.Properties.Will.Flag) == 1 && cl.Properties.Will.WillDelayInterval > sessionExpiry {
		cl.Properties.Will.WillDelayInterval = sessionExpiry
	}
}

// OnClientExpired takes the expired session's subscriptions out of the
// topic index.
func (h *sessionHook) OnClientExpired(cl *mqtt.Client) {
	for filter := range cl.State.Subscriptions.GetAll() {
		if h.m.Topics.Unsubscribe(filter, cl.ID) {
			atomic.AddInt64(&h.m.Info.Subscriptions, -1)
		}
		cl.State.Subscriptions.Delete(filter)
	}
}
