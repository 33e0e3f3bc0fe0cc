package mqttc

import (
	"bytes"
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
		s.feed(b[:n], func(cp *packets.ControlPacket) { tr.log("sending", cp) })
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
