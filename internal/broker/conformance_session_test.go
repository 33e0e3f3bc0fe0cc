package broker_test

import (
	"fmt"
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"
)

// Sessions: clean session (clean start), session present, resumed sessions
// and what they keep, taking over a client identifier.

// TestMQTT_3_2_2_SessionPresent: "If the Server accepts a connection with
// CleanSession set to 1, the Server MUST set Session Present to 0" (3.1.1
// [MQTT-3.2.2-1], 5 [MQTT-3.2.2-2]); with CleanSession 0, "If the Server
// has stored Session state, it MUST set Session Present to 1" (3.1.1
// [MQTT-3.2.2-2], 5 [MQTT-3.2.2-3]), "If the Server does not have stored
// Session state, it MUST set Session Present to 0" (3.1.1 [MQTT-3.2.2-3], 5
// [MQTT-3.2.2-3]).
func TestMQTT_3_2_2_SessionPresent(t *testing.T) {
	t.Parallel()
	forStatements(t, statements{v311: "MQTT-3.2.2-1..3", v5: "MQTT-3.2.2-2..3"}, func(t *testing.T, v byte) {
		addr := startBroker(t)
		c, ack := connect(t, addr, v, "sp", persistent())
		if ack.SessionPresent {
			t.Error("first connection with clean session 0: session present 1, want 0")
		}
		c.mustSubscribe(sub("sp/t", 1))
		c.disconnect()

		c, ack = connect(t, addr, v, "sp", persistent())
		if !ack.SessionPresent {
			t.Error("resuming a stored session: session present 0, want 1")
		}
		c.disconnect()

		_, ack = connect(t, addr, v, "sp")
		if ack.SessionPresent {
			t.Error("clean session 1 with a stored session: session present 1, want 0")
		}
	})
}

// TestMQTT31_ConnackReservedByte: in MQTT 3.1 the first byte of CONNACK's
// variable header is "Reserved values. Not used." (3.1 §3.2), and 3.1.1
// "Bits 7-1 are reserved and MUST be set to 0" [MQTT-3.2.2-1] (5
// [MQTT-3.2.2-1]): a 3.1 client resuming a session gets 0 there, as the
// Session Present flag came with 3.1.1.
func TestMQTT31_ConnackReservedByte(t *testing.T) {
	t.Parallel()
	addr := startBroker(t)
	c, _ := connect(t, addr, v31, "old", persistent())
	c.mustSubscribe(sub("old/t", 1))
	c.disconnect()
	c, _ = connect(t, addr, v31, "old", persistent())
	if len(c.lastRaw) != 2 || c.lastRaw[0] != 0 {
		t.Errorf("MQTT 3.1 CONNACK variable header % x, want 00 00", c.lastRaw)
	}
	// The session was resumed all the same.
	p, _ := connect(t, addr, v31, "pub")
	p.pub("old/t", "x", 1, false)
	c.receiveFrom("old/t", "x")
}

// TestMQTT_3_1_2_4_SessionResumed: "If CleanSession is set to 0, the Server
// MUST resume communications with the Client based on state from the
// current Session" (3.1.1 [MQTT-3.1.2-4], 5 [MQTT-3.1.2-5]): its
// subscriptions; "After the disconnection of a Session that had
// CleanSession set to 0, the Server MUST store further QoS 1 and QoS 2
// messages that match any subscriptions that the client had at the time of
// disconnection as part of the Session state" (3.1.1 [MQTT-3.1.2-5], 5
// [MQTT-3.1.2-23] [MQTT-4.5.0-1]), and sends them in order (an ordered
// topic: 3.1.1 and 5 [MQTT-4.6.0-6]) as new messages: "the sender MUST send
// a PUBLISH packet ... with QoS 1 and DUP flag set to 0" (3.1.1
// [MQTT-4.3.2-1], 5 [MQTT-4.3.2-2] [MQTT-4.3.3-2]).
func TestMQTT_3_1_2_4_SessionResumed(t *testing.T) {
	t.Parallel()
	forStatements(t, statements{v31: "MQTT-3.1.2-4", v311: "MQTT-3.1.2-4", v5: "MQTT-3.1.2-5"}, func(t *testing.T, v byte) {
		addr := startLimited(t, 2)
		p, _ := connect(t, addr, v, "pub")
		s, _ := connect(t, addr, v, "away", persistent())
		s.mustSubscribe(sub("away/1", 1), sub("away/2", 2))
		s.disconnect()
		// mochi closes the socket before it marks the connection closed: a
		// message routed in between is written to the closed socket, an
		// attempt that makes its next sending a resend.
		settle(t, addr, v)

		var want []string
		for i := range 6 {
			qos := byte(1 + i%2)
			topic := fmt.Sprintf("away/%d", qos)
			p.pub(topic, fmt.Sprint(i), qos, false)
			want = append(want, fmt.Sprintf("%s %d %d", topic, i, qos))
		}

		s, _ = connectRetry(t, addr, v, "away", persistent())
		var got []string
		for _, m := range s.collect() {
			got = append(got, fmt.Sprintf("%s %s %d", m.TopicName, m.Payload, m.FixedHeader.Qos))
			if m.FixedHeader.Dup {
				t.Errorf("got %s: DUP 1 on the first delivery of a message queued for the session", describe(m))
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("messages queued for the session: got %q, want %q", got, want)
		}
		p.pub("away/1", "live", 1, false)
		s.receiveFrom("away/1", "live")
	})
}

// TestMQTT_3_1_2_6_CleanSessionDiscards: "If CleanSession is set to 1, the
// Client and Server MUST discard any previous Session and start a new one
// ... State data associated with this Session MUST NOT be reused in any
// subsequent Session" (3.1.1 [MQTT-3.1.2-6]; 5 [MQTT-3.1.2-4]): neither
// subscriptions nor queued messages.
func TestMQTT_3_1_2_6_CleanSessionDiscards(t *testing.T) {
	t.Parallel()
	forStatements(t, statements{v31: "MQTT-3.1.2-6", v311: "MQTT-3.1.2-6", v5: "MQTT-3.1.2-4"}, func(t *testing.T, v byte) {
		addr := startBroker(t)
		s, _ := connect(t, addr, v, "clean", persistent())
		s.mustSubscribe(sub("clean/t", 1))
		s.disconnect()
		p, _ := connect(t, addr, v, "pub")
		p.pub("clean/t", "queued", 1, false)
		p.sync() // routed (queued) before the reconnect, on a broker that acknowledges first too

		s, _ = connect(t, addr, v, "clean")
		s.quiet("a clean session, right after connecting")
		p.pub("clean/t", "live", 1, false)
		p.sync()
		s.quiet("a message to a subscription of the discarded session")
	})
}

// TestMQTT_4_4_0_1_ResendUnacknowledged: "When a Client reconnects with
// CleanSession set to 0, both the Client and Server MUST re-send any
// unacknowledged PUBLISH Packets (where QoS > 0) and PUBREL Packets using
// their original Packet Identifiers" (3.1.1 and 5 [MQTT-4.4.0-1]), a
// PUBLISH with "the DUP flag ... set to 1" (3.1.1 and 5 [MQTT-3.3.1-1]),
// and for QoS 2 once PUBREC has come, the PUBREL, never the PUBLISH again:
// the sender "MUST NOT re-send the PUBLISH once it has sent the
// corresponding PUBREL packet" (5 [MQTT-4.3.3-6], 3.1.1 [MQTT-4.3.3-1]).
func TestMQTT_4_4_0_1_ResendUnacknowledged(t *testing.T) {
	t.Parallel()
	forStatements(t, statements{v31: "MQTT-4.4.0-1", v311: "MQTT-4.4.0-1", v5: "MQTT-4.4.0-1"}, func(t *testing.T, v byte) {
		addr := startBroker(t)
		s, _ := connect(t, addr, v, "resend", persistent())
		s.mustSubscribe(sub("resend/#", 2))
		p, _ := connect(t, addr, v, "pub")
		p.pub("resend/1", "one", 1, false)
		p.pub("resend/2", "two", 2, false)
		one := s.expect(packets.Publish)
		two := s.expect(packets.Publish)
		s.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pubrec}, PacketID: two.PacketID})
		s.await(packets.Pubrel, two.PacketID)
		s.drop()

		s, _ = connect(t, addr, v, "resend", persistent())
		var gotOne, gotRel bool
		for !gotOne || !gotRel {
			pk := s.next()
			switch {
			case pk.FixedHeader.Type == packets.Publish && pk.PacketID == one.PacketID && string(pk.Payload) == "one":
				if !pk.FixedHeader.Dup {
					t.Errorf("resent %s: want DUP 1", describe(pk))
				}
				gotOne = true
				s.ack(pk)
			case pk.FixedHeader.Type == packets.Pubrel && pk.PacketID == two.PacketID:
				gotRel = true
				s.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pubcomp}, PacketID: two.PacketID})
			default:
				t.Fatalf("resuming: got %s, want the unacknowledged QoS 1 PUBLISH %d again and PUBREL %d", describe(pk), one.PacketID, two.PacketID)
			}
		}
		s.quiet("after the resent packets")
	})
}

// TestMQTT_3_1_4_2_Takeover: "If the ClientId represents a Client already
// connected to the Server then the Server MUST disconnect the existing
// Client" (3.1.1 [MQTT-3.1.4-2]); in MQTT 5 "the Server sends a DISCONNECT
// packet to the existing Client with Reason Code of 0x8E (Session taken
// over) ... and MUST close the Network Connection of the existing Client"
// [MQTT-3.1.4-3]. MQTT 3.1 and 3.1.1 have no DISCONNECT from the server.
// The new connection gets the session (clean session 0).
func TestMQTT_3_1_4_2_Takeover(t *testing.T) {
	t.Parallel()
	forStatements(t, statements{v31: "MQTT-3.1.4-2", v311: "MQTT-3.1.4-2", v5: "MQTT-3.1.4-3"}, func(t *testing.T, v byte) {
		addr := startBroker(t)
		first, _ := connect(t, addr, v, "twin", persistent())
		first.mustSubscribe(sub("twin/t", 1))
		second, ack := connect(t, addr, v, "twin", persistent())
		if v == v5 {
			if pk := first.next(); pk.FixedHeader.Type != packets.Disconnect || pk.ReasonCode != 0x8E {
				t.Fatalf("first connection: got %s, want DISCONNECT 0x8e (session taken over)", describe(pk))
			}
		}
		first.expectClosed()
		if v != v31 && !ack.SessionPresent {
			t.Error("taking over a session: session present 0, want 1")
		}
		p, _ := connect(t, addr, v, "pub")
		p.pub("twin/t", "x", 1, false)
		second.receiveFrom("twin/t", "x")
	})
}

// TestMQTT5_4_1_0_2_SessionExpiry: "The Server MUST discard the Session
// State when the Network Connection is closed and the Session Expiry
// Interval has passed" [MQTT-4.1.0-2]: a new connection with Clean Start 0
// has no session, and no message to the expired session's subscriptions
// reaches it. A will with a longer delay, published a tick after the
// session expired, shows it has.
func TestMQTT5_4_1_0_2_SessionExpiry(t *testing.T) {
	t.Parallel()
	addr := startBroker(t)
	w, _ := connect(t, addr, v5, "watcher")
	w.mustSubscribe(sub("expiry/witness", 0))
	s, _ := connect(t, addr, v5, "brief", resume(), sessionExpiry(1))
	s.mustSubscribe(sub("expiry/t", 1))
	s.disconnect()
	x, _ := connect(t, addr, v5, "witness", will("expiry/witness", "x", 0, false), willDelay(2), sessionExpiry(10))
	x.drop()
	w.receiveFrom("expiry/witness", "x")

	s, ack := connect(t, addr, v5, "brief", resume(), sessionExpiry(1))
	if ack.SessionPresent {
		t.Error("after the session expired: session present 1, want 0")
	}
	p, _ := connect(t, addr, v5, "pub")
	p.pub("expiry/t", "x", 1, false)
	p.sync()
	s.quiet("a message to a subscription of the expired session")
}
