package broker_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"mqtk/internal/broker"
)

// TestAckBeforeDisconnect: a client that sends a QoS 1 PUBLISH (or a
// PUBREL) and DISCONNECT in one write gets the PUBACK (PUBCOMP) before the
// broker closes the connection, as it did before acknowledgements were held
// back (change 14): WriteAck holds the acknowledgement because DISCONNECT
// is already buffered, processDisconnect closes the connection (cl.Stop),
// and the deferred flushHeld writes to a closed socket.
func TestAckBeforeDisconnect(t *testing.T) {
	addr := startBroker(t)
	forVersions(t, []byte{v311, v5}, func(t *testing.T, v byte) {
		t.Run("puback", func(t *testing.T) {
			p, _ := connect(t, addr, v, "rv-disc-pub-"+versionName(v))
			var b bytes.Buffer
			m := message("review/disc", "x", 1, false)
			m.PacketID = 7
			b.Write(p.encode(m))
			b.Write(p.encode(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Disconnect}}))
			p.write(b.Bytes())
			f, err := p.read()
			if err != nil {
				t.Fatalf("no PUBACK before the connection closed: %v", err)
			}
			if f.pk.FixedHeader.Type != packets.Puback || f.pk.PacketID != 7 {
				t.Fatalf("got %s, want PUBACK 7", describe(f.pk))
			}
		})
		t.Run("pubcomp", func(t *testing.T) {
			p, _ := connect(t, addr, v, "rv-disc-rel-"+versionName(v))
			m := message("review/disc", "x", 2, false)
			m.PacketID = 9
			p.send(m)
			p.await(packets.Pubrec, 9)
			var b bytes.Buffer
			b.Write(p.encode(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pubrel}, PacketID: 9}))
			b.Write(p.encode(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Disconnect}}))
			p.write(b.Bytes())
			f, err := p.read()
			if err != nil {
				t.Fatalf("no PUBCOMP before the connection closed: %v", err)
			}
			if f.pk.FixedHeader.Type != packets.Pubcomp || f.pk.PacketID != 9 {
				t.Fatalf("got %s, want PUBCOMP 9", describe(f.pk))
			}
		})
	})
}

// TestKeepaliveAfterLateConnect: a client that sends CONNECT late in
// the listener's CONNECT window, with a short keep-alive, is held to the
// CONNECT deadline instead of its keep-alive: deadlineConn.SetDeadline skips
// the keep-alive deadline because it moves on by less than a sixth of the
// *old* span (the CONNECT timeout), though it is far more than a sixth of
// its own. Here: CONNECT timeout 6 s, CONNECT at 5.3 s with keep-alive 1 s:
// the deadline stays at 6 s, 0.7 s after CONNECT, and a PINGREQ 0.9 s after
// CONNECT (within the keep-alive) finds the connection closed.
func TestKeepaliveAfterLateConnect(t *testing.T) {
	addr := startMQTK(t, broker.Config{ConnectTimeout: 6 * time.Second})
	c := dial(t, addr, v311, "rv-late-connect")
	time.Sleep(5300 * time.Millisecond)
	if ack := c.connect(func(pk *packets.Packet) { pk.Connect.Keepalive = 1 }); ack.ReasonCode != 0 {
		t.Fatalf("CONNACK %#x", ack.ReasonCode)
	}
	time.Sleep(900 * time.Millisecond)
	c.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pingreq}})
	f, err := c.read()
	if err != nil {
		t.Fatalf("PINGREQ 0.9 s after CONNECT with keep-alive 1 s: %v, want PINGRESP (the broker must allow 1.5 s)", err)
	}
	if f.pk.FixedHeader.Type != packets.Pingresp {
		t.Fatalf("got %s, want PINGRESP", describe(f.pk))
	}
}
