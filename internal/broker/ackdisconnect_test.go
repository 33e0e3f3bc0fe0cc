package broker_test

import (
	"bytes"
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"
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
