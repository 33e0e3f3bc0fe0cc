package mqttc

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"

	"github.com/eclipse/paho.golang/packets"
	v3packets "github.com/eclipse/paho.mqtt.golang/packets"
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
// lock is held are therefore gathered and queued at Unlock, as one. Every
// packet paho or this package writes goes through packets.ControlPacket's
// WriteTo, which holds the lock; a Write without it is queued on its own.
// The queue (sendQueue) writes from a goroutine of its own, so packets queued
// while a write is under way share the next one.
type traceConn struct {
	net.Conn
	r *bufio.Reader // reads go through it
	q *sendQueue    // writes go through it

	mu       sync.Mutex
	batching bool            // the lock is held: Write appends to batch
	batch    []byte          // the packet being gathered
	ctx      context.Context // LockCtx's: ends the packet's waits for room
	partial  bool            // a part of the packet under the lock is queued

	trace   *tracer
	in, out splitter

	errMu    sync.Mutex
	firstErr error // the first read error: why the connection ended
	watch    inboundWatch

	// session, if set before the first Read (MQTT 5), takes the PUBACKs
	// and PUBLISHes this package decodes itself instead of paho (see
	// takePackets); left is what is still to be read of the packet paho is
	// reading.
	session *connSession
	left    int
	astray  bool // a malformed length: packets are no longer taken
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
	version  int // how packets are decoded: V5 (or 0), V311 or V31
}

func (t *tracer) setClientID(id string) {
	t.mu.Lock()
	t.clientID = id
	t.mu.Unlock()
}

// forVersion sets the protocol the connection speaks: with MQTT 3.1.1 and
// 3.1 a DISCONNECT from the broker does not exist and is not watched for.
func (c *traceConn) forVersion(v int) *traceConn {
	c.watch.v3 = v == V311 || v == V31
	if c.trace != nil {
		c.trace.version = v
	}
	return c
}

// newTraceConn wraps conn; tr may be nil (no tracing).
func newTraceConn(conn net.Conn, tr *tracer) *traceConn {
	c := &traceConn{Conn: conn, r: bufio.NewReaderSize(conn, readBuffer), trace: tr}
	// A failed write ends the connection: the reader then fails too, and
	// the write error is what is reported.
	c.q = newSendQueue(conn, func(err error) {
		c.errMu.Lock()
		if c.firstErr == nil {
			c.firstErr = err
		}
		c.errMu.Unlock()
		_ = conn.Close()
	})
	return c
}

// Close writes what is queued (see sendQueue.close) and closes the
// connection.
func (c *traceConn) Close() error {
	c.q.close()
	return c.Conn.Close()
}

// abort closes the connection without waiting for anything queued to be
// written (see sendQueue.abort).
func (c *traceConn) abort() {
	c.q.abort()
	_ = c.Close()
}

// flushQueue waits until everything written so far has reached the socket
// and returns the first write error.
func (c *traceConn) flushQueue() error { return c.q.flush() }

// readBuffer is how much one read from the socket may bring in. paho reads
// a packet in three or more small reads (type, length, body); served from
// this buffer, one syscall brings in many packets.
const readBuffer = 32 << 10

func (c *traceConn) Read(p []byte) (int, error) {
	if c.session != nil && !c.astray {
		if c.left == 0 {
			c.takePackets()
		}
		if c.left > 0 && len(p) > c.left {
			p = p[:c.left] // paho reads packet by packet; this keeps it so
		}
	}
	n, err := c.r.Read(p)
	if c.left > 0 {
		c.left -= n
	}
	c.received(p[:n], err)
	return n, err
}

// received passes bytes read to the watch and the tracer.
func (c *traceConn) received(p []byte, err error) {
	n := len(p)
	c.errMu.Lock()
	c.watch.feed(p[:n])
	// Closing the connection ourselves is not why it ended: the reason
	// that made us close it (a missed ping response, say) is.
	if err != nil && c.firstErr == nil && !errors.Is(err, net.ErrClosed) {
		c.firstErr = err
	}
	c.errMu.Unlock()
	if c.trace != nil && n > 0 {
		c.in.feed(p[:n], func(raw []byte) { c.trace.log("received", raw) })
	}
}

// maxBatch is how much a packet's writes are gathered up to; a larger piece
// goes to the send queue on its own instead of into the batch (the queue
// copies it unless it is beyond its own bound, maxQueued).
const maxBatch = 64 << 10

func (c *traceConn) Lock() {
	c.mu.Lock()
	c.batching = true
}

// LockCtx is Lock for a packet whose waits for room in the send queue end
// with ctx (a publish whose caller gave up on a broker that stopped
// reading): then nothing of it was queued and UnlockErr or the Write
// returns a *NotQueuedError, or, if a part of it was already queued, the
// connection is aborted, since the rest of the stream cannot follow.
func (c *traceConn) LockCtx(ctx context.Context) {
	c.Lock()
	c.ctx, c.partial = ctx, false
}

func (c *traceConn) Unlock() {
	_ = c.UnlockErr() // a write error is sticky: writeErr reports it
}

// UnlockErr is Unlock, returning the error of queueing what was gathered.
func (c *traceConn) UnlockErr() error {
	err := c.flush()
	c.batching = false
	c.ctx, c.partial = nil, false
	if cap(c.batch) > maxBatch {
		c.batch = nil
	}
	c.mu.Unlock()
	return err
}

// flush queues the gathered packet; the lock is held.
func (c *traceConn) flush() error {
	var err error
	if len(c.batch) > 0 {
		err = c.queue(c.batch)
	}
	c.batch = c.batch[:0]
	return err
}

// queue puts p in the send queue; the lock is held (see LockCtx).
func (c *traceConn) queue(p []byte) error {
	err := c.q.putCtx(c.ctx, p)
	switch {
	case err == nil:
		c.partial = true
	case c.partial && notQueued(err):
		c.q.abort()
		c.partial = false
		return errCutShort
	}
	return err
}

// errCutShort is a write given up with part of its packet already queued:
// the connection is aborted.
var errCutShort = fmt.Errorf("gave up in the middle of a packet the broker is not reading: %w", net.ErrClosed)

// lockedWriter writes to c, whose lock the caller holds: a packet's WriteTo
// (which takes the lock itself when the writer is a sync.Locker) gathers its
// pieces under LockCtx through it.
type lockedWriter struct{ c *traceConn }

func (w lockedWriter) Write(p []byte) (int, error) { return w.c.Write(p) }

// writeErr is the error of the first write that failed, including one of a
// packet queued after the writer's Write had returned.
func (c *traceConn) writeErr() error { return c.q.writeErr() }

func (c *traceConn) Write(p []byte) (int, error) {
	// Traced before it is written, so that the reply is never logged first.
	if c.trace != nil {
		c.out.feed(p, func(raw []byte) { c.trace.log("sending", raw) })
	}
	if !c.batching {
		if err := c.q.put(p); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	if len(c.batch)+len(p) <= maxBatch {
		c.batch = append(c.batch, p...)
		return len(p), nil
	}
	if err := c.flush(); err != nil {
		return 0, err
	}
	if err := c.queue(p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// packetWriter is the connection as the MQTT 3.1.1 backend writes to it.
// paho.mqtt.golang writes each packet with one Write, from more than one
// goroutine (keep-alive pings are written directly), and never takes the
// lock itself: here each Write takes it, so packets (and their trace lines)
// never interleave.
type packetWriter struct{ *traceConn }

func (w packetWriter) Write(p []byte) (int, error) {
	w.Lock()
	defer w.Unlock()
	n, err := w.traceConn.Write(p)
	if err == nil {
		if err = w.flush(); err != nil {
			n = 0
		}
	}
	return n, err
}

// serverDisconnect is the DISCONNECT the broker sent, if it sent one.
func (c *traceConn) serverDisconnect() *packets.Disconnect {
	c.errMu.Lock()
	defer c.errMu.Unlock()
	return c.watch.got
}

// firstConnack is the body of the first packet received if that is a
// complete CONNACK, and whether it is. An MQTT 5 CONNACK has a body of at
// least 3 bytes; an MQTT 3.1.1 or 3.1 one, of exactly 2.
func (c *traceConn) firstConnack() ([]byte, bool) {
	c.errMu.Lock()
	defer c.errMu.Unlock()
	return c.watch.connack, c.watch.connackDone
}

// answered reports whether the broker sent anything at all.
func (c *traceConn) answered() bool {
	c.errMu.Lock()
	defer c.errMu.Unlock()
	return c.watch.packets > 0 || c.watch.state != 0
}

// inboundWatch follows packet boundaries in the incoming stream without
// copying it. It keeps the broker's DISCONNECT (MQTT 5), so that the reason
// a connection ended is known before paho reports it (paho reports it
// asynchronously, after the connection is already marked closed), and the
// body of a first packet that is a CONNACK, which tells an MQTT 3.1.1
// broker's answer to an MQTT 5 CONNECT apart (paho cannot decode it).
type inboundWatch struct {
	v3        bool // MQTT 3.1.1 or 3.1: a broker sends no DISCONNECT
	state     int  // 0: type byte, 1: remaining length, 2: body
	typ       byte
	remaining int
	mult      int
	body      []byte // kept for DISCONNECT and the first CONNACK only
	packets   int    // complete packets seen
	got       *packets.Disconnect

	connack     []byte
	connackDone bool
}

func (w *inboundWatch) keep() bool {
	return (w.typ == packets.DISCONNECT && !w.v3) || (w.typ == packets.CONNACK && w.packets == 0)
}

func (w *inboundWatch) feed(p []byte) {
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
			if w.keep() {
				w.body = append(w.body, p[:n]...)
			}
			p, w.remaining = p[n:], w.remaining-n
			if w.remaining == 0 {
				w.done()
			}
		}
	}
}

func (w *inboundWatch) done() {
	w.state = 0
	switch {
	case w.typ == packets.CONNACK && w.packets == 0:
		w.connack, w.connackDone = w.body, true
	case w.typ == packets.DISCONNECT && !w.v3:
		d := &packets.Disconnect{Properties: &packets.Properties{}}
		if len(w.body) > 0 {
			_ = d.Unpack(bytes.NewBuffer(w.body))
		}
		w.got = d
	}
	w.packets++
}

// splitter cuts a byte stream into MQTT packets.
type splitter struct{ buf []byte }

// feed adds p and calls emit with each complete packet (its fixed header
// and body); the slice is only valid during the call.
func (s *splitter) feed(p []byte, emit func(raw []byte)) {
	s.buf = append(s.buf, p...)
	for {
		total, _ := packetHeader(s.buf)
		if total <= 0 || len(s.buf) < total {
			return // header or packet incomplete (or malformed: nothing to print)
		}
		emit(s.buf[:total])
		s.buf = append(s.buf[:0], s.buf[total:]...)
	}
}

// log prints one packet, decoded for the tracer's protocol version; a
// packet that does not decode is not printed.
func (t *tracer) log(dir string, raw []byte) {
	version := t.version
	var cp *packets.ControlPacket
	var err error
	if version == V311 || version == V31 {
		cp, err = decodeV3(raw)
	} else {
		cp, err = packets.ReadPacket(bytes.NewReader(raw))
		if err != nil && raw[0]>>4 == packets.CONNACK && len(raw) == 4 {
			// An MQTT 3.1.1 or 3.1 broker's answer to an MQTT 5 CONNECT.
			version = V311
			cp, err = decodeV3(raw)
		}
	}
	if err != nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	fmt.Fprintf(t.w, "Client %s %s %s\n", t.clientID, dir, describe(cp, version))
}

// decodeV3 decodes an MQTT 3.1.1 or 3.1 packet into the MQTT 5 packet that
// has the same fields (and no properties), for describe.
func decodeV3(raw []byte) (*packets.ControlPacket, error) {
	p, err := v3packets.ReadPacket(bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	cp := &packets.ControlPacket{FixedHeader: packets.FixedHeader{Type: raw[0] >> 4}}
	switch p := p.(type) {
	case *v3packets.ConnectPacket:
		cp.Content = &packets.Connect{
			ProtocolName: p.ProtocolName, ProtocolVersion: p.ProtocolVersion, CleanStart: p.CleanSession,
			KeepAlive: p.Keepalive, UsernameFlag: p.UsernameFlag, PasswordFlag: p.PasswordFlag,
			WillFlag: p.WillFlag, WillQOS: p.WillQos, WillRetain: p.WillRetain, WillTopic: p.WillTopic,
		}
	case *v3packets.ConnackPacket:
		cp.Content = &packets.Connack{SessionPresent: p.SessionPresent, ReasonCode: p.ReturnCode}
	case *v3packets.PublishPacket:
		cp.Content = &packets.Publish{
			Duplicate: p.Dup, QoS: p.Qos, Retain: p.Retain, PacketID: p.MessageID, Topic: p.TopicName, Payload: p.Payload,
		}
	case *v3packets.PubackPacket:
		cp.Content = &packets.Puback{PacketID: p.MessageID}
	case *v3packets.PubrecPacket:
		cp.Content = &packets.Pubrec{PacketID: p.MessageID}
	case *v3packets.PubrelPacket:
		cp.Content = &packets.Pubrel{PacketID: p.MessageID}
	case *v3packets.PubcompPacket:
		cp.Content = &packets.Pubcomp{PacketID: p.MessageID}
	case *v3packets.SubscribePacket:
		s := &packets.Subscribe{PacketID: p.MessageID}
		for i, topic := range p.Topics {
			s.Subscriptions = append(s.Subscriptions, packets.SubOptions{Topic: topic, QoS: p.Qoss[i]})
		}
		cp.Content = s
	case *v3packets.SubackPacket:
		cp.Content = &packets.Suback{PacketID: p.MessageID, Reasons: p.ReturnCodes}
	case *v3packets.UnsubscribePacket:
		cp.Content = &packets.Unsubscribe{PacketID: p.MessageID, Topics: p.Topics}
	case *v3packets.UnsubackPacket:
		cp.Content = &packets.Unsuback{PacketID: p.MessageID}
	case *v3packets.PingreqPacket:
		cp.Content = &packets.Pingreq{}
	case *v3packets.PingrespPacket:
		cp.Content = &packets.Pingresp{}
	case *v3packets.DisconnectPacket:
		cp.Content = &packets.Disconnect{}
	default:
		return nil, fmt.Errorf("packet type %d", cp.Type)
	}
	return cp, nil
}

func bit(b bool) int {
	if b {
		return 1
	}
	return 0
}

// describe renders a packet as mosquitto -d does, without secrets. version
// is the protocol it was decoded for (MQTT 3.1.1 and 3.1 have no reason
// codes but CONNACK's return code, and no properties).
func describe(cp *packets.ControlPacket, version int) string {
	v3 := version == V311 || version == V31
	switch p := cp.Content.(type) {
	case *packets.Connect:
		s := fmt.Sprintf("CONNECT (v%d, c%d, k%d, u%d, p%d", p.ProtocolVersion, bit(p.CleanStart), p.KeepAlive, bit(p.UsernameFlag), bit(p.PasswordFlag))
		if p.WillFlag {
			s += fmt.Sprintf(", will q%d r%d '%s'", p.WillQOS, bit(p.WillRetain), p.WillTopic)
		}
		return s + ")"
	case *packets.Connack:
		return fmt.Sprintf("CONNACK (%d, %s)", p.ReasonCode, ConnackName(version, p.ReasonCode))
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
		if v3 {
			return fmt.Sprintf("UNSUBACK (Mid: %d)", p.PacketID)
		}
		return fmt.Sprintf("UNSUBACK (Mid: %d, %v)", p.PacketID, p.Reasons)
	case *packets.Disconnect:
		if v3 {
			return "DISCONNECT"
		}
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

// An MQTT Variable Byte Integer (a remaining length) is an unsigned varint
// of at most four bytes: binary.AppendUvarint writes one, and packetHeader
// reads one.

// packetHeader reads the fixed header at the start of b: the packet's total
// length and the header's. total is 0 while b holds too little of the
// header to tell, -1 if its remaining length is malformed (more than four
// bytes).
func packetHeader(b []byte) (total, hdr int) {
	if len(b) < 2 {
		return 0, 0
	}
	n, k := binary.Uvarint(b[1:min(len(b), 5)])
	switch {
	case k > 0:
		return 1 + k + int(n), 1 + k
	case len(b) < 5: // the four bytes a length may take are not all here
		return 0, 0
	}
	return -1, 0
}
