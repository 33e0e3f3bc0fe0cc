package broker_test

import (
	"bytes"
	"fmt"
	"strconv"
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"
)

// TestPipelinedAcknowledgements: a client that sends many QoS 1 and 2
// PUBLISH packets in one go gets every PUBACK and PUBREC, in order, and
// every PUBCOMP for its PUBRELs, without sending anything more: the broker
// holds acknowledgements back while it has more of the client's packets in
// its buffer (third_party/mochi-server/MQTK.md), but never while it waits
// for more, not even for the rest of a packet that came in part. A
// subscriber gets each message once, those of each QoS in order.
func TestPipelinedAcknowledgements(t *testing.T) {
	addr := startBroker(t)
	forVersions(t, []byte{v311, v5}, func(t *testing.T, v byte) {
		// Messages 1 to n with QoS 1, n+1 to 2n with QoS 2, and 2n+1 with
		// QoS 1 again: all in flight at once, within the broker's Receive
		// Maximum (mqtk's 1024; mosquitto's 20).
		n := 400
		if *onMosquitto {
			n = 9
		}
		qos := func(i int) byte {
			if i > n && i <= 2*n {
				return 2
			}
			return 1
		}
		topic := "pipelined/" + versionName(v)
		s, _ := connect(t, addr, v, "pipe-sub-"+versionName(v))
		s.mustSubscribe(sub(topic, 0))
		p, _ := connect(t, addr, v, "pipe-pub-"+versionName(v))

		// All but the last in one write, with the first bytes of the last.
		var burst bytes.Buffer
		var rest int // where the rest of the last message starts
		for i := 1; i <= 2*n+1; i++ {
			m := message(topic, strconv.Itoa(i), qos(i), false)
			m.PacketID = uint16(i)
			rest = burst.Len() + 3
			burst.Write(p.encode(m))
		}
		p.write(burst.Bytes()[:rest])
		for i := 1; i <= 2*n; i++ {
			want := byte(packets.Puback)
			if qos(i) == 2 {
				want = packets.Pubrec
			}
			if ack := p.next(); ack.FixedHeader.Type != want || int(ack.PacketID) != i {
				t.Fatalf("got %s, want the %s of message %d", describe(ack), packets.PacketNames[want], i)
			}
		}

		// The rest of the last message, and the PUBRELs, in one write.
		tail := append([]byte(nil), burst.Bytes()[rest:]...)
		for i := n + 1; i <= 2*n; i++ {
			tail = append(tail, p.encode(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pubrel}, PacketID: uint16(i)})...)
		}
		p.write(tail)
		if ack := p.next(); ack.FixedHeader.Type != packets.Puback || int(ack.PacketID) != 2*n+1 {
			t.Fatalf("got %s, want the PUBACK of message %d", describe(ack), 2*n+1)
		}
		for i := n + 1; i <= 2*n; i++ {
			if ack := p.next(); ack.FixedHeader.Type != packets.Pubcomp || int(ack.PacketID) != i {
				t.Fatalf("got %s, want the PUBCOMP of message %d", describe(ack), i)
			}
		}
		p.nothingPending("after the PUBCOMPs")

		// mochi sends a QoS 2 message on as soon as it has it, mosquitto
		// on its PUBREL: only the order within each QoS is certain.
		var want [3][]int
		for i := 1; i <= 2*n+1; i++ {
			want[qos(i)] = append(want[qos(i)], i)
		}
		for range 2*n + 1 {
			got := s.receive()
			i, _ := strconv.Atoi(string(got.Payload))
			q := qos(i)
			if got.TopicName != topic || len(want[q]) == 0 || i != want[q][0] {
				t.Fatalf("subscriber got %s, want the next of %v", describe(got), want[q][:min(len(want[q]), 3)])
			}
			want[q] = want[q][1:]
		}
	})
}

// TestAcknowledgedAfterRouting: the broker routes a QoS 1 or 2 message
// before it acknowledges it (MQTK.md change 26, as mosquitto does), so a
// client subscribed to what it publishes reads its copy of the message
// before the PUBACK or PUBREC on the same connection. mochi acknowledged
// first, so an acknowledged message could still be lost in a crash before
// it was routed, and the publisher's wake-up competed with the routing.
// (mosquitto holds a QoS 2 message until its PUBREL, so there its copy
// follows the PUBREC; mqtk, like mochi, routes it at once.) The order on
// the wire holds because mqtk writes the copy in the routing itself, the
// client's writes being idle (MQTK.md change 25); a copy left to the
// writer goroutine, as for a busy publisher, is routed as early but may
// be written after the PUBACK.
func TestAcknowledgedAfterRouting(t *testing.T) {
	t.Parallel()
	addr := startBroker(t)
	forVersions(t, []byte{v311, v5}, func(t *testing.T, v byte) {
		topic := "routed-first/" + versionName(v)
		c, _ := connect(t, addr, v, "routed-first-"+versionName(v))
		c.mustSubscribe(sub(topic, 2))
		for _, qos := range []byte{1, 2} {
			if qos == 2 && *onMosquitto {
				break // mosquitto routes a QoS 2 message at its PUBREL
			}
			pk := message(topic, fmt.Sprint("qos ", qos), qos, false)
			pk.PacketID = c.newID()
			c.send(pk)
			first, second := c.next(), c.next()
			ack := byte(packets.Puback)
			if qos == 2 {
				ack = packets.Pubrec
			}
			if first.FixedHeader.Type != packets.Publish || second.FixedHeader.Type != ack || second.PacketID != pk.PacketID {
				t.Fatalf("QoS %d: got %s then %s, want the PUBLISH to the client itself, then the %s %d",
					qos, describe(first), describe(second), packets.PacketNames[ack], pk.PacketID)
			}
			c.ack(first)
			if qos == 2 {
				c.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pubrel}, PacketID: pk.PacketID})
				c.await(packets.Pubcomp, pk.PacketID)
			}
		}
		c.sync()
	})
}
