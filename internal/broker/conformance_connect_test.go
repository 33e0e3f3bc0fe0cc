package broker_test

import (
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"
)

// CONNECT packets a server must refuse, and how. MQTT 3.1.1 and 3.1 have
// CONNACK return codes 0 to 5 only: what none of them names, the server
// answers by closing the connection (as mosquitto does), never with an
// MQTT 5 reason code an MQTT 3 client cannot read (fork change 43). MQTT 5
// allows a CONNACK with a reason code of 0x80 or more before the close
// (4.13), or the close alone.

// expectRefused fails unless the server refuses the CONNECT just sent: in
// MQTT 3 by closing the connection without a CONNACK, or with a CONNACK
// whose return code is v3code if that is not 0; in MQTT 5 by closing it,
// after a CONNACK with a reason code of 0x80 or more if it sends one.
func (c *client) expectRefused(v3code byte) {
	c.t.Helper()
	f, err := c.read()
	if err == nil {
		switch {
		case f.pk.FixedHeader.Type != packets.Connack:
			c.t.Fatalf("%s: got %s, want the CONNECT refused", c.id, describe(f.pk))
		case c.version == v5 && f.pk.ReasonCode < 0x80,
			c.version != v5 && (v3code == 0 || f.pk.ReasonCode != v3code):
			c.t.Fatalf("%s: got CONNACK % x, want the CONNECT refused%s", c.id, f.raw, v3want(c.version, v3code))
		}
	} else if c.version != v5 && v3code != 0 {
		c.t.Fatalf("%s: the connection closed (%v) without the CONNACK with return code %d", c.id, err, v3code)
	}
	c.expectClosed()
}

// connectRefused opens a connection, sends a CONNECT with opts and expects
// it refused (see expectRefused).
func connectRefused(t testing.TB, addr string, v byte, id string, v3code byte, opts ...option) {
	t.Helper()
	c := dial(t, addr, v, id)
	c.sendConnect(opts...)
	c.expectRefused(v3code)
}

func v3want(v, code byte) string {
	switch {
	case v == v5:
		return " (a reason code >= 0x80)"
	case code == 0:
		return " by a close without CONNACK (MQTT 3 has no return code for it)"
	}
	return " with return code " + string('0'+rune(code))
}

// TestMQTT_3_1_3_8_ClientIDRejected: "If the Client supplies a zero-byte
// ClientId with CleanSession set to 0, the Server MUST respond to the
// CONNECT Packet with a CONNACK return code 0x02 (Identifier rejected) and
// then close the Network Connection" (3.1.1 [MQTT-3.1.3-8]); MQTT 3.1
// requires a ClientId of 1 to 23 characters whatever the flag, so an empty
// one gets 0x02 with clean session 1 too. (mochi answered 0x80.)
func TestMQTT_3_1_3_8_ClientIDRejected(t *testing.T) {
	t.Parallel()
	forStatements(t, statements{v31: "MQTT-3.1.3-8", v311: "MQTT-3.1.3-8"}, func(t *testing.T, v byte) {
		addr := startBroker(t)
		connectRefused(t, addr, v, "", 0x02, persistent())
		if v == v31 {
			connectRefused(t, addr, v, "", 0x02)
		}
	})
}

// TestMQTT_3_1_2_3_ReservedFlag: "The Server MUST validate that the
// reserved flag in the CONNECT Control Packet is set to zero and disconnect
// the Client if it is not zero" (3.1.1 [MQTT-3.1.2-3]; in MQTT 5 a
// Malformed Packet). MQTT 3.1 says nothing of it, and mosquitto accepts
// the flag there (mqtk's broker refuses it in every version).
func TestMQTT_3_1_2_3_ReservedFlag(t *testing.T) {
	t.Parallel()
	forStatements(t, statements{v311: "MQTT-3.1.2-3", v5: "MQTT-3.1.2-3"}, func(t *testing.T, v byte) {
		addr := startBroker(t)
		c := dial(t, addr, v, "reserved")
		b := c.encodeConnect()
		b[connectFlagsAt(b)] |= 0x01
		c.write(b)
		c.expectRefused(0)
	})
}

// TestMQTT_3_1_2_14_WillQoS3: "If the Will Flag is set to 1, the value of
// Will QoS can be 0, 1 or 2. It MUST NOT be 3" (3.1.1 [MQTT-3.1.2-14]; 5
// [MQTT-3.1.2-12], a Malformed Packet).
func TestMQTT_3_1_2_14_WillQoS3(t *testing.T) {
	t.Parallel()
	forStatements(t, statements{v31: "MQTT-3.1.2-14", v311: "MQTT-3.1.2-14", v5: "MQTT-3.1.2-12"}, func(t *testing.T, v byte) {
		connectRefused(t, startBroker(t), v, "will-qos3", 0, will("will/qos3", "x", 3, false))
	})
}

// TestMQTT_3_1_2_22_PasswordWithoutUserName: "If the User Name Flag is set
// to 0, the Password Flag MUST be set to 0" (3.1.1 [MQTT-3.1.2-22]; MQTT 5
// allows a password alone).
func TestMQTT_3_1_2_22_PasswordWithoutUserName(t *testing.T) {
	t.Parallel()
	forStatements(t, statements{v31: "MQTT-3.1.2-22", v311: "MQTT-3.1.2-22"}, func(t *testing.T, v byte) {
		connectRefused(t, startBroker(t), v, "password-only", 0, func(pk *packets.Packet) {
			pk.Connect.PasswordFlag = true
			pk.Connect.Password = []byte("secret")
		})
	})
}

// TestMQTT_4_7_1_1_WillTopicWildcards: "The wildcard characters can be
// used in Topic Filters, but MUST NOT be used within a Topic Name" (3.1.1
// [MQTT-4.7.1-1], 5 [MQTT-4.7.0-1]), and a will topic is one. (mochi
// accepted "will/#", published the will to it, and kept it retained where
// no filter could clear it.)
func TestMQTT_4_7_1_1_WillTopicWildcards(t *testing.T) {
	t.Parallel()
	forStatements(t, statements{v31: "MQTT-4.7.1-1", v311: "MQTT-4.7.1-1", v5: "MQTT-4.7.0-1"}, func(t *testing.T, v byte) {
		addr := startBroker(t)
		for _, topic := range []string{"will/#", "will/+", "+"} {
			connectRefused(t, addr, v, "wildcard-will", 0, will(topic, "x", 0, true))
		}
	})
}

// connectFlagsAt is the offset of the Connect Flags byte in an encoded
// CONNECT: after the fixed header, the protocol name and the level.
func connectFlagsAt(b []byte) int {
	i := 1
	for b[i]&0x80 != 0 { // remaining length
		i++
	}
	i++
	nameLen := int(b[i])<<8 | int(b[i+1])
	return i + 2 + nameLen + 1
}
