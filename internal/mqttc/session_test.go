package mqttc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
)

// scriptedBroker accepts one connection, answers CONNECT with connack, and
// hands the connection to the test, which plays the broker's side packet by
// packet with paho's codec.
type scriptedBroker struct {
	t    *testing.T
	conn net.Conn
}

func startScripted(t *testing.T, connack *packets.Connack, onMsg func(*Message), trace ...io.Writer) (Client, *scriptedBroker) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := acceptScripted(ln, func(c net.Conn) error {
		if _, err := packets.ReadPacket(c); err != nil { // CONNECT
			return err
		}
		_, err := connack.WriteTo(c)
		return err
	})
	addr := ln.Addr().(*net.TCPAddr)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cfg := Config{
		Endpoint: Endpoint{Scheme: "mqtt", Host: "127.0.0.1", Port: addr.Port}, ProtocolVersion: V5,
		ClientID: "scripted", CleanStart: true, OnMessage: onMsg,
	}
	if len(trace) > 0 {
		cfg.Trace = trace[0]
	}
	cl, err := Dial(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	conn := <-got
	if conn == nil {
		t.Fatal("the scripted broker saw no CONNECT")
	}
	t.Cleanup(func() { conn.Close(); cl.Disconnect(context.Background()) })
	return cl, &scriptedBroker{t: t, conn: conn}
}

// acceptScripted accepts one connection on ln and runs handshake on it
// (reads CONNECT, answers it). The channel yields the connection then, or
// nil if either failed.
func acceptScripted(ln net.Listener, handshake func(net.Conn) error) <-chan net.Conn {
	got := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(got)
			return
		}
		if err := handshake(c); err != nil {
			c.Close()
			close(got)
			return
		}
		got <- c
	}()
	return got
}

// next reads the next packet the client sends, skipping PINGREQ.
func (b *scriptedBroker) next() *packets.ControlPacket {
	b.t.Helper()
	for {
		_ = b.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		cp, err := packets.ReadPacket(b.conn)
		if err != nil {
			b.t.Fatalf("reading from the client: %v", err)
		}
		if cp.Type != packets.PINGREQ {
			return cp
		}
	}
}

func (b *scriptedBroker) send(p interface {
	WriteTo(io.Writer) (int64, error)
}) {
	b.t.Helper()
	if _, err := p.WriteTo(b.conn); err != nil {
		b.t.Fatal(err)
	}
}

// TestSessionQuota: with the broker's Receive Maximum at 3, the fourth
// QoS 1 publish waits for an acknowledgement, and identifiers are unique
// among those in flight.
func TestSessionQuota(t *testing.T) {
	rm := uint16(3)
	cl, b := startScripted(t, &packets.Connack{Properties: &packets.Properties{ReceiveMaximum: &rm}}, nil)
	ctx := context.Background()
	var pend []Pending
	for i := 0; i < 3; i++ {
		p, err := cl.PublishAsync(ctx, &Message{Topic: "q", Payload: []byte{byte(i)}, QoS: 1})
		if err != nil {
			t.Fatal(err)
		}
		pend = append(pend, p)
	}
	ids := map[uint16]bool{}
	for i := 0; i < 3; i++ {
		pb := b.next().Content.(*packets.Publish)
		if ids[pb.PacketID] || pb.PacketID == 0 {
			t.Fatalf("packet identifier %d reused or zero", pb.PacketID)
		}
		ids[pb.PacketID] = true
	}
	fourth := make(chan error, 1)
	go func() {
		p, err := cl.PublishAsync(ctx, &Message{Topic: "q", Payload: []byte{3}, QoS: 1})
		if err == nil {
			err = p.Wait(ctx)
		}
		fourth <- err
	}()
	// With the quota used up, a publish waits: this one until its deadline.
	tctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	_, err := cl.PublishAsync(tctx, &Message{Topic: "q", QoS: 1})
	cancel()
	var te *TimeoutError
	if !errors.As(err, &te) {
		t.Fatalf("a fifth publish with the quota used up: %v, want it to wait until its deadline", err)
	}
	var first uint16
	for id := range ids {
		first = id
		break
	}
	b.send(&packets.Puback{PacketID: first})
	pb := b.next().Content.(*packets.Publish)
	if len(pb.Payload) != 1 || pb.Payload[0] != 3 {
		t.Fatalf("after one PUBACK the client sent %v, want the fourth publish", pb.Payload)
	}
	if ids[pb.PacketID] && pb.PacketID != first {
		t.Fatalf("identifier %d is still in flight", pb.PacketID)
	}
	for id := range ids {
		if id != first {
			b.send(&packets.Puback{PacketID: id})
		}
	}
	// With a reason string, the PUBACK goes to paho's decoder (takePackets
	// takes only those without properties): the reason reaches the error.
	b.send(&packets.Puback{PacketID: pb.PacketID, ReasonCode: 0x87, Properties: &packets.Properties{ReasonString: "not you"}})
	for _, p := range pend {
		if err := p.Wait(ctx); err != nil {
			t.Fatal(err)
		}
	}
	var re *RejectedError
	if err := <-fourth; !errors.As(err, &re) || re.Code != 0x87 || re.Reason != "not you" {
		t.Fatalf("fourth publish: %v, want rejected with 0x87, not you", err)
	}
}

// TestSessionQoS2: the outbound flow (PUBREC, PUBREL, PUBCOMP; a refusing
// PUBREC ends it; an unknown PUBREC is answered 0x92) and the inbound one (a
// resent duplicate is acknowledged but not delivered twice).
func TestSessionQoS2(t *testing.T) {
	got := make(chan *Message, 10)
	cl, b := startScripted(t, &packets.Connack{Properties: &packets.Properties{}}, func(m *Message) { got <- m })
	ctx := context.Background()

	p, err := cl.PublishAsync(ctx, &Message{Topic: "q2", Payload: []byte("x"), QoS: 2})
	if err != nil {
		t.Fatal(err)
	}
	id := b.next().Content.(*packets.Publish).PacketID
	b.send(&packets.Pubrec{PacketID: id})
	if rel := b.next().Content.(*packets.Pubrel); rel.PacketID != id || rel.ReasonCode != 0 {
		t.Fatalf("PUBREL %d/%#x, want %d/0", rel.PacketID, rel.ReasonCode, id)
	}
	b.send(&packets.Pubcomp{PacketID: id})
	if err := p.Wait(ctx); err != nil {
		t.Fatal(err)
	}

	p, err = cl.PublishAsync(ctx, &Message{Topic: "q2", Payload: []byte("y"), QoS: 2})
	if err != nil {
		t.Fatal(err)
	}
	id = b.next().Content.(*packets.Publish).PacketID
	b.send(&packets.Pubrec{PacketID: id, ReasonCode: 0x97})
	var re *RejectedError
	if err := p.Wait(ctx); !errors.As(err, &re) || re.Code != 0x97 {
		t.Fatalf("refused QoS 2 publish: %v, want rejected with 0x97", err)
	}

	b.send(&packets.Pubrec{PacketID: 4242})
	if rel := b.next().Content.(*packets.Pubrel); rel.PacketID != 4242 || rel.ReasonCode != 0x92 {
		t.Fatalf("unknown PUBREC answered %d/%#x, want 4242/0x92", rel.PacketID, rel.ReasonCode)
	}

	in := &packets.Publish{Topic: "in", Payload: []byte("once"), QoS: 2, PacketID: 9, Properties: &packets.Properties{}}
	b.send(in)
	if rec := b.next().Content.(*packets.Pubrec); rec.PacketID != 9 {
		t.Fatalf("PUBREC for %d, want 9", rec.PacketID)
	}
	in.Duplicate = true
	b.send(in)
	if rec := b.next().Content.(*packets.Pubrec); rec.PacketID != 9 {
		t.Fatalf("PUBREC for the duplicate: %d, want 9", rec.PacketID)
	}
	b.send(&packets.Pubrel{PacketID: 9})
	if comp := b.next().Content.(*packets.Pubcomp); comp.PacketID != 9 {
		t.Fatalf("PUBCOMP for %d, want 9", comp.PacketID)
	}
	if m := <-got; string(m.Payload) != "once" {
		t.Fatalf("delivered %q", m.Payload)
	}
	select {
	case m := <-got:
		t.Fatalf("the duplicate was delivered too (%q)", m.Payload)
	default:
	}

	b.send(&packets.Publish{Topic: "in", Payload: []byte("q1"), QoS: 1, PacketID: 10, Properties: &packets.Properties{}})
	if ack := b.next().Content.(*packets.Puback); ack.PacketID != 10 || ack.ReasonCode != 0 {
		t.Fatalf("PUBACK %d/%#x, want 10/0", ack.PacketID, ack.ReasonCode)
	}
}

// TestAppendPublish: the hand encoder writes the bytes paho's does, for
// every case it accepts, and refuses the others.
func TestAppendPublish(t *testing.T) {
	alias := uint16(513)
	big := make([]byte, 300) // a two-byte remaining length
	for i, pb := range []*packets.Publish{
		{Topic: "a/b", Payload: []byte("x"), Properties: &packets.Properties{}},
		{Topic: "a/b", Payload: []byte("x"), QoS: 1, PacketID: 258, Retain: true, Properties: &packets.Properties{}},
		{Topic: "t", Payload: big, QoS: 2, PacketID: 65535, Duplicate: true, Properties: &packets.Properties{}},
		{Topic: "", Payload: nil, QoS: 1, PacketID: 1, Properties: &packets.Properties{TopicAlias: &alias}},
		{Topic: "with/alias", Payload: []byte{0, 1, 2}, Properties: &packets.Properties{TopicAlias: &alias}},
		{Topic: "no/props", Payload: []byte("y")},
	} {
		if !plainPublish(pb) {
			t.Fatalf("case %d: not plain", i)
		}
		var want bytes.Buffer
		if _, err := pb.WriteTo(&want); err != nil {
			t.Fatal(err)
		}
		if got := appendPublish(nil, pb); !bytes.Equal(got, want.Bytes()) {
			t.Errorf("case %d:\n got %x\nwant %x", i, got, want.Bytes())
		}
		if n := packetSize(pb); n != want.Len() {
			t.Errorf("case %d: packetSize %d, encoded %d bytes", i, n, want.Len())
		}
	}
	ct, exp := "text/plain", uint32(5)
	for i, pb := range []*packets.Publish{
		{Topic: "p", Properties: &packets.Properties{ContentType: ct}},
		{Topic: "p", Properties: &packets.Properties{MessageExpiry: &exp}},
		{Topic: "p", Properties: &packets.Properties{User: []packets.User{{Key: "k", Value: "v"}}}},
		{Topic: "p", Payload: make([]byte, maxBatch)},
	} {
		if plainPublish(pb) {
			t.Errorf("case %d: taken as plain, but appendPublish would drop its properties or copy a large payload", i)
		}
		var want bytes.Buffer
		if _, err := pb.WriteTo(&want); err != nil {
			t.Fatal(err)
		}
		if n := packetSize(pb); n != want.Len() {
			t.Errorf("case %d (not plain): packetSize %d, encoded %d bytes", i, n, want.Len())
		}
	}
}

// TestPubackStream: PUBACKs taken before paho (takePackets) and packets paho
// reads, arriving together in one write, are all handled in order, and -d
// traces the PUBACKs as any other packet.
func TestPubackStream(t *testing.T) {
	trace := &syncWriter{w: &bytes.Buffer{}}
	got := make(chan *Message, 10)
	cl, b := startScripted(t, &packets.Connack{Properties: &packets.Properties{}}, func(m *Message) { got <- m }, trace)
	ctx := context.Background()
	var pend []Pending
	for i := 0; i < 3; i++ {
		p, err := cl.PublishAsync(ctx, &Message{Topic: "s", QoS: 1})
		if err != nil {
			t.Fatal(err)
		}
		pend = append(pend, p)
	}
	var stream bytes.Buffer
	for i := 0; i < 3; i++ {
		id := b.next().Content.(*packets.Publish).PacketID
		(&packets.Publish{Topic: "in", Payload: []byte{byte(i)}, Properties: &packets.Properties{}}).WriteTo(&stream)
		(&packets.Puback{PacketID: id}).WriteTo(&stream)
	}
	if _, err := b.conn.Write(stream.Bytes()); err != nil {
		t.Fatal(err)
	}
	for _, p := range pend {
		if err := p.Wait(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 3; i++ {
		if m := <-got; len(m.Payload) != 1 || m.Payload[0] != byte(i) {
			t.Fatalf("message %d: %v", i, m.Payload)
		}
	}
	if n := strings.Count(trace.String(), "received PUBACK"); n != 3 {
		t.Fatalf("trace shows %d PUBACKs, want 3:\n%s", n, trace.String())
	}
}

// TestDisconnectStalledBroker: against a broker that stopped reading, with
// the send queue full and a publisher waiting for room in it, Disconnect
// keeps to its context: the connection is aborted, and the waiting publish
// returns an error. Before, Disconnect waited for good (paho's DISCONNECT
// needs the connection's lock, which the waiting publisher held).
func TestDisconnectStalledBroker(t *testing.T) {
	cl, _ := startScripted(t, &packets.Connack{Properties: &packets.Properties{}}, nil) // and it reads nothing
	tc := cl.(*v5Client).conn
	q := tc.q
	published := flood(t, context.Background(), 0, cl, tc)
	waitForRoom(q)

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	disconnected := make(chan struct{})
	go func() { cl.Disconnect(ctx); close(disconnected) }()
	for name, ch := range map[string]<-chan struct{}{"Disconnect": disconnected, "the waiting publish": errDone(published)} {
		select {
		case <-ch:
		case <-time.After(time.Minute): // a bound against a hang only
			t.Fatalf("%s did not return after Disconnect's context ended", name)
		}
	}
}

// flood publishes 1 KiB messages of QoS qos with ctx on cl, whose
// connection is tc, until one fails, and yields that error. tc gets a small
// send buffer that TCP does not grow: once a broker that reads nothing has a
// full window, the send queue's writes block for good, and then the
// publisher.
func flood(t *testing.T, ctx context.Context, qos byte, cl Client, tc *traceConn) <-chan error {
	t.Helper()
	if err := tc.Conn.(*net.TCPConn).SetWriteBuffer(4096); err != nil {
		t.Fatal(err)
	}
	payload := bytes.Repeat([]byte("x"), 1024)
	published := make(chan error, 1)
	go func() {
		for {
			if _, err := cl.PublishAsync(ctx, &Message{Topic: "t", QoS: qos, Payload: payload}); err != nil {
				published <- err
				return
			}
		}
	}()
	return published
}

// waitForRoom returns once a publisher waits for room in q.
func waitForRoom(q *sendQueue) {
	for {
		q.mu.Lock()
		waiting := q.waiting
		q.mu.Unlock()
		if waiting > 0 {
			return
		}
		time.Sleep(time.Millisecond) // poll interval of a condition wait
	}
}

// TestPublishStalledBrokerCancel: a publish waiting for room in the send
// queue of a broker that stopped reading returns when its context ends
// (mqtk bench's stall detection and Ctrl-C), with nothing of it sent: the
// connection stays up, and a QoS 1 publish's packet identifier and place in
// the Receive Maximum are free again. Before, it waited for good.
func TestPublishStalledBrokerCancel(t *testing.T) {
	for _, qos := range []byte{0, 1} {
		t.Run(fmt.Sprintf("qos%d", qos), func(t *testing.T) {
			cl, _ := startScripted(t, &packets.Connack{Properties: &packets.Properties{}}, nil) // and it reads nothing
			c := cl.(*v5Client)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			published := flood(t, ctx, qos, cl, c.conn)
			waitForRoom(c.conn.q)
			cancel()
			select {
			case err := <-published:
				if !errors.Is(err, context.Canceled) {
					t.Fatalf("the waiting publish returned %v, want context.Canceled", err)
				}
			case <-time.After(time.Minute): // a bound against a hang only
				t.Fatal("the waiting publish did not return when its context ended")
			}
			select {
			case <-cl.Done():
				t.Fatalf("the connection ended: %v", cl.Err())
			default:
			}
			s := c.session
			s.mu.Lock()
			defer s.mu.Unlock()
			if len(s.client) != len(s.quota) {
				t.Errorf("%d transactions hold %d places in the quota", len(s.client), len(s.quota))
			}
			if qos > 0 && len(s.client) == 0 {
				t.Error("no QoS 1 publish is awaiting its PUBACK: the flood did not reach the queue")
			}
			if _, held := s.client[s.lastID]; qos > 0 && held { // the last identifier given: the publish given up
				t.Errorf("the publish given up still holds packet identifier %d", s.lastID)
			}
		})
	}
}

// TestPublishStalledBrokerCancelLarge: a publish too large for the send
// queue (written directly) to a broker that stopped reading returns when
// its context ends, though it had begun to write: the write is cut short,
// and the connection, which has part of a packet on it, ends.
func TestPublishStalledBrokerCancelLarge(t *testing.T) {
	cl, _ := startScripted(t, &packets.Connack{Properties: &packets.Properties{}}, nil) // and it reads nothing
	c := cl.(*v5Client)
	if err := c.conn.Conn.(*net.TCPConn).SetWriteBuffer(4096); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	published := make(chan error, 1)
	payload := bytes.Repeat([]byte("x"), maxQueued+1)
	go func() {
		for {
			if _, err := cl.PublishAsync(ctx, &Message{Topic: "t", Payload: payload}); err != nil {
				published <- err
				return
			}
		}
	}()
	for { // until a direct write is under way
		c.conn.q.mu.Lock()
		writing := c.conn.q.writing
		c.conn.q.mu.Unlock()
		if writing {
			break
		}
		time.Sleep(time.Millisecond) // poll interval of a condition wait
	}
	cancel()
	select {
	case err := <-published:
		if nq := (*NotQueuedError)(nil); errors.As(err, &nq) {
			t.Errorf("the publish cut short says nothing was sent: %v", err)
		}
	case <-time.After(time.Minute): // a bound against a hang only
		t.Fatal("the publish did not return when its context ended")
	}
	select {
	case <-cl.Done():
	case <-time.After(time.Minute):
		t.Fatal("the connection with part of a packet on it did not end")
	}
}

// errDone is closed once ch has yielded a value.
func errDone(ch <-chan error) <-chan struct{} {
	done := make(chan struct{})
	go func() { <-ch; close(done) }()
	return done
}

// TestSessionMaxInflight: Config.MaxInflight (pub -M) lowers the quota
// below the broker's Receive Maximum, never raises it.
func TestSessionMaxInflight(t *testing.T) {
	rm := uint16(5)
	for _, tc := range []struct{ max, want int }{{0, 5}, {2, 2}, {10, 5}} {
		s := newConnSession(tc.max)
		if err := s.ConAckReceived(io.Discard, nil, &packets.Connack{Properties: &packets.Properties{ReceiveMaximum: &rm}}); err != nil {
			t.Fatal(err)
		}
		if got := cap(s.quota); got != tc.want {
			t.Errorf("MaxInflight %d with Receive Maximum %d: quota %d, want %d", tc.max, rm, got, tc.want)
		}
	}
}
