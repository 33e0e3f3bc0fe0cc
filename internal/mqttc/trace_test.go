package mqttc

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"

	"github.com/eclipse/paho.golang/packets"
)

// TestTraceSplitsStream feeds encoded packets to the tracer in awkward chunk
// sizes and checks one line per packet, without the password.
func TestTraceSplitsStream(t *testing.T) {
	var wire bytes.Buffer
	connect := &packets.Connect{
		ProtocolName: "MQTT", ProtocolVersion: 5, ClientID: "c1", KeepAlive: 30, CleanStart: true,
		UsernameFlag: true, Username: "alice", PasswordFlag: true, Password: []byte("hunter2"),
		Properties: &packets.Properties{},
	}
	pub := &packets.Publish{Topic: "a/b", QoS: 1, PacketID: 7, Payload: bytes.Repeat([]byte{0xff}, 300), Properties: &packets.Properties{}}
	if _, err := connect.WriteTo(&wire); err != nil {
		t.Fatal(err)
	}
	if _, err := pub.WriteTo(&wire); err != nil {
		t.Fatal(err)
	}
	if _, err := (&packets.Puback{PacketID: 7, ReasonCode: 0x87, Properties: &packets.Properties{}}).WriteTo(&wire); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	tr := &tracer{w: &out, clientID: "c1"}
	var s splitter
	b := wire.Bytes()
	for len(b) > 0 {
		n := min(len(b), 3)
		s.feed(b[:n], func(raw []byte) { tr.log("sending", raw) })
		b = b[n:]
	}
	want := "Client c1 sending CONNECT (v5, c1, k30, u1, p1)\n" +
		"Client c1 sending PUBLISH (d0, q1, r0, m7, 'a/b', ... (300 bytes))\n" +
		"Client c1 sending PUBACK (Mid: 7, RC:135)\n"
	if out.String() != want {
		t.Errorf("trace:\n%s\nwant:\n%s", out.String(), want)
	}
	if strings.Contains(out.String(), "hunter2") || strings.Contains(out.String(), "alice") {
		t.Error("trace shows credentials")
	}
}

// TestTraceV3 decodes MQTT 3.1.1 packets, which differ from MQTT 5 ones
// (no properties, CONNACK return codes), and an MQTT 3.1.1 CONNACK answering
// an MQTT 5 CONNECT.
func TestTraceV3(t *testing.T) {
	wire := []byte{
		0x10, 0x1e, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0xc2, 0x00, 0x3c, // CONNECT v4, user, password, clean, k60
		0x00, 0x02, 'c', '1', 0x00, 0x05, 'a', 'l', 'i', 'c', 'e', 0x00, 0x07, 'h', 'u', 'n', 't', 'e', 'r', '2',
		0x20, 0x02, 0x00, 0x05, // CONNACK not authorized
		0x32, 0x08, 0x00, 0x03, 'a', '/', 'b', 0x00, 0x07, 'x', // PUBLISH q1 m7, 1-byte payload
		0x40, 0x02, 0x00, 0x07, // PUBACK
		0x82, 0x08, 0x00, 0x02, 0x00, 0x03, 'a', '/', '#', 0x02, // SUBSCRIBE m2 a/# q2
		0x90, 0x03, 0x00, 0x02, 0x80, // SUBACK failure
		0xa2, 0x07, 0x00, 0x03, 0x00, 0x03, 'a', '/', '#', // UNSUBSCRIBE
		0xb0, 0x02, 0x00, 0x03, // UNSUBACK
		0xe0, 0x00, // DISCONNECT
	}
	var out bytes.Buffer
	tr := &tracer{w: &out, clientID: "c1", version: V311}
	var s splitter
	for b := wire; len(b) > 0; {
		n := min(len(b), 5)
		s.feed(b[:n], func(raw []byte) { tr.log("sending", raw) })
		b = b[n:]
	}
	want := "Client c1 sending CONNECT (v4, c1, k60, u1, p1)\n" +
		"Client c1 sending CONNACK (5, not authorized)\n" +
		"Client c1 sending PUBLISH (d0, q1, r0, m7, 'a/b', ... (1 bytes))\n" +
		"Client c1 sending PUBACK (Mid: 7, RC:0)\n" +
		"Client c1 sending SUBSCRIBE (Mid: 2, Topic: a/#, QoS: 2, Options: 0x02)\n" +
		"Client c1 sending SUBACK (Mid: 2, [128])\n" +
		"Client c1 sending UNSUBSCRIBE (Mid: 3, a/#)\n" +
		"Client c1 sending UNSUBACK (Mid: 3)\n" +
		"Client c1 sending DISCONNECT\n"
	if out.String() != want {
		t.Errorf("trace:\n%s\nwant:\n%s", out.String(), want)
	}
	if strings.Contains(out.String(), "hunter2") || strings.Contains(out.String(), "alice") {
		t.Error("trace shows credentials")
	}

	out.Reset()
	tr.version = V5
	tr.log("received", []byte{0x20, 0x02, 0x00, 0x01})
	if want := "Client c1 received CONNACK (1, unacceptable protocol version)\n"; out.String() != want {
		t.Errorf("MQTT 3.1.1 CONNACK on an MQTT 5 connection: %q, want %q", out.String(), want)
	}
}

// TestWatchV3 checks that a 3.1.1 stream is followed without mistaking a
// packet for a broker's DISCONNECT, and that the first CONNACK is kept.
func TestWatchV3(t *testing.T) {
	var w inboundWatch
	w.v3 = true
	w.feed([]byte{0x20, 0x02, 0x00, 0x00, 0xe0, 0x00, 0x30, 0x04, 0x00, 0x01, 'a', 'x'})
	if w.got != nil {
		t.Error("a DISCONNECT was taken for an MQTT 5 server DISCONNECT on a 3.1.1 connection")
	}
	if !w.connackDone || !bytes.Equal(w.connack, []byte{0, 0}) {
		t.Errorf("first CONNACK = %v, %v", w.connack, w.connackDone)
	}
	if w.packets != 3 || w.state != 0 {
		t.Errorf("packets = %d, state = %d", w.packets, w.state)
	}
}

// TestPacketHeader: the remaining lengths binary.AppendUvarint writes read back through
// packetHeader, at each size of the Variable Byte Integer; a header cut
// short is "too little to tell", one of five bytes malformed.
func TestPacketHeader(t *testing.T) {
	for _, n := range []int{0, 127, 128, 16383, 16384, 2097151, 2097152, 268435455} {
		b := binary.AppendUvarint([]byte{0x30}, uint64(n))
		if total, hdr := packetHeader(b); total != len(b)+n || hdr != len(b) {
			t.Errorf("%d: total %d, header %d; want %d, %d", n, total, hdr, len(b)+n, len(b))
		}
		if total, _ := packetHeader(b[:len(b)-1]); total != 0 {
			t.Errorf("%d cut short: total %d, want 0", n, total)
		}
	}
	if total, _ := packetHeader([]byte{0x30, 0x80, 0x80, 0x80, 0x80, 0x01}); total != -1 {
		t.Errorf("five-byte length: total %d, want -1", total)
	}
}
