package broker_test

import (
	"strconv"
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"
)

// QoS 0, 1 and 2 flows, from the client to the server and from the server
// to a subscriber.

// TestMQTT_3_3_4_1_PublishAcknowledged: "The receiver of a PUBLISH Packet
// MUST respond according to Table 3.4 ... as determined by the QoS in the
// PUBLISH Packet" (QoS 0: none, 1: PUBACK, 2: PUBREC); an acknowledgement
// carries the Packet Identifier of the PUBLISH (3.1.1 [MQTT-2.3.1-6], 5
// [MQTT-2.2.1-5]) and PUBCOMP that of the PUBREL (3.1.1 [MQTT-4.3.3-2], 5
// [MQTT-4.3.3-11]).
func TestMQTT_3_3_4_1_PublishAcknowledged(t *testing.T) {
	t.Parallel()
	forStatements(t, statements{v31: "MQTT-3.3.4-1", v311: "MQTT-3.3.4-1", v5: "MQTT-3.3.4-1"}, func(t *testing.T, v byte) {
		c, _ := connect(t, startBroker(t), v, "pub")
		c.send(message("qos/0", "a", 0, false))
		c.nothingPending("after a QoS 0 PUBLISH")

		pk := message("qos/1", "b", 1, false)
		pk.PacketID = 7
		c.send(pk)
		if ack := c.next(); ack.FixedHeader.Type != packets.Puback || ack.PacketID != 7 || ack.ReasonCode >= 0x80 {
			t.Fatalf("QoS 1 PUBLISH 7: got %s, want PUBACK 7 (success)", describe(ack))
		}

		pk = message("qos/2", "c", 2, false)
		pk.PacketID = 9
		c.send(pk)
		if rec := c.next(); rec.FixedHeader.Type != packets.Pubrec || rec.PacketID != 9 || rec.ReasonCode >= 0x80 {
			t.Fatalf("QoS 2 PUBLISH 9: got %s, want PUBREC 9 (success)", describe(rec))
		}
		c.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pubrel}, PacketID: 9})
		if comp := c.next(); comp.FixedHeader.Type != packets.Pubcomp || comp.PacketID != 9 || comp.ReasonCode != 0 {
			t.Fatalf("PUBREL 9: got %s, want PUBCOMP 9 (success)", describe(comp))
		}
		c.nothingPending("after the QoS 2 flow")
	})
}

// TestMQTT_4_3_3_10_QoS2Duplicate: "Until it has received the corresponding
// PUBREL packet, the receiver MUST acknowledge any subsequent PUBLISH packet
// with the same Packet Identifier by sending a PUBREC. It MUST NOT cause
// duplicate messages to be delivered to any onward recipients in this
// case" (5 [MQTT-4.3.3-10], 3.1.1 [MQTT-4.3.3-2]). A client resends the
// PUBLISH (DUP 1) when it has not seen the PUBREC, after a reconnection.
func TestMQTT_4_3_3_10_QoS2Duplicate(t *testing.T) {
	t.Parallel()
	forStatements(t, statements{v31: "MQTT-4.3.3-2", v311: "MQTT-4.3.3-2", v5: "MQTT-4.3.3-10"}, func(t *testing.T, v byte) {
		addr := startBroker(t)
		s, _ := connect(t, addr, v, "sub")
		s.mustSubscribe(sub("dup/t", 2))
		p, _ := connect(t, addr, v, "pub")

		pk := message("dup/t", "once", 2, false)
		pk.PacketID = 5
		p.send(pk)
		if rec := p.next(); rec.FixedHeader.Type != packets.Pubrec || rec.PacketID != 5 || rec.ReasonCode >= 0x80 {
			t.Fatalf("PUBLISH 5: got %s, want PUBREC 5 (success)", describe(rec))
		}
		pk.FixedHeader.Dup = true
		p.send(pk)
		if rec := p.next(); rec.FixedHeader.Type != packets.Pubrec || rec.PacketID != 5 || rec.ReasonCode >= 0x80 {
			t.Fatalf("PUBLISH 5 again (DUP) before PUBREL: got %s, want PUBREC 5 (success)", describe(rec))
		}
		p.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pubrel}, PacketID: 5})
		p.await(packets.Pubcomp, 5)

		s.receiveFrom("dup/t", "once")
		s.quiet("the QoS 2 message a second time")
	})
}

// TestMQTT_4_3_2_QoS1Delivery: the server, sending a QoS 1 message, "MUST
// assign an unused Packet Identifier each time it has a new Application
// Message to publish" and "MUST send a PUBLISH packet containing this Packet
// Identifier with QoS 1 and DUP flag set to 0" (5 [MQTT-4.3.2-1]
// [MQTT-4.3.2-2], 3.1.1 [MQTT-4.3.2-1], non-zero: [MQTT-2.3.1-1]).
func TestMQTT_4_3_2_QoS1Delivery(t *testing.T) {
	t.Parallel()
	forStatements(t, statements{v31: "MQTT-4.3.2-1", v311: "MQTT-4.3.2-1", v5: "MQTT-4.3.2-2"}, func(t *testing.T, v byte) {
		addr := startBroker(t)
		s, _ := connect(t, addr, v, "sub")
		s.mustSubscribe(sub("q1/t", 1))
		p, _ := connect(t, addr, v, "pub")
		p.pub("q1/t", "a", 1, false)
		p.pub("q1/t", "b", 1, false)

		a := s.expect(packets.Publish)
		b := s.expect(packets.Publish)
		for _, m := range []packets.Packet{a, b} {
			if m.FixedHeader.Qos != 1 || m.FixedHeader.Dup || m.PacketID == 0 {
				t.Errorf("got %s, want QoS 1, DUP 0 and a Packet Identifier", describe(m))
			}
		}
		if a.PacketID == b.PacketID {
			t.Errorf("two unacknowledged messages with the same Packet Identifier %d", a.PacketID)
		}
		if string(a.Payload) != "a" || string(b.Payload) != "b" {
			t.Errorf("got %q then %q, want a then b (an ordered topic, 5 [MQTT-4.6.0-6])", a.Payload, b.Payload)
		}
		s.ack(a)
		s.ack(b)
		s.quiet("after both messages were acknowledged")
	})
}

// TestMQTT_4_3_3_QoS2Delivery: the server, sending a QoS 2 message, sends
// it with QoS 2 and DUP 0, and "MUST send a PUBREL packet when it receives a
// PUBREC packet from the receiver with a Reason Code value less than 0x80.
// This PUBREL packet MUST contain the same Packet Identifier as the original
// PUBLISH packet" (5 [MQTT-4.3.3-2] [MQTT-4.3.3-4], 3.1.1 [MQTT-4.3.3-1]).
func TestMQTT_4_3_3_QoS2Delivery(t *testing.T) {
	t.Parallel()
	forStatements(t, statements{v31: "MQTT-4.3.3-1", v311: "MQTT-4.3.3-1", v5: "MQTT-4.3.3-4"}, func(t *testing.T, v byte) {
		addr := startBroker(t)
		s, _ := connect(t, addr, v, "sub")
		s.mustSubscribe(sub("q2/t", 2))
		p, _ := connect(t, addr, v, "pub")
		p.pub("q2/t", "a", 2, false)

		m := s.expect(packets.Publish)
		if m.FixedHeader.Qos != 2 || m.FixedHeader.Dup || m.PacketID == 0 {
			t.Fatalf("got %s, want QoS 2, DUP 0 and a Packet Identifier", describe(m))
		}
		s.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pubrec}, PacketID: m.PacketID})
		if rel := s.next(); rel.FixedHeader.Type != packets.Pubrel || rel.PacketID != m.PacketID || rel.ReasonCode != 0 {
			t.Fatalf("PUBREC %d: got %s, want PUBREL %d (success)", m.PacketID, describe(rel), m.PacketID)
		}
		s.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pubcomp}, PacketID: m.PacketID})
		s.quiet("after the QoS 2 flow")
	})
}

// TestMQTT_3_8_4_8_DeliveryQoS: "The QoS of Application Messages sent in
// response to a Subscription MUST be the minimum of the QoS of the
// originally published message and the Maximum QoS granted by the Server"
// (5 [MQTT-3.8.4-8], 3.1.1 [MQTT-3.8.4-6]).
func TestMQTT_3_8_4_8_DeliveryQoS(t *testing.T) {
	t.Parallel()
	forStatements(t, statements{v31: "MQTT-3.8.4-6", v311: "MQTT-3.8.4-6", v5: "MQTT-3.8.4-8"}, func(t *testing.T, v byte) {
		addr := startBroker(t)
		s, _ := connect(t, addr, v, "sub")
		s.mustSubscribe(sub("min/1", 1))
		p, _ := connect(t, addr, v, "pub")
		for qos := byte(0); qos <= 2; qos++ {
			p.pub("min/1", "x", qos, false)
			if got := s.receive(); got.FixedHeader.Qos != min(qos, 1) {
				t.Errorf("published at QoS %d to a QoS 1 subscription: delivered at QoS %d, want %d", qos, got.FixedHeader.Qos, min(qos, 1))
			}
		}
	})
}

// TestMQTT_2_2_1_IndependentPacketIdentifiers: "The Client and Server assign
// Packet Identifiers independently of each other. As a result, Client
// Server pairs can participate in concurrent message exchanges using the
// same Packet Identifiers" (5 §2.2.1, 3.1.1 §2.3.1). A QoS 1 or 2 PUBLISH
// from the client with the identifier of a message the server has not yet
// had acknowledged must not make the server forget that message: it resends
// it when the session resumes (5 [MQTT-4.4.0-1], 3.1.1 [MQTT-4.4.0-1]).
func TestMQTT_2_2_1_IndependentPacketIdentifiers(t *testing.T) {
	t.Parallel()
	forStatements(t, statements{v31: "MQTT-4.4.0-1", v311: "MQTT-4.4.0-1", v5: "MQTT-4.4.0-1"}, func(t *testing.T, v byte) {
		for _, qos := range []byte{1, 2} {
			addr := startBroker(t)
			c, _ := connect(t, addr, v, "both", persistent())
			c.mustSubscribe(sub("ids/in", 1))
			p, _ := connect(t, addr, v, "pub")
			p.pub("ids/in", "unacked", 1, false)
			in := c.expect(packets.Publish) // not acknowledged

			out := message("ids/out", "same id", qos, false)
			out.PacketID = in.PacketID
			if ack := c.publish(out); ack.ReasonCode >= 0x80 {
				t.Fatalf("QoS %d PUBLISH %d: %s", qos, out.PacketID, describe(ack))
			}
			// mochi forgets its answer (PUBACK, PUBCOMP) to a message just
			// after writing it; a session taken over before that gets it
			// again, unasked.
			c.sync()
			c.drop()

			c, _ = connect(t, addr, v, "both", persistent())
			got := c.expect(packets.Publish)
			if got.PacketID != in.PacketID || string(got.Payload) != "unacked" || !got.FixedHeader.Dup {
				t.Fatalf("after a QoS %d PUBLISH from the client with its identifier: got %s, want the unacknowledged %s again with DUP 1", qos, describe(got), describe(in))
			}
			c.ack(got)
			c.quiet("after the resent message")
		}
	})
}

// TestMQTT_3_3_4_1_SysPublishAnswered: a PUBLISH to a $SYS topic, which
// the server keeps from other clients ("The Server SHOULD prevent Clients
// from using such Topic Names to exchange messages with other Clients",
// 4.7.2, non-normative), is still answered as the QoS asks [MQTT-3.3.4-1]:
// in MQTT 5 with PUBACK or PUBREC 0x87 (not authorized). 3.1.1 has no way
// to say so, and the server "MUST either make a positive acknowledgement
// ... or close the Network Connection" [MQTT-3.3.5-2]: mqtk's broker
// acknowledges it, as mosquitto does, as for a topic the ACL denies. mochi
// dropped such a PUBLISH without an answer, and the publisher waited for
// ever.
func TestMQTT_3_3_4_1_SysPublishAnswered(t *testing.T) {
	t.Parallel()
	forStatements(t, statements{v31: "MQTT-3.3.5-2", v311: "MQTT-3.3.5-2", v5: "MQTT-3.3.4-1"}, func(t *testing.T, v byte) {
		addr := startBroker(t)
		s, _ := connect(t, addr, v, "sub")
		s.mustSubscribe(sub("$SYS/conformance/#", 2))
		p, _ := connect(t, addr, v, "pub")

		p.send(message("$SYS/conformance/q0", "a", 0, false))
		p.sync()
		s.quiet("after a QoS 0 PUBLISH to $SYS")

		if v != v5 {
			pk := message("$SYS/conformance/q1", "b", 1, false)
			pk.PacketID = 7
			p.send(pk)
			if ack := p.next(); ack.FixedHeader.Type != packets.Puback || ack.PacketID != 7 {
				t.Fatalf("QoS 1 PUBLISH 7 to $SYS: got %s, want PUBACK 7", describe(ack))
			}
		}
		for _, tc := range []struct{ qos, ack byte }{{1, packets.Puback}, {2, packets.Pubrec}} {
			if v != v5 {
				break
			}
			pk := message("$SYS/conformance/q", "b", tc.qos, false)
			pk.PacketID = 7
			p.send(pk)
			if got := p.next(); got.FixedHeader.Type != tc.ack || got.PacketID != 7 || got.ReasonCode != packets.ErrNotAuthorized.Code {
				t.Fatalf("QoS %d PUBLISH 7 to $SYS: got %s, want %s 7 with 0x87", tc.qos, describe(got), packets.PacketNames[tc.ack])
			}
		}
		s.quiet("after PUBLISHes to $SYS")
	})
}

// TestV3QoS2ManyUnreleased: MQTT 3.1.1 and 3.1 have no Receive Maximum, so
// a client may have as many QoS 2 messages awaiting PUBREL as it has
// packet identifiers; mochi held them to MQTT 5's default quota (1,024)
// and disconnected the client beyond it.
func TestV3QoS2ManyUnreleased(t *testing.T) {
	t.Parallel()
	forStatements(t, statements{v31: "no Receive Maximum", v311: "no Receive Maximum"}, func(t *testing.T, v byte) {
		addr := startBroker(t)
		p, _ := connect(t, addr, v, "pub")
		const n = 3000
		ids := make([]uint16, n)
		for i := range ids {
			pk := message("many/x", strconv.Itoa(i), 2, false)
			pk.PacketID = p.newID()
			ids[i] = pk.PacketID
			p.send(pk)
			p.await(packets.Pubrec, pk.PacketID)
		}
		for _, id := range ids {
			p.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pubrel, Qos: 1}, PacketID: id})
			p.await(packets.Pubcomp, id)
		}
		p.pub("many/y", "after", 1, false) // and the connection goes on
	})
}
