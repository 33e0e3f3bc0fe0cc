package mqttc

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"

	"github.com/eclipse/paho.golang/packets"
)

// takePackets runs when the next byte read starts a packet. While that
// packet is one this package decodes itself, it is read here, traced, and
// handed on rather than decoded by paho; otherwise the packet's length is
// noted (in left) so that the next packet's start is known, and paho reads
// it. Taken:
//   - a PUBACK without properties, to connSession.end;
//   - a PUBLISH without properties that fits the read buffer: at QoS 0 to
//     the channel paho's router takes PUBLISHes from, at QoS 1 and 2 to
//     connSession.PacketReceived with that channel, as paho's reader does
//     after decoding one: so the handler gets messages one at a time, in
//     the order they came, from paho's router goroutine, and paho
//     acknowledges them after it, as before.
//
// paho decodes every packet into a fresh ControlPacket, its content, a
// Properties and a buffer of at least 512 bytes (for a PUBLISH twice more:
// the topic and the payload get buffers of their own). For a 4-byte PUBACK,
// the commonest packet a busy publisher receives, that was a quarter of its
// CPU; for a 100-byte PUBLISH, more than half of a subscriber's. Anything
// else (a PUBACK with a reason string, a PUBLISH with properties) still goes
// to paho, as does everything if the stream stops making sense (then paho
// reports it).
func (c *traceConn) takePackets() {
	for {
		first, total, hdr, ok := c.nextPacketLen()
		if !ok {
			c.left = 0
			return
		}
		taken := false
		switch {
		case first == 0x40:
			taken = c.takePuback(total, hdr)
		case first>>4 == 3:
			taken = c.takePublish(first, total, hdr)
		}
		if !taken {
			c.left = total
			return
		}
	}
}

// takePuback ends the session's transaction of the PUBACK at the start of
// the buffer, total bytes of which hdr are the fixed header, unless it has
// properties.
func (c *traceConn) takePuback(total, hdr int) bool {
	if rl := total - hdr; rl < 2 || rl > 4 {
		return false
	}
	b, ok := c.peekPacket(total)
	if !ok || (total-hdr == 4 && b[hdr+3] != 0) {
		return false
	}
	id := binary.BigEndian.Uint16(b[hdr:])
	var code byte
	if total-hdr > 2 {
		code = b[hdr+2]
	}
	c.consume(b)
	c.session.end(id, &packets.ControlPacket{FixedHeader: packets.FixedHeader{Type: packets.PUBACK},
		Content: &packets.Puback{PacketID: id, ReasonCode: code}})
	return true
}

// takePublish passes the PUBLISH at the start of the buffer on, decoded
// as paho would, if it has no properties, a topic (not a topic alias
// alone) and, at QoS 1 and 2, a packet identifier, and paho has shown where
// its router reads from (the session has no channel before the first
// SUBACK or QoS 1 or 2 PUBLISH paho read).
func (c *traceConn) takePublish(first byte, total, hdr int) bool {
	qos := first >> 1 & 3
	if qos == 3 { // malformed: paho's to report
		return false
	}
	b, ok := c.peekPacket(total)
	if !ok {
		return false
	}
	body := b[hdr:]
	if len(body) < 2 {
		return false
	}
	n := int(binary.BigEndian.Uint16(body))
	at := 2 + n // after the topic
	var id uint16
	if qos > 0 {
		if len(body) < at+2 {
			return false
		}
		id = binary.BigEndian.Uint16(body[at:])
		at += 2
	}
	ch := c.session.pubs
	if n == 0 || len(body) < at+1 || body[at] != 0 || (qos > 0 && id == 0) || ch == nil {
		return false
	}
	p := &packets.Publish{
		Topic: string(body[2 : 2+n]), Payload: bytes.Clone(body[at+1:]), Properties: &packets.Properties{},
		QoS: qos, PacketID: id, Duplicate: first&0x08 != 0, Retain: first&0x01 != 0,
	}
	c.consume(b)
	if qos == 0 {
		ch <- p // as paho's reader does
	} else {
		_ = c.session.PacketReceived(&packets.ControlPacket{FixedHeader: packets.FixedHeader{Type: packets.PUBLISH}, Content: p}, ch)
	}
	return true
}

// nextPacketLen is the first byte of the next packet, its length and the
// length of its fixed header, from buffered bytes (reading more as needed:
// at a packet's start, paho is waiting for them anyway). ok is false on a
// read error or a malformed length; after a malformed one (more than four
// length bytes, which paho still reads), packet boundaries are no longer
// known, and paho reads everything from there (astray).
func (c *traceConn) nextPacketLen() (first byte, total, hdr int, ok bool) {
	for i := 2; i <= 5; i++ {
		b, err := c.r.Peek(i)
		if err != nil {
			c.peekFailed(err)
			return 0, 0, 0, false
		}
		if total, hdr := packetHeader(b); total != 0 {
			if total < 0 {
				c.astray = true
			}
			return b[0], total, hdr, total > 0
		}
	}
	return 0, 0, 0, false
}

// peekPacket is the whole packet of total bytes at the start of the
// buffer, read in as needed; ok is false if it is beyond the buffer (paho
// reads that one) or a read failed.
func (c *traceConn) peekPacket(total int) (b []byte, ok bool) {
	b, err := c.r.Peek(total)
	if err != nil {
		c.peekFailed(err)
		return nil, false
	}
	return b, true
}

// consume traces the packet b, taken at the start of the buffer, and
// drops it from the buffer.
func (c *traceConn) consume(b []byte) {
	c.received(b, nil)
	_, _ = c.r.Discard(len(b))
}

// peekFailed records why a Peek failed, unless the packet is only beyond
// the buffer: bufio reports a read error once, and paho's next read of the
// socket would see only EOF (a reset connection would be reported as
// "EOF").
func (c *traceConn) peekFailed(err error) {
	if !errors.Is(err, bufio.ErrBufferFull) {
		c.received(nil, err)
	}
}
