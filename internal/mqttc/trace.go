package mqttc

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"

	"github.com/eclipse/paho.golang/packets"
)

// traceConn wraps the broker connection. It is a sync.Locker, so the packet
// writer holds it for a whole packet and concurrent publishes never
// interleave; with tracing on, it decodes the bytes going each way and
// prints one line per packet, as mosquitto's -d does. Passwords and
// authentication data are never printed.
//
// paho writes a packet as several buffers (fixed header, variable header,
// properties, payload), each a Write of its own: on a TCP connection with
// Nagle off that is one syscall and one segment each. Writes made while the
// lock is held are therefore gathered and written at Unlock, as one. Every
// packet paho or this package writes goes through packets.ControlPacket's
// WriteTo, which holds the lock; a Write without it goes straight through.
type traceConn struct {
	net.Conn
	r *bufio.Reader // reads go through it

	mu       sync.Mutex
	batching bool   // the lock is held: Write appends to batch
	batch    []byte // the packet being gathered
	wErr     error  // the first write error; every later write fails with it

	trace   *tracer
	in, out splitter

	errMu    sync.Mutex
	firstErr error // the first read error: why the connection ended
	watch    disconnectWatch
}

func (c *traceConn) readErr() error {
	c.errMu.Lock()
	defer c.errMu.Unlock()
	return c.firstErr
}

type tracer struct {
	mu       sync.Mutex
	w        io.Writer
	clientID string
}

// newTraceConn wraps conn; tr may be nil (no tracing).
func newTraceConn(conn net.Conn, tr *tracer) *traceConn {
	return &traceConn{Conn: conn, r: bufio.NewReaderSize(conn, readBuffer), trace: tr}
}

// readBuffer is how much one read from the socket may bring in. paho reads
// a packet in three or more small reads (type, length, body); served from
// this buffer, one syscall brings in many packets.
const readBuffer = 32 << 10

func (c *traceConn) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.errMu.Lock()
	c.watch.feed(p[:n])
	if err != nil && c.firstErr == nil {
		c.firstErr = err
	}
	c.errMu.Unlock()
	if c.trace != nil && n > 0 {
		c.in.feed(p[:n], func(cp *packets.ControlPacket) { c.trace.log("received", cp) })
	}
	return n, err
}

// maxBatch is how much a packet's writes are gathered up to; a larger
// payload is written on its own rather than copied.
const maxBatch = 64 << 10

func (c *traceConn) Lock() {
	c.mu.Lock()
	c.batching = true
}

func (c *traceConn) Unlock() {
	c.flush()
	c.batching = false
	if cap(c.batch) > maxBatch {
		c.batch = nil
	}
	c.mu.Unlock()
}

func (c *traceConn) flush() {
	if len(c.batch) > 0 && c.wErr == nil {
		if _, err := c.Conn.Write(c.batch); err != nil {
			c.wErr = err
		}
	}
	c.batch = c.batch[:0]
}

// writeErr is the error of the first write that failed, including one
// gathered and written at Unlock, after the writer's Write had returned.
func (c *traceConn) writeErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.wErr
}

func (c *traceConn) Write(p []byte) (int, error) {
	// Traced before it is written, so that the reply is never logged first.
	if c.trace != nil {
		c.out.feed(p, func(cp *packets.ControlPacket) { c.trace.log("sending", cp) })
	}
	if !c.batching {
		return c.Conn.Write(p)
	}
	if c.wErr != nil {
		return 0, c.wErr
	}
	if len(c.batch)+len(p) <= maxBatch {
		c.batch = append(c.batch, p...)
		return len(p), nil
	}
	c.flush()
	if c.wErr != nil {
		return 0, c.wErr
	}
	n, err := c.Conn.Write(p)
	if err != nil {
		c.wErr = err
	}
	return n, err
}

// serverDisconnect is the DISCONNECT the broker sent, if it sent one.
func (c *traceConn) serverDisconnect() *packets.Disconnect {
	c.errMu.Lock()
	defer c.errMu.Unlock()
	return c.watch.got
}

// disconnectWatch follows packet boundaries in the incoming stream without
// copying it, and keeps the broker's DISCONNECT, so that the reason a
// connection ended is known before paho reports it (paho reports it
// asynchronously, after the connection is already marked closed).
type disconnectWatch struct {
	state     int // 0: type byte, 1: remaining length, 2: body
	typ       byte
	remaining int
	mult      int
	body      []byte // kept for DISCONNECT only
	got       *packets.Disconnect
}

func (w *disconnectWatch) feed(p []byte) {
	for len(p) > 0 {
		switch w.state {
		case 0:
			w.typ, w.remaining, w.mult, w.body = p[0]>>4, 0, 1, nil
			w.state, p = 1, p[1:]
		case 1:
			b := p[0]
			p = p[1:]
			w.remaining += int(b&0x7f) * w.mult
			w.mult *= 128
			if b&0x80 == 0 {
				w.state = 2
				if w.remaining == 0 {
					w.done()
				}
			}
		case 2:
			n := min(len(p), w.remaining)
			if w.typ == packets.DISCONNECT {
				w.body = append(w.body, p[:n]...)
			}
			p, w.remaining = p[n:], w.remaining-n
			if w.remaining == 0 {
				w.done()
			}
		}
	}
}

func (w *disconnectWatch) done() {
	w.state = 0
	if w.typ != packets.DISCONNECT {
		return
	}
	d := &packets.Disconnect{Properties: &packets.Properties{}}
	if len(w.body) > 0 {
		_ = d.Unpack(bytes.NewBuffer(w.body))
	}
	w.got = d
}

// splitter cuts a byte stream into MQTT packets.
type splitter struct{ buf []byte }

func (s *splitter) feed(p []byte, emit func(*packets.ControlPacket)) {
	s.buf = append(s.buf, p...)
	for len(s.buf) >= 2 {
		remaining, mult, i := 0, 1, 1
		for ; i < len(s.buf) && i <= 4; i++ {
			remaining += int(s.buf[i]&0x7f) * mult
			mult *= 128
			if s.buf[i]&0x80 == 0 {
				break
			}
		}
		if i >= len(s.buf) || s.buf[i]&0x80 != 0 {
			return // header incomplete
		}
		total := i + 1 + remaining
		if len(s.buf) < total {
			return
		}
		if cp, err := packets.ReadPacket(bytes.NewReader(s.buf[:total])); err == nil {
			emit(cp)
		}
		s.buf = append(s.buf[:0], s.buf[total:]...)
	}
}

func (t *tracer) log(dir string, cp *packets.ControlPacket) {
	t.mu.Lock()
	defer t.mu.Unlock()
	fmt.Fprintf(t.w, "Client %s %s %s\n", t.clientID, dir, describe(cp))
}

func bit(b bool) int {
	if b {
		return 1
	}
	return 0
}

// describe renders a packet as mosquitto -d does, without secrets.
func describe(cp *packets.ControlPacket) string {
	switch p := cp.Content.(type) {
	case *packets.Connect:
		s := fmt.Sprintf("CONNECT (v%d, c%d, k%d, u%d, p%d", p.ProtocolVersion, bit(p.CleanStart), p.KeepAlive, bit(p.UsernameFlag), bit(p.PasswordFlag))
		if p.WillFlag {
			s += fmt.Sprintf(", will q%d r%d '%s'", p.WillQOS, bit(p.WillRetain), p.WillTopic)
		}
		return s + ")"
	case *packets.Connack:
		return fmt.Sprintf("CONNACK (%d, %s)", p.ReasonCode, ReasonName(p.ReasonCode))
	case *packets.Publish:
		alias := ""
		if p.Properties != nil && p.Properties.TopicAlias != nil {
			alias = fmt.Sprintf(" alias %d", *p.Properties.TopicAlias)
		}
		return fmt.Sprintf("PUBLISH (d%d, q%d, r%d, m%d, '%s'%s, ... (%d bytes))", bit(p.Duplicate), p.QoS, bit(p.Retain), p.PacketID, p.Topic, alias, len(p.Payload))
	case *packets.Puback:
		return fmt.Sprintf("PUBACK (Mid: %d, RC:%d)", p.PacketID, p.ReasonCode)
	case *packets.Pubrec:
		return fmt.Sprintf("PUBREC (Mid: %d, RC:%d)", p.PacketID, p.ReasonCode)
	case *packets.Pubrel:
		return fmt.Sprintf("PUBREL (Mid: %d)", p.PacketID)
	case *packets.Pubcomp:
		return fmt.Sprintf("PUBCOMP (Mid: %d, RC:%d)", p.PacketID, p.ReasonCode)
	case *packets.Subscribe:
		var subs []string
		for _, s := range p.Subscriptions {
			opts := s.QoS | s.RetainHandling<<4
			if s.NoLocal {
				opts |= 0x04
			}
			if s.RetainAsPublished {
				opts |= 0x08
			}
			subs = append(subs, fmt.Sprintf("Topic: %s, QoS: %d, Options: 0x%02x", s.Topic, s.QoS, opts))
		}
		return fmt.Sprintf("SUBSCRIBE (Mid: %d, %s)", p.PacketID, strings.Join(subs, ", "))
	case *packets.Suback:
		return fmt.Sprintf("SUBACK (Mid: %d, %v)", p.PacketID, p.Reasons)
	case *packets.Unsubscribe:
		return fmt.Sprintf("UNSUBSCRIBE (Mid: %d, %s)", p.PacketID, strings.Join(p.Topics, ", "))
	case *packets.Unsuback:
		return fmt.Sprintf("UNSUBACK (Mid: %d, %v)", p.PacketID, p.Reasons)
	case *packets.Disconnect:
		return fmt.Sprintf("DISCONNECT (%d, %s)", p.ReasonCode, ReasonName(p.ReasonCode))
	case *packets.Pingreq:
		return "PINGREQ"
	case *packets.Pingresp:
		return "PINGRESP"
	case *packets.Auth:
		return fmt.Sprintf("AUTH (%d)", p.ReasonCode)
	}
	return fmt.Sprintf("packet type %d", cp.Type)
}
