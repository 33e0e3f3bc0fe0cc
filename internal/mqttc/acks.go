package mqttc

// takeAcks runs when the next byte read starts a packet. While that packet
// is a PUBACK without properties, it is read here, traced, and handed to
// onPuback rather than to paho; otherwise the packet's length is noted (in
// left) so that the next packet's start is known, and paho reads it.
//
// paho decodes every packet into a fresh ControlPacket, its content, a
// Properties and a buffer of at least 512 bytes: for a 4-byte PUBACK, the
// commonest packet a busy publisher receives, that was a quarter of its CPU.
// A PUBACK with properties (a reason string) still goes to paho, as does
// everything if the stream stops making sense (then paho reports it).
func (c *traceConn) takeAcks() {
	for {
		first, total, hdr, ok := c.nextPacketLen()
		if !ok {
			c.left = 0
			return
		}
		if rl := total - hdr; first != 0x40 || rl < 2 || rl > 4 {
			c.left = total
			return
		}
		b, err := c.r.Peek(total)
		if err != nil || (total-hdr == 4 && b[hdr+3] != 0) {
			c.left = total
			return
		}
		id := uint16(b[hdr])<<8 | uint16(b[hdr+1])
		var code byte
		if total-hdr > 2 {
			code = b[hdr+2]
		}
		c.received(b, nil)
		_, _ = c.r.Discard(total)
		c.onPuback(id, code)
	}
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
