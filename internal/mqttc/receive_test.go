package mqttc

import (
	"bytes"
	"math/rand/v2"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"
)

// randomPublish is a PUBLISH of the kinds a broker sends: QoS 0 or 1,
// retained or not, with or without properties, a payload from empty to
// beyond the read buffer; ids count the QoS 1 packet identifiers.
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
	if rng.IntN(4) == 0 {
		*ids++
		p.QoS, p.PacketID = 1, *ids
	}
	if rng.IntN(5) == 0 {
		sid, exp := 1+rng.IntN(1000), uint32(rng.IntN(100))
		p.Properties.ContentType = "text/plain"
		p.Properties.SubscriptionIdentifier = &sid
		p.Properties.MessageExpiry = &exp
		p.Properties.User = []packets.User{{Key: "k", Value: "v"}}
	}
	return p
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
	_, b := startScripted(t, &packets.Connack{Properties: &packets.Properties{}}, func(m *Message) {
		if inside.Add(1) > 1 {
			overlap.Store(true)
		}
		got <- m
		inside.Add(-1)
	}, trace)
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
		if p.QoS == 0 && p.Properties.ContentType == "" && len(p.Payload) < readBuffer/2 {
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
}

// TestReceiveOrderAcrossPaths: a QoS 0 PUBLISH that could be decoded here
// waits for the handler of the QoS 1 PUBLISH before it, which paho has; the
// handler is never called twice at once, and messages keep their order.
func TestReceiveOrderAcrossPaths(t *testing.T) {
	release := make(chan struct{})
	var inside atomic.Int32
	var overlap atomic.Bool
	got := make(chan byte, 3)
	cl, b := startScripted(t, &packets.Connack{Properties: &packets.Properties{}}, func(m *Message) {
		if inside.Add(1) > 1 {
			overlap.Store(true)
		}
		if m.QoS == 1 {
			<-release
		}
		got <- m.Payload[0]
		inside.Add(-1)
	})
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { close(release) }) }) // before Disconnect's, if the test fails
	var stream bytes.Buffer
	for i, qos := range []byte{1, 0, 0} {
		p := &packets.Publish{Topic: "o", QoS: qos, Payload: []byte{byte(i)}, Properties: &packets.Properties{}}
		if qos > 0 {
			p.PacketID = 1
		}
		if _, err := p.WriteTo(&stream); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.conn.Write(stream.Bytes()); err != nil {
		t.Fatal(err)
	}
	// The first QoS 0 PUBLISH is read while the QoS 1 one is paho's: it
	// goes to paho too (toPaho counts 2), or, wrongly, to the handler at
	// once (before or while the QoS 1 one's handler runs, which waits for
	// release).
	tc := cl.(*v5Client).conn
	deadline := time.Now().Add(time.Minute) // a bound against a hang only
	for tc.toPaho.Load() < 2 && !overlap.Load() && len(got) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the QoS 0 message was neither left to paho nor handled")
		}
		time.Sleep(time.Millisecond) // poll interval of a condition wait
	}
	if len(got) > 0 || overlap.Load() {
		t.Fatal("a QoS 0 message reached the handler before the QoS 1 message before it was handled")
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

// TestReceiveAllocs: a plain QoS 0 PUBLISH costs the receiving client its
// Message, topic and payload, not paho's decoding (26 allocations before),
// also after a PUBLISH that paho decoded.
func TestReceiveAllocs(t *testing.T) {
	const n = 200
	got := make(chan *Message, n)
	_, b := startScripted(t, &packets.Connack{Properties: &packets.Properties{}}, func(m *Message) { got <- m })
	if _, err := (&packets.Publish{Topic: "q", QoS: 1, PacketID: 1, Properties: &packets.Properties{}}).WriteTo(b.conn); err != nil {
		t.Fatal(err)
	}
	<-got
	var stream bytes.Buffer
	for range n {
		p := &packets.Publish{Topic: "sensors/x", Payload: make([]byte, 100), Properties: &packets.Properties{}}
		if _, err := p.WriteTo(&stream); err != nil {
			t.Fatal(err)
		}
	}
	allocs := testing.AllocsPerRun(5, func() {
		if _, err := b.conn.Write(stream.Bytes()); err != nil {
			t.Fatal(err)
		}
		for range n {
			<-got
		}
	})
	if per := allocs / n; per > 4 {
		t.Fatalf("%.1f allocations per received message, want at most 4", per)
	}
}
