package mqttc

import (
	"context"
	"fmt"
	"io"
	"sync"

	"github.com/eclipse/paho.golang/packets"
	paholog "github.com/eclipse/paho.golang/paho/log"
	"github.com/eclipse/paho.golang/paho/session"
)

// connSession is the session state of one MQTT 5 connection, as paho.golang
// asks of a session.SessionManager: packet identifiers, the send quota of
// the broker's Receive Maximum, and the QoS 1 and 2 flows.
//
// paho's own session.State is made for a session that outlives its
// connection: it keeps every unacknowledged packet for resending, and each
// publish costs a context, a goroutine and a copy in its store. A v5Client
// never reconnects (a new Dial has a new session; the broker keeps any
// persistent session), so none of that is needed, and on a busy publisher it
// was an eighth of the client's CPU. The flows are those of session.State
// v0.23.0 (state.go), without the store.
type connSession struct {
	mu     sync.Mutex
	conn   io.Writer // nil until CONNACK and after the connection is lost
	client map[uint16]clientPacket
	server map[uint16]bool // QoS 2 PUBLISH identifiers answered with PUBREC
	noAck  map[uint16]bool // received PUBLISHes paho's Ack must not answer (see decline)
	lastID uint16
	quota  chan struct{} // one token per PUBLISH in flight, up to Receive Maximum

	maxInflight int // the client's own bound on quota, if above 0

	// pubs is the channel paho's router reads received PUBLISHes from, as
	// paho's reader gave it to PacketReceived. Only paho's reading
	// goroutines touch it: the one waiting for CONNACK, then (started after
	// it) the one that reads on and runs takePackets.
	pubs chan<- *packets.Publish

	lostOnce sync.Once
	lost     chan struct{}
}

// clientPacket is a transaction we started: what we sent and where its
// response goes.
type clientPacket struct {
	typ  byte
	resp chan<- packets.ControlPacket
}

var _ session.SessionManager = (*connSession)(nil)

// newConnSession returns a session whose quota will be the broker's Receive
// Maximum, or maxInflight if that is above 0 and lower.
func newConnSession(maxInflight int) *connSession {
	return &connSession{client: map[uint16]clientPacket{}, server: map[uint16]bool{}, lost: make(chan struct{}), maxInflight: maxInflight}
}

// ConAckReceived starts the session on conn with the broker's Receive Maximum.
func (s *connSession) ConAckReceived(conn io.Writer, _ *packets.Connect, ca *packets.Connack) error {
	max := 65535
	if ca.Properties != nil && ca.Properties.ReceiveMaximum != nil {
		max = int(*ca.Properties.ReceiveMaximum)
	}
	if s.maxInflight > 0 {
		max = min(max, s.maxInflight)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.conn = conn
	s.quota = make(chan struct{}, max)
	return nil
}

// ConnectionLost ends the session: waiting publishes return, and no more
// responses are sent. Transactions in flight are ended by their callers,
// which watch the connection too.
func (s *connSession) ConnectionLost(*packets.Disconnect) error {
	s.mu.Lock()
	s.conn = nil
	s.mu.Unlock()
	s.lostOnce.Do(func() { close(s.lost) })
	return nil
}

// AddToSession gives p a packet identifier and, for a PUBLISH, a place in
// the send quota (waiting for one while Receive Maximum publishes are in
// flight). resp gets the response that ends the transaction.
func (s *connSession) AddToSession(ctx context.Context, p session.Packet, resp chan<- packets.ControlPacket) error {
	s.mu.Lock()
	quota := s.quota
	up := s.conn != nil
	s.mu.Unlock()
	if !up {
		return session.ErrNoConnection
	}
	pt := p.Type()
	if pt == packets.PUBLISH {
		select {
		case quota <- struct{}{}:
		default:
			select {
			case quota <- struct{}{}:
			case <-s.lost:
				return session.ErrNoConnection
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	id, ok := s.allocate()
	if !ok || s.conn == nil {
		if pt == packets.PUBLISH {
			<-quota
		}
		if !ok {
			return session.ErrPacketIdentifiersExhausted
		}
		return session.ErrNoConnection
	}
	s.client[id] = clientPacket{typ: pt, resp: resp}
	p.SetIdentifier(id)
	return nil
}

// allocate finds a free packet identifier after the last one given; s.mu is
// held.
func (s *connSession) allocate() (uint16, bool) {
	for i, id := 0, s.lastID; i < 65535; i++ {
		id++
		if id == 0 {
			id = 1
		}
		if _, used := s.client[id]; !used {
			s.lastID = id
			return id, true
		}
	}
	return 0, false
}

// forget ends the transaction id without a response: its PUBLISH was never
// sent.
func (s *connSession) forget(id uint16) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cp, ok := s.client[id]; ok {
		delete(s.client, id)
		if cp.typ == packets.PUBLISH {
			<-s.quota
		}
	}
}

// end completes the transaction id with the response recv.
func (s *connSession) end(id uint16, recv *packets.ControlPacket) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cp, ok := s.client[id]
	if !ok {
		return // a response to nothing we sent: ignored, as session.State does
	}
	delete(s.client, id)
	if cp.typ == packets.PUBLISH {
		<-s.quota
	}
	cp.resp <- *recv // buffered by every caller (AddToSession's contract)
}

// PacketReceived handles a packet with an identifier: it ends our
// transactions, answers the broker's, and passes a PUBLISH on to pubChan.
func (s *connSession) PacketReceived(recv *packets.ControlPacket, pubChan chan<- *packets.Publish) error {
	s.pubs = pubChan
	switch rp := recv.Content.(type) {
	case *packets.Suback:
		s.end(rp.PacketID, recv)
	case *packets.Unsuback:
		s.end(rp.PacketID, recv)
	case *packets.Puback:
		s.end(rp.PacketID, recv)
	case *packets.Pubcomp:
		s.end(rp.PacketID, recv)
	case *packets.Pubrec:
		s.mu.Lock()
		_, ok := s.client[rp.PacketID]
		s.mu.Unlock()
		switch {
		case !ok:
			return s.sendAck(packets.PUBREL, rp.PacketID, 0x92) // packet identifier not found
		case rp.ReasonCode >= 0x80:
			s.end(rp.PacketID, recv) // the broker refused it: the flow ends here
		default:
			return s.sendAck(packets.PUBREL, rp.PacketID, 0)
		}
	case *packets.Publish:
		if rp.QoS > 0 && rp.PacketID == 0 {
			return fmt.Errorf("received a QoS %d PUBLISH with packet identifier 0", rp.QoS)
		}
		if rp.QoS == 2 {
			s.mu.Lock()
			seen := s.server[rp.PacketID]
			s.mu.Unlock()
			if seen && rp.Duplicate {
				// Already passed on and answered with PUBREC: answer again.
				return s.Ack(rp)
			}
		}
		pubChan <- rp
	case *packets.Pubrel:
		s.mu.Lock()
		delete(s.server, rp.PacketID)
		s.mu.Unlock()
		if rp.ReasonCode >= 0x80 {
			return nil
		}
		return s.sendAck(packets.PUBCOMP, rp.PacketID, 0)
	}
	return nil
}

// decline marks a received QoS 1 or 2 PUBLISH as one paho's Ack, which it
// calls once the handler has returned, must not answer: declined by
// Config.OnMessageAck, or answered already (see dialV5).
func (s *connSession) decline(id uint16) {
	s.mu.Lock()
	if s.noAck == nil {
		s.noAck = map[uint16]bool{}
	}
	s.noAck[id] = true
	s.mu.Unlock()
}

// Ack answers a received PUBLISH once it has been handled: PUBACK for QoS 1,
// PUBREC for QoS 2 (and remembers it, to recognise a resent duplicate).
func (s *connSession) Ack(pb *packets.Publish) error {
	s.mu.Lock()
	declined := s.noAck[pb.PacketID]
	delete(s.noAck, pb.PacketID)
	s.mu.Unlock()
	if declined {
		return nil
	}
	return s.ack(pb.QoS, pb.PacketID)
}

// ack answers the received PUBLISH id of QoS qos (see Ack).
func (s *connSession) ack(qos byte, id uint16) error {
	switch qos {
	case 1:
		return s.sendAck(packets.PUBACK, id, 0)
	case 2:
		s.mu.Lock()
		s.server[id] = true
		s.mu.Unlock()
		return s.sendAck(packets.PUBREC, id, 0)
	}
	return nil
}

// sendAck writes a PUBACK, PUBREC, PUBREL or PUBCOMP without properties,
// if the connection is up: four bytes for reason 0, five for another,
// encoded here (paho's encoder allocated about a dozen times for each).
func (s *connSession) sendAck(typ byte, id uint16, reason byte) error {
	s.mu.Lock()
	conn := s.conn
	s.mu.Unlock()
	if conn == nil {
		return nil
	}
	b := []byte{typ << 4, 2, byte(id >> 8), byte(id)}
	if reason != 0 { // and no Property Length [MQTT 3.4.2.2]
		b = append(b, reason)
		b[1] = 3
	}
	if typ == packets.PUBREL {
		b[0] |= 2 // its fixed header's reserved bits [MQTT-3.6.1-1]
	}
	if l, ok := conn.(sync.Locker); ok { // a packet whole on the wire
		l.Lock()
		defer l.Unlock()
	}
	_, err := conn.Write(b)
	return err
}

func (s *connSession) Close() error                  { return nil }
func (s *connSession) SetErrorLogger(paholog.Logger) {}
func (s *connSession) SetDebugLogger(paholog.Logger) {}
