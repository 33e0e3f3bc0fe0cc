package broker_test

import (
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"
)

// Will messages. A will is published from the broker's side of a
// connection once the connection has ended; tests that show a will is not
// published wait for that with settle.

// TestMQTT_3_1_2_8_WillOnAbnormalClose: "The Will Message MUST be published
// when the Network Connection is subsequently closed unless the Will
// Message has been deleted by the Server on receipt of a DISCONNECT Packet"
// (3.1.1 [MQTT-3.1.2-8]; 5 [MQTT-3.1.2-8], with no Will Delay Interval), by
// the client going away or after "a protocol error" (3.1.1 §3.1.2.5), such
// as a second CONNECT [MQTT-3.1.0-2]; "If Will Retain is set to 0, the
// Server MUST publish the Will Message as a non-retained message" (3.1.1
// [MQTT-3.1.2-16], 5 [MQTT-3.1.2-14]).
func TestMQTT_3_1_2_8_WillOnAbnormalClose(t *testing.T) {
	t.Parallel()
	forStatements(t, statements{v31: "MQTT-3.1.2-8", v311: "MQTT-3.1.2-8", v5: "MQTT-3.1.2-8"}, func(t *testing.T, v byte) {
		addr := startBroker(t)
		w, _ := connect(t, addr, v, "watcher")
		w.mustSubscribe(sub("will/#", 2))

		a, _ := connect(t, addr, v, "dropped", will("will/dropped", "gone", 1, false))
		a.drop()
		if got := w.receiveFrom("will/dropped", "gone"); got.FixedHeader.Retain || got.FixedHeader.Qos != 1 {
			t.Errorf("got %s, want QoS 1 (the will's), RETAIN 0", describe(got))
		}

		b, _ := connect(t, addr, v, "second-connect", will("will/second", "protocol error", 2, false))
		b.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, Connect: packets.ConnectParams{
			ProtocolName: []byte("MQTT"), ClientIdentifier: "second-connect", Clean: true, Keepalive: 60}})
		b.expectClosedAfterError(0x82)
		w.receiveFrom("will/second", "protocol error")
	})
}

// TestMQTT_3_1_2_17_WillRetained: "If Will Retain is set to 1, the Server
// MUST publish the Will Message as a retained message" (3.1.1
// [MQTT-3.1.2-17], 5 [MQTT-3.1.2-15]).
func TestMQTT_3_1_2_17_WillRetained(t *testing.T) {
	t.Parallel()
	forStatements(t, statements{v31: "MQTT-3.1.2-17", v311: "MQTT-3.1.2-17", v5: "MQTT-3.1.2-15"}, func(t *testing.T, v byte) {
		addr := startBroker(t)
		w, _ := connect(t, addr, v, "watcher")
		w.mustSubscribe(sub("rwill/#", 1))
		a, _ := connect(t, addr, v, "dropped", will("rwill/a", "gone", 1, true))
		a.drop()
		w.receiveFrom("rwill/a", "gone")

		s, _ := connect(t, addr, v, "later")
		s.mustSubscribe(sub("rwill/#", 1))
		if got := s.receiveFrom("rwill/a", "gone"); !got.FixedHeader.Retain {
			t.Errorf("a later subscriber: got %s, want the will retained (RETAIN 1)", describe(got))
		}
	})
}

// TestMQTT_3_14_4_3_NoWillAfterDisconnect: "On receipt of DISCONNECT the
// Server MUST discard any Will Message associated with the current
// connection without publishing it" (3.1.1 [MQTT-3.14.4-3]; 5, reason code
// 0x00, [MQTT-3.14.4-3]), and "MUST remove it from the Session State"
// (3.1.1 [MQTT-3.1.2-10], 5 [MQTT-3.1.2-10]).
func TestMQTT_3_14_4_3_NoWillAfterDisconnect(t *testing.T) {
	t.Parallel()
	forStatements(t, statements{v31: "MQTT-3.14.4-3", v311: "MQTT-3.14.4-3", v5: "MQTT-3.14.4-3"}, func(t *testing.T, v byte) {
		addr := startLimited(t, 2)
		w, _ := connect(t, addr, v, "watcher")
		w.mustSubscribe(sub("nowill/#", 1))
		a, _ := connect(t, addr, v, "leaving", will("nowill/a", "gone", 1, false))
		a.disconnect()
		settle(t, addr, v)
		w.quiet("the will of a client that sent DISCONNECT")
	})
}

// TestMQTT5_3_14_2_DisconnectWithWill: DISCONNECT reason code 0x04
// "Disconnect with Will Message: The Client wishes to disconnect but
// requires that the Server also publishes its Will Message" (5 §3.14.2.1).
func TestMQTT5_3_14_2_DisconnectWithWill(t *testing.T) {
	t.Parallel()
	addr := startBroker(t)
	w, _ := connect(t, addr, v5, "watcher")
	w.mustSubscribe(sub("dwill/#", 1))
	a, _ := connect(t, addr, v5, "leaving", will("dwill/a", "gone", 1, false))
	a.disconnectWith(packets.Packet{ReasonCode: 0x04})
	w.receiveFrom("dwill/a", "gone")
}

// TestMQTT5_3_1_2_8_WillDelay: the Will Message "MUST be published after
// the Network Connection is subsequently closed and either the Will Delay
// Interval has elapsed or the Session ends" [MQTT-3.1.2-8]: not at once
// with a delay, and when the delay has passed.
func TestMQTT5_3_1_2_8_WillDelay(t *testing.T) {
	t.Parallel()
	addr := startLimited(t, 2)
	w, _ := connect(t, addr, v5, "watcher")
	w.mustSubscribe(sub("delay/#", 1))
	a, _ := connect(t, addr, v5, "delayed", persistent(), will("delay/a", "gone", 1, false), willDelay(2))
	a.drop()
	settle(t, addr, v5)
	w.quiet("a will with a delay of 2 s, at once")
	w.receiveFrom("delay/a", "gone")
}

// TestMQTT5_3_1_2_8_WillAtSessionEnd: the will is published when "either
// the Will Delay Interval has elapsed or the Session ends" [MQTT-3.1.2-8],
// whichever is first: "The Server delays publishing the Client's Will
// Message until the Will Delay Interval has passed or the Session ends,
// whichever happens first" (§3.1.3.2).
func TestMQTT5_3_1_2_8_WillAtSessionEnd(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		connect []option
		leave   func(c *client)
	}{
		// A Session Expiry Interval shorter than the will's delay.
		{"session expiry 1 s", []option{sessionExpiry(1)}, (*client).drop},
		// No Session Expiry Interval: the session ends with the connection.
		{"no session expiry", nil, (*client).drop},
		{"session expiry 0", []option{sessionExpiry(0)}, (*client).drop},
		{"DISCONNECT 0x04", nil, func(c *client) { c.disconnectWith(packets.Packet{ReasonCode: 0x04}) }},
		// The session expiry set to 0 on DISCONNECT ends the session.
		{"DISCONNECT 0x04 with session expiry 0", []option{sessionExpiry(60)}, func(c *client) {
			c.disconnectWith(packets.Packet{ReasonCode: 0x04, Properties: packets.Properties{SessionExpiryInterval: 0, SessionExpiryIntervalFlag: true}})
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			addr := startBroker(t)
			w, _ := connect(t, addr, v5, "watcher")
			w.mustSubscribe(sub("end/#", 1))
			opts := append([]option{will("end/a", "gone", 1, false), willDelay(60)}, tc.connect...)
			a, _ := connect(t, addr, v5, "ending", opts...)
			tc.leave(a)
			w.receiveFrom("end/a", "gone")
		})
	}
}

// TestMQTT5_3_1_3_9_WillCancelledByReconnect: "If a new Network Connection
// to this Session is made before the Will Delay Interval has passed, the
// Server MUST NOT send the Will Message" [MQTT-3.1.3-9]. Another client's
// will with a longer delay, which the broker publishes a second after the
// first would have been, shows the first was not.
func TestMQTT5_3_1_3_9_WillCancelledByReconnect(t *testing.T) {
	t.Parallel()
	addr := startLimited(t, 3)
	w, _ := connect(t, addr, v5, "watcher")
	w.mustSubscribe(sub("back/#", 1))
	a, _ := connect(t, addr, v5, "back", persistent(), will("back/a", "gone", 1, false), willDelay(1))
	a.drop()
	settle(t, addr, v5) // the broker has taken the will, to publish in 1 s
	_, ack := connectRetry(t, addr, v5, "back", persistent(), will("back/a", "gone again", 1, false), willDelay(1))
	if !ack.SessionPresent {
		t.Fatal("reconnecting: session present 0, want 1")
	}
	x, _ := connectRetry(t, addr, v5, "witness", persistent(), will("back/witness", "gone", 1, false), willDelay(2))
	x.drop()
	w.receiveFrom("back/witness", "gone")
}

// TestMQTT_3_1_2_9_EmptyWillMessage: the will's fields "MUST be present in
// the payload" (3.1.1 [MQTT-3.1.2-9], 5 [MQTT-3.1.2-9]); a will message of
// length 0 is present, and published as an empty message. (mochi refused
// the CONNECT.)
func TestMQTT_3_1_2_9_EmptyWillMessage(t *testing.T) {
	t.Parallel()
	forStatements(t, statements{v31: "MQTT-3.1.2-9", v311: "MQTT-3.1.2-9", v5: "MQTT-3.1.2-9"}, func(t *testing.T, v byte) {
		addr := startBroker(t)
		w, _ := connect(t, addr, v, "watcher")
		w.mustSubscribe(sub("will/#", 1))
		a, _ := connect(t, addr, v, "empty-will", will("will/empty", "", 1, false))
		a.drop()
		w.receiveFrom("will/empty", "")
	})
}
