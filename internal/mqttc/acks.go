package mqttc

import (
	"bytes"
	"encoding/binary"

	"github.com/eclipse/paho.golang/packets"
)

// takePackets runs when the next byte read starts a packet. While that
// packet is one this package decodes itself, it is read here, traced, and
// handed on rather than decoded by paho; otherwise the packet's length is
// noted (in left) so that the next packet's start is known, and paho reads
// it. Taken:
//   - a PUBACK without properties, to onPuback;
//   - a QoS 0 PUBLISH without properties that fits the read buffer, to the
//     channel paho's router takes PUBLISHes from (publishTo), which is
//     where paho would have put it: so the handler gets messages one at a
//     time, in the order they came, from paho's router goroutine, as
//     before.
//
// paho decodes every packet into a fresh ControlPacket, its content, a
// Properties and a buffer of at least 512 bytes (for a PUBLISH twice more:
// the topic and the payload get buffers of their own). For a 4-byte PUBACK,
// the commonest packet a busy publisher receives, that was a quarter of its
// CPU; for a 100-byte PUBLISH, more than half of a subscriber's. Anything
// else (a PUBACK with a reason string, a PUBLISH with properties, QoS 1 or
// 2) still goes to paho, as does everything if the stream stops making
// sense (then paho reports it).
func (c *traceConn) takePackets() {
	for {
		first, total, hdr, ok := c.nextPacketLen()
		if !ok {
			c.left = 0
			return
		}
		taken := false
		switch {
		case first == 0x40 && c.onPuback != nil:
			taken = c.takePuback(total, hdr)
		case first>>4 == 3 && c.publishTo != nil:
			taken = c.takePublish(first, total, hdr)
		}
		if !taken {
			c.left = total
			return
		}
	}
}

// takePuback hands the PUBACK at the start of the buffer, total bytes of
// which hdr are the fixed header, to onPuback, unless it has properties.
func (c *traceConn) takePuback(total, hdr int) bool {
	if rl := total - hdr; rl < 2 || rl > 4 {
		return false
	}
	b, err := c.r.Peek(total)
	if err != nil || (total-hdr == 4 && b[hdr+3] != 0) {
		return false
	}
	id := uint16(b[hdr])<<8 | uint16(b[hdr+1])
	var code byte
	if total-hdr > 2 {
		code = b[hdr+2]
	}
	c.received(b, nil)
	_, _ = c.r.Discard(total)
	c.onPuback(id, code)
	return true
}

// takePublish passes the PUBLISH at the start of the buffer to paho's
// router, decoded as paho would, if it is QoS 0 without properties and with
// a topic (not a topic alias alone), and paho has shown where its router
// reads from (publishTo is nil before the first SUBACK or QoS 1 PUBLISH).
func (c *traceConn) takePublish(first byte, total, hdr int) bool {
	if first&0x0e != 0 { // QoS 1 or 2, or DUP set: paho's, as before
		return false
	}
	b, err := c.r.Peek(total) // fails beyond the read buffer: paho reads that one
	if err != nil {
		return false
	}
	body := b[hdr:]
	if len(body) < 3 {
		return false
	}
	n := int(binary.BigEndian.Uint16(body))
	if n == 0 || len(body) < 3+n || body[2+n] != 0 {
		return false
	}
	ch := c.publishTo()
	if ch == nil {
		return false
	}
	p := &packets.Publish{Topic: string(body[2 : 2+n]), Payload: bytes.Clone(body[3+n:]), Retain: first&1 != 0, Properties: &packets.Properties{}}
	c.received(b, nil)
	_, _ = c.r.Discard(total)
	ch <- p // as paho's reader does, with a QoS 1 PUBLISH (connSession.PacketReceived)
	return true
}

// nextPacketLen is the first byte of the next packet, its length and the
// length of its fixed header, from buffered bytes (reading more as needed:
// at a packet's start, paho is waiting for them anyway). ok is false on a
// read error or a malformed length.
func (c *traceConn) nextPacketLen() (first byte, total, hdr int, ok bool) {
	for i := 2; i <= 5; i++ {
		b, err := c.r.Peek(i)
		if err != nil {
			return 0, 0, 0, false
		}
		if total, hdr := packetHeader(b); total != 0 {
			return b[0], total, hdr, total > 0
		}
	}
	return 0, 0, 0, false
}
