package broker

import (
	"bufio"
	"bytes"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.golang/packets"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// TestDropLogRateLimited: the messages dropped for a client are logged at
// the first, then at most once every dropLogInterval with the number
// dropped since, and what is left when the client disconnects; each client
// on its own.
func TestDropLogRateLimited(t *testing.T) {
	watch := newLogWatch()
	now := time.Unix(1_000_000, 0)
	h := &logHook{log: slog.New(watch), maxInflight: 10, now: func() time.Time { return now }}
	m := mqtt.New(&mqtt.Options{})
	a := m.NewClient(nil, "test", "a", false)
	b := m.NewClient(nil, "test", "b", false)
	drop := func(cl *mqtt.Client, n int) {
		for range n {
			h.OnPublishDropped(cl, packets.Packet{TopicName: "t", FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}})
		}
	}
	type line struct {
		client          string
		dropped, total  string
		inflightReached bool
	}
	var want []line
	check := func(when string) {
		t.Helper()
		var got []line
		for _, r := range watch.all() {
			got = append(got, line{attr(r, "client"), attr(r, "dropped"), attr(r, "total"), strings.Contains(r.Message, "--max-inflight")})
		}
		if len(got) != len(want) {
			t.Fatalf("%s: %d lines logged %v, want %d %v", when, len(got), got, len(want), want)
		}
		for i := range got {
			if got[i] != want[i] {
				t.Errorf("%s: line %d: %+v, want %+v", when, i, got[i], want[i])
			}
		}
	}

	drop(a, 100_000)
	want = append(want, line{"a", "1", "1", false})
	check("100,000 drops at once")

	now = now.Add(dropLogInterval / 2)
	drop(a, 10)
	check("more drops within the interval")

	now = now.Add(dropLogInterval / 2)
	drop(b, 1)
	want = append(want, line{"b", "1", "1", false})
	check("another client's first drop")
	for range 10 { // a's in-flight messages at the limit
		a.State.Inflight.Set(packets.Packet{PacketID: uint16(a.State.Inflight.Len() + 1)})
	}
	drop(a, 3)
	want = append(want, line{"a", "100010", "100011", true})
	check("a drop an interval after the last line")

	h.OnDisconnect(a, nil, false)
	want = append(want, line{"a", "2", "100013", false})
	check("disconnect with drops not logged")
	h.OnDisconnect(b, nil, false)
	check("disconnect with no drops not logged")

	drop(a, 1)
	want = append(want, line{"a", "1", "1", true})
	check("a drop after reconnecting")
}

// TestOfflineSessionDrops: messages to an offline session beyond the
// in-flight limit (--max-inflight) are dropped, counted in $SYS and logged
// once, not once each (mochi logged a warning for every one).
func TestOfflineSessionDrops(t *testing.T) {
	watch := newLogWatch()
	s, addr := startLoopback(t, Config{MaxInflight: 10, Logger: slog.New(watch)})
	start := time.Now()

	expiry := uint32(3600)
	sub := rawDial(t, addr)
	sub.send(t, &paho.Connect{ProtocolName: "MQTT", ProtocolVersion: 5, ClientID: "offline", KeepAlive: 600,
		Properties: &paho.Properties{SessionExpiryInterval: &expiry}})
	sub.await(t, paho.CONNACK)
	sub.send(t, &paho.Subscribe{PacketID: 1, Subscriptions: []paho.SubOptions{{Topic: "drops", QoS: 1}}, Properties: &paho.Properties{}})
	sub.await(t, paho.SUBACK)
	gone := make(chan struct{})
	if err := s.m.AddHook(&disconnectHook{id: "offline", gone: gone}, nil); err != nil {
		t.Fatal(err)
	}
	sub.send(t, &paho.Disconnect{Properties: &paho.Properties{}})
	sub.conn.Close()
	select { // routed to while still connected, the messages would be queued, not dropped at the in-flight limit
	case <-gone:
	case <-time.After(time.Minute): // a bound against a hang only
		t.Fatal("the broker did not end the offline client's connection")
	}

	const n = 1000
	pub := rawDial(t, addr)
	pub.send(t, &paho.Connect{ProtocolName: "MQTT", ProtocolVersion: 5, ClientID: "pub", CleanStart: true, KeepAlive: 600, Properties: &paho.Properties{}})
	pub.await(t, paho.CONNACK)
	var burst bytes.Buffer
	for i := 1; i <= n; i++ {
		(&paho.Publish{PacketID: uint16(i), QoS: 1, Topic: "drops", Payload: []byte("x"), Properties: &paho.Properties{}}).WriteTo(&burst)
	}
	paho.NewControlPacket(paho.PINGREQ).WriteTo(&burst)
	if _, err := pub.conn.Write(burst.Bytes()); err != nil {
		t.Fatal(err)
	}
	pub.await(t, paho.PINGRESP) // the broker has routed every message before it

	info := s.m.Info.Clone()
	if info.MessagesDropped != n-10 || info.InflightDropped != n-10 {
		t.Errorf("dropped %d messages, %d at the in-flight limit; want %d ($SYS/broker/messages/dropped)", info.MessagesDropped, info.InflightDropped, n-10)
	}
	lines := 0
	for _, r := range watch.all() {
		if r.Level < slog.LevelWarn {
			continue
		}
		lines++
		if !strings.Contains(r.Message, "dropped") || attr(r, "client") != "offline" || !strings.Contains(r.Message, "--max-inflight") {
			t.Errorf("logged %q client %q, want messages dropped for the offline client at --max-inflight", r.Message, attr(r, "client"))
		}
	}
	if max := 1 + int(time.Since(start)/dropLogInterval); lines < 1 || lines > max {
		t.Errorf("%d lines logged for %d messages dropped, want 1 to %d", lines, n-10, max)
	}
}

// disconnectHook closes gone when the client id's connection has ended.
type disconnectHook struct {
	mqtt.HookBase
	id   string
	gone chan struct{}
}

func (h *disconnectHook) ID() string { return "test-disconnect" }

func (h *disconnectHook) Provides(b byte) bool { return b == mqtt.OnDisconnect }

func (h *disconnectHook) OnDisconnect(cl *mqtt.Client, err error, expire bool) {
	if cl.ID == h.id {
		close(h.gone)
	}
}

// rawConn is a connection that writes and reads packets with paho's codec.
type rawConn struct {
	conn net.Conn
	r    *bufio.Reader
}

func rawDial(t *testing.T, addr string) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawConn{conn: c, r: bufio.NewReader(c)}
}

func (c *rawConn) send(t *testing.T, p io.WriterTo) {
	t.Helper()
	if _, err := p.WriteTo(c.conn); err != nil {
		t.Fatal(err)
	}
}

// await reads packets until one of type typ comes.
func (c *rawConn) await(t *testing.T, typ byte) {
	t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(time.Minute)) // a bound against a hang only
	for {
		p, err := paho.ReadPacket(c.r)
		if err != nil {
			t.Fatalf("waiting for packet type %d: %v", typ, err)
		}
		if p.Type == typ {
			return
		}
	}
}
