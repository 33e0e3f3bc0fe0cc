package broker_test

import (
	"net"
	"strconv"
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"

	"mqtk/internal/broker"
	"mqtk/internal/brokertest"
)

// What mochi's compatibility options (set in broker.Start) change on the
// wire, and mqtk's authorization as clients see it.

// denySecret allows everything but secret/#.
var denySecret = broker.Config{ACL: []broker.Rule{
	{Filter: "#", Access: broker.ReadWrite},
	{Filter: "secret/#", Access: broker.ReadWrite, Deny: true},
}}

// TestMQTT5_3_4_2_1_AckProperties: "The Client or Server sending the PUBACK
// packet MUST use one of the PUBACK Reason Codes" [MQTT-3.4.2-1], and
// acknowledgements carry no copy of the user properties of the packet they
// answer (mochi's NoInheritedPropertiesOnAck: without it, mochi echoes them
// and writes its reason code 0x01 on PUBACK).
func TestMQTT5_3_4_2_1_AckProperties(t *testing.T) {
	t.Parallel()
	addr := startBroker(t)
	s, _ := connect(t, addr, v5, "sub")
	s.mustSubscribe(sub("props/#", 2))
	c, _ := connect(t, addr, v5, "pub")
	user := []packets.UserProperty{{Key: "k", Val: "v"}}
	noProps := func(what string, pk packets.Packet) {
		t.Helper()
		if len(pk.Properties.User) > 0 {
			t.Errorf("%s with user properties %v, want none", describe(pk), pk.Properties.User)
		}
		if what == "PUBACK" && pk.ReasonCode != 0x00 && pk.ReasonCode != 0x10 {
			t.Errorf("%s: reason code %#x, not a success code of PUBACK", describe(pk), pk.ReasonCode)
		}
	}

	pk := message("props/1", "x", 1, false)
	pk.Properties.User = user
	noProps("PUBACK", c.publish(pk))
	if got := s.receive(); len(got.Properties.User) != 1 || got.Properties.User[0] != user[0] {
		t.Errorf("subscriber: got user properties %v, want %v unaltered [MQTT-3.3.2-17]", got.Properties.User, user)
	}

	pk = message("props/2", "x", 2, false)
	pk.Properties.User = user
	pk.PacketID = 2
	c.send(pk)
	noProps("PUBREC", c.expect(packets.Pubrec))
	c.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pubrel}, PacketID: 2, Properties: packets.Properties{User: user}})
	noProps("PUBCOMP", c.expect(packets.Pubcomp))

	m := s.expect(packets.Publish)
	s.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pubrec}, PacketID: m.PacketID, Properties: packets.Properties{User: user}})
	noProps("PUBREL", s.await(packets.Pubrel, m.PacketID))
	s.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pubcomp}, PacketID: m.PacketID})
}

// TestMQTT_3_9_3_SubscribeNotAuthorized: a subscription the ACL refuses
// gets 0x87 "Not authorized" in MQTT 5 (§3.9.3; mochi's
// ObscureNotAuthorized would make it 0x80), 0x80 in 3.1.1, where
// "SUBACK return codes other than 0x00, 0x01, 0x02 and 0x80 are reserved
// and MUST NOT be used" [MQTT-3.9.3-2]; the other filters of the SUBSCRIBE
// are granted ([MQTT-3.8.4-5] 5, [MQTT-3.8.4-4] 3.1.1).
func TestMQTT_3_9_3_SubscribeNotAuthorized(t *testing.T) {
	t.Parallel()
	forStatements(t, statements{v311: "MQTT-3.9.3-2", v5: "MQTT-3.9.3-2"}, func(t *testing.T, v byte) {
		c, _ := connect(t, startMQTK(t, denySecret), v, "sub")
		want := map[byte]byte{v311: 0x80, v5: 0x87}[v]
		if got := c.subscribe(sub("open/t", 1), sub("secret/t", 1)); got[0] != 1 || got[1] != want {
			t.Errorf("SUBACK % x, want 01 %02x", got, want)
		}
	})
}

// TestMQTT_3_3_5_2_PublishNotAuthorized: "If a Server implementation does
// not authorize a PUBLISH to be performed by a Client; it has no way of
// informing that Client. It MUST either make a positive acknowledgement,
// according to the normal QoS rules, or close the Network Connection"
// (3.1.1 [MQTT-3.3.5-2]): mqtk's broker acknowledges, as mosquitto does
// (fork change 46; mochi closed the connection, and a client that resends
// what was unacknowledged when it reconnects was refused for ever), the
// QoS 2 flow to its PUBCOMP. MQTT 5 has a reason code for it: PUBACK 0x87
// (§3.4.2.1). Nothing is delivered.
func TestMQTT_3_3_5_2_PublishNotAuthorized(t *testing.T) {
	t.Parallel()
	forStatements(t, statements{v31: "MQTT-3.3.5-2", v311: "MQTT-3.3.5-2", v5: "3.4.2.1"}, func(t *testing.T, v byte) {
		addr := startMQTK(t, denySecret)
		s, _ := connect(t, addr, v, "sub")
		s.mustSubscribe(sub("#", 2))
		c, _ := connect(t, addr, v, "pub")
		pk := message("secret/t", "x", 1, false)
		pk.PacketID = 1
		c.send(pk)
		if v == v5 {
			if ack := c.expect(packets.Puback); ack.ReasonCode != 0x87 {
				t.Errorf("got %s, want PUBACK 0x87 (not authorized)", describe(ack))
			}
		} else {
			if ack := c.next(); ack.FixedHeader.Type != packets.Puback || ack.PacketID != 1 {
				t.Fatalf("QoS 1 PUBLISH 1: got %s, want PUBACK 1", describe(ack))
			}
			pk = message("secret/t", "y", 2, false)
			pk.PacketID = 2
			c.send(pk)
			c.send(pk) // again, before the PUBREL: answered alike
			for range 2 {
				if rec := c.next(); rec.FixedHeader.Type != packets.Pubrec || rec.PacketID != 2 {
					t.Fatalf("QoS 2 PUBLISH 2: got %s, want PUBREC 2", describe(rec))
				}
			}
			c.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pubrel, Qos: 1}, PacketID: 2})
			if comp := c.next(); comp.FixedHeader.Type != packets.Pubcomp || comp.PacketID != 2 || comp.ReasonCode != 0 {
				t.Fatalf("PUBREL 2: got %s, want PUBCOMP 2 (success)", describe(comp))
			}
			c.nothingPending("after the QoS 2 flow")
		}
		s.quiet("a message the publisher may not publish")
	})
}

// TestMQTT_3_14_4_2_ServerDisconnect: an operator's kick (Server.Disconnect)
// sends an MQTT 5 client DISCONNECT 0x98 (administrative action), and
// "After sending a DISCONNECT packet the sender ... MUST close the Network
// Connection" (5 [MQTT-3.14.4-2]; mochi's PassiveClientDisconnect would
// leave it open). An MQTT 3.1.1 or 3.1 client, to which a server sends no
// DISCONNECT, sees the connection closed (3.1.1 §3.14).
func TestMQTT_3_14_4_2_ServerDisconnect(t *testing.T) {
	t.Parallel()
	forStatements(t, statements{v31: "3.14", v311: "3.14", v5: "MQTT-3.14.4-2"}, func(t *testing.T, v byte) {
		if *onMosquitto {
			t.Skip("kicks a client through mqtk's broker")
		}
		closeAfterBroker(t)
		b := brokertest.Start(t, broker.Config{})
		c, _ := connect(t, net.JoinHostPort(b.Host, strconv.Itoa(b.Port)), v, "kicked")
		if !b.Disconnect("kicked") {
			t.Fatal("Disconnect: the client is not connected")
		}
		if v == v5 {
			if pk := c.next(); pk.FixedHeader.Type != packets.Disconnect || pk.ReasonCode != 0x98 {
				t.Fatalf("got %s, want DISCONNECT 0x98 (administrative action)", describe(pk))
			}
		}
		c.expectClosed()
	})
}
