package mqttc

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"
)

// randomPublish is a PUBLISH of the kinds a broker sends: QoS 0, 1 or 2
// (resent or not), retained or not, with or without properties, a payload
// from empty to beyond the read buffer; ids count the packet identifiers.
func randomPublish(rng *rand.Rand, ids *uint16) *packets.Publish {
	p := &packets.Publish{
		Topic:      strings.Repeat("t/", 100)[:1+rng.IntN(150)],
		Retain:     rng.IntN(4) == 0,
		Properties: &packets.Properties{},
	}
	switch n := rng.IntN(20); {
	case n == 0:
		p.Payload = bytes.Repeat([]byte{'b'}, readBuffer+rng.IntN(1000)) // paho reads it
	case n < 4:
		p.Payload = []byte{}
	default:
		p.Payload = make([]byte, rng.IntN(300))
		for i := range p.Payload {
			p.Payload[i] = byte(rng.IntN(256))
		}
	}
	if rng.IntN(3) == 0 {
		*ids++
		p.QoS, p.PacketID = byte(1+rng.IntN(2)), *ids
	}
	p.Duplicate = rng.IntN(4) == 0 // at QoS 0 too: malformed, but paho passes it on
	if rng.IntN(5) == 0 {
		sid, exp := 1+rng.IntN(1000), uint32(rng.IntN(100))
		p.Properties.ContentType = "text/plain"
		p.Properties.SubscriptionIdentifier = &sid
		p.Properties.MessageExpiry = &exp
		p.Properties.User = []packets.User{{Key: "k", Value: "v"}}
	}
	return p
}

// subscribeScripted makes cl subscribe, b granting it: as for a real
// subscriber, the SUBACK, read by paho, comes before the messages.
func subscribeScripted(t *testing.T, cl Client, b *scriptedBroker) {
	t.Helper()
	subscribed := make(chan error, 1)
	go func() {
		_, err := cl.Subscribe(context.Background(), []Subscription{{Filter: "#"}}, SubscribeOptions{})
		subscribed <- err
	}()
	sub := b.next().Content.(*packets.Subscribe)
	if _, err := (&packets.Suback{PacketID: sub.PacketID, Reasons: []byte{0}, Properties: &packets.Properties{}}).WriteTo(b.conn); err != nil {
		t.Fatal(err)
	}
	if err := <-subscribed; err != nil {
		t.Fatal(err)
	}
}

// asPaho is what the handler got for a PUBLISH before this package decoded
// any itself: paho's decoding, then fromPaho.
func asPaho(t *testing.T, wire []byte) *Message {
	t.Helper()
	cp, err := packets.ReadPacket(bytes.NewReader(wire))
	if err != nil {
		t.Fatal(err)
	}
	m := fromPaho(paho.PublishFromPacketPublish(cp.Content.(*packets.Publish)))
	m.Received = time.Time{}
	return m
}

// TestReceiveAsPaho: whichever way a PUBLISH goes (decoded here, see
// takePackets, or by paho), the handler gets the same Message paho's
// decoding gave, in the order they came, one at a time; and -d traces every
// one.
func TestReceiveAsPaho(t *testing.T) {
	trace := &syncWriter{w: &bytes.Buffer{}}
	var inside atomic.Int32
	var overlap atomic.Bool
	got := make(chan *Message, 1000)
	cl, b := startScripted(t, &packets.Connack{Properties: &packets.Properties{}}, func(m *Message) {
		if inside.Add(1) > 1 {
			overlap.Store(true)
		}
		got <- m
		inside.Add(-1)
	}, trace)
	subscribeScripted(t, cl, b)
	rng := rand.New(rand.NewPCG(1, 2))
	var ids uint16
	var stream bytes.Buffer
	var want []*Message
	plain := 0
	for range 1000 {
		p := randomPublish(rng, &ids)
		var wire bytes.Buffer
		if _, err := p.WriteTo(&wire); err != nil {
			t.Fatal(err)
		}
		if p.Properties.ContentType == "" && len(p.Payload) < readBuffer/2 {
			plain++
		}
		want = append(want, asPaho(t, wire.Bytes()))
		stream.Write(wire.Bytes())
	}
	if plain < 400 {
		t.Fatalf("only %d of the packets are ones takePackets decodes", plain)
	}
	go func() { _, _ = b.conn.Write(stream.Bytes()) }()
	for i, w := range want {
		var m *Message
		select {
		case m = <-got:
		case <-time.After(time.Minute): // a bound against a hang only
			t.Fatalf("message %d of %d did not arrive", i, len(want))
		}
		if m.Received.IsZero() {
			t.Fatalf("message %d: no Received time", i)
		}
		m.Received = time.Time{}
		if !reflect.DeepEqual(m, w) {
			t.Fatalf("message %d:\n got %+v\nwant %+v", i, m, w)
		}
	}
	if overlap.Load() {
		t.Fatal("the handler was called while it was running")
	}
	if n := strings.Count(trace.String(), "received PUBLISH"); n != len(want) {
		t.Fatalf("trace shows %d PUBLISHes, want %d", n, len(want))
	}
	// Each QoS 1 and 2 message is acknowledged once handled, in order.
	for i, w := range want {
		if w.QoS == 0 {
			continue
		}
		var qos byte
		var id uint16
		switch a := b.next().Content.(type) {
		case *packets.Puback:
			qos, id = 1, a.PacketID
		case *packets.Pubrec:
			qos, id = 2, a.PacketID
		}
		if qos != w.QoS || id != w.PacketID {
			t.Fatalf("message %d (QoS %d, id %d): acknowledged as QoS %d, id %d", i, w.QoS, w.PacketID, qos, id)
		}
	}
}

// TestReceiveOrderAcrossPaths: while the handler of a first message (QoS 1
// with a property, decoded by paho, or QoS 0, decoded here) waits, QoS 0 PUBLISHes decoded
// here queue behind it and the reader goes on reading (a PINGRESP after
// them is read, so a subscriber whose output is stalled still answers
// keep-alive); messages reach the handler one at a time, in order.
func TestReceiveOrderAcrossPaths(t *testing.T) {
	for _, first := range []byte{1, 0} {
		t.Run(fmt.Sprintf("first-qos%d", first), func(t *testing.T) { testReceiveOrder(t, first) })
	}
}

func testReceiveOrder(t *testing.T, firstQoS byte) {
	release := make(chan struct{})
	var inside atomic.Int32
	var overlap atomic.Bool
	got := make(chan byte, 3)
	trace := &syncWriter{w: &bytes.Buffer{}}
	cl, b := startScripted(t, &packets.Connack{Properties: &packets.Properties{}}, func(m *Message) {
		if inside.Add(1) > 1 {
			overlap.Store(true)
		}
		if m.Payload[0] == 0 {
			<-release
		}
		got <- m.Payload[0]
		inside.Add(-1)
	}, trace)
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { close(release) }) }) // before Disconnect's, if the test fails
	subscribeScripted(t, cl, b)
	var stream bytes.Buffer
	for i, qos := range []byte{firstQoS, 0, 0} {
		p := &packets.Publish{Topic: "o", QoS: qos, Payload: []byte{byte(i)}, Properties: &packets.Properties{}}
		if qos > 0 {
			p.PacketID = 1
			p.Properties.ContentType = "text/plain" // so paho decodes it
		}
		if _, err := p.WriteTo(&stream); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := packets.NewControlPacket(packets.PINGRESP).WriteTo(&stream); err != nil {
		t.Fatal(err)
	}
	if _, err := b.conn.Write(stream.Bytes()); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute) // a bound against a hang only
	for !strings.Contains(trace.String(), "received PINGRESP") {
		if time.Now().After(deadline) {
			t.Fatalf("the reader did not get past the messages while a handler ran:\n%s", trace.String())
		}
		time.Sleep(time.Millisecond) // poll interval of a condition wait
	}
	if len(got) > 0 || overlap.Load() {
		t.Fatal("a message reached the handler before the one before it was handled")
	}
	once.Do(func() { close(release) })
	for i := range 3 {
		if p := <-got; p != byte(i) {
			t.Fatalf("message %d came as number %d", p, i)
		}
	}
	if overlap.Load() {
		t.Fatal("the handler was called while it was running")
	}
}

// TestReceiveAllocs: a PUBLISH without properties costs the receiving
// client 8 allocations at QoS 0 (the packet, its topic and payload, and
// paho's and our message structs) and 9 at QoS 1 (its PUBACK too), not
// paho's decoding as well (26 more).
func TestReceiveAllocs(t *testing.T) {
	for _, c := range []struct {
		qos  byte
		want float64
	}{{0, 8}, {1, 9}} {
		t.Run(fmt.Sprintf("qos%d", c.qos), func(t *testing.T) {
			const n = 200
			got := make(chan *Message, n)
			cl, b := startScripted(t, &packets.Connack{Properties: &packets.Properties{}}, func(m *Message) { got <- m })
			subscribeScripted(t, cl, b)
			var stream bytes.Buffer
			for i := range n {
				p := &packets.Publish{Topic: "sensors/x", Payload: make([]byte, 100), QoS: c.qos, Properties: &packets.Properties{}}
				if c.qos > 0 {
					p.PacketID = uint16(1 + i)
				}
				if _, err := p.WriteTo(&stream); err != nil {
					t.Fatal(err)
				}
			}
			go func() { // the acknowledgements, read and dropped
				_, _ = io.Copy(io.Discard, b.conn)
			}()
			allocs := testing.AllocsPerRun(5, func() {
				if _, err := b.conn.Write(stream.Bytes()); err != nil {
					t.Fatal(err)
				}
				for range n {
					<-got
				}
			})
			if per := allocs / n; per > c.want+0.5 {
				t.Fatalf("%.1f allocations per received message, want %.0f", per, c.want)
			}
		})
	}
}

// TestReceiveMalformedLength: after a length of more than four bytes
// (malformed, but paho reads it), packets are no longer decoded here, since
// where one starts is no longer known: a packet-like run of bytes inside
// the topic is not taken for a message. Before, it was delivered, and the
// real message and the one after it were lost.
func TestReceiveMalformedLength(t *testing.T) {
	got := make(chan *Message, 10)
	cl, b := startScripted(t, &packets.Connack{Properties: &packets.Properties{}}, func(m *Message) { got <- m })
	subscribeScripted(t, cl, b)
	// The length, 1,304 in five bytes (98 8a 80 80 00), read from its
	// second byte as a packet's header, says 5+10 bytes: that "packet" ends
	// 10 bytes into the body, where the topic holds the bytes of a QoS 0
	// PUBLISH "x": "p".
	topic := append(append(bytes.Repeat([]byte{'a'}, 8), 0x30, 5, 0, 1, 'x', 0, 'p'), bytes.Repeat([]byte{'a'}, 1300-15)...)
	body := append(append([]byte{byte(len(topic) >> 8), byte(len(topic))}, topic...), 0, 'r') // no properties, payload "r"
	n := len(body)
	if n>>7 != 10 {
		t.Fatalf("body of %d bytes", n)
	}
	var stream bytes.Buffer
	stream.Write([]byte{0x30, byte(n&0x7f) | 0x80, byte(n>>7) | 0x80, 0x80, 0x80, 0})
	stream.Write(body)
	if _, err := (&packets.Publish{Topic: "z", Payload: []byte("ok"), Properties: &packets.Properties{}}).WriteTo(&stream); err != nil {
		t.Fatal(err)
	}
	var want []string
	for r := bytes.NewReader(stream.Bytes()); r.Len() > 0; {
		cp, err := packets.ReadPacket(r)
		if err != nil {
			t.Fatal(err)
		}
		p := cp.Content.(*packets.Publish)
		want = append(want, p.Topic+" "+string(p.Payload))
	}
	if _, err := b.conn.Write(stream.Bytes()); err != nil {
		t.Fatal(err)
	}
	for i, w := range want {
		select {
		case m := <-got:
			if g := m.Topic + " " + string(m.Payload); g != w {
				t.Fatalf("message %d: %.20q, want %.20q (paho's decoding)", i, g, w)
			}
		case <-time.After(time.Minute): // a bound against a hang only
			t.Fatalf("message %d (%q) did not arrive", i, w)
		}
	}
}

// TestReceiveResetMidPacket: a connection reset while a PUBLISH is only
// partly read is reported as such (bufio reports a read error to the
// Peek that met it, once; paho's next read then saw only EOF).
func TestReceiveResetMidPacket(t *testing.T) {
	cl, b := startScripted(t, &packets.Connack{Properties: &packets.Properties{}}, func(*Message) {})
	subscribeScripted(t, cl, b)
	var wire bytes.Buffer
	if _, err := (&packets.Publish{Topic: "t", Payload: make([]byte, 100), Properties: &packets.Properties{}}).WriteTo(&wire); err != nil {
		t.Fatal(err)
	}
	if _, err := b.conn.Write(wire.Bytes()[:10]); err != nil {
		t.Fatal(err)
	}
	_ = b.conn.(*net.TCPConn).SetLinger(0) // Close sends RST
	b.conn.Close()
	select {
	case <-cl.Done():
	case <-time.After(time.Minute): // a bound against a hang only
		t.Fatal("the reset went unnoticed")
	}
	if err := cl.Err(); err == nil || !strings.Contains(err.Error(), "reset") {
		t.Fatalf("Err() = %v, want a connection reset", err)
	}
}
