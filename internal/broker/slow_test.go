package broker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/gorilla/websocket"

	"mqtk/internal/mqttc"
	"mqtk/internal/wsconn"
)

// TestStalledSubscriber: a subscriber that stops reading, at any QoS, does
// not stall the publisher or a healthy subscriber; what cannot be queued for
// it is dropped and counted. The write timeout is an hour, so that it is
// not what frees the publisher: at QoS 1 and 2 mochi used to hold the
// stalled client's lock during its blocked write, and routing a message to
// it needs that lock for a packet identifier (see third_party/mochi-server).
func TestStalledSubscriber(t *testing.T) {
	for _, qos := range []byte{0, 1, 2} {
		t.Run(fmt.Sprintf("qos%d", qos), func(t *testing.T) { testStalledSubscriber(t, qos) })
	}
}

func testStalledSubscriber(t *testing.T, stalledQoS byte) {
	// A small queue for the stalled client to overflow. The healthy one is
	// a QoS 1 subscriber: mochi queues its messages only within its Receive
	// Maximum (paho's 65535 here), so with a queue that small it would lose
	// messages too whenever the publisher is faster (mochi drops a QoS 1
	// message that does not fit in the queue: a known gap, see the notes of
	// issue 4); 1000 leaves it room.
	s, addr := startLoopback(t, Config{MaxQueued: 1000, WriteTimeout: time.Hour})
	host, port, _ := net.SplitHostPort(addr)
	ep := mqttc.Endpoint{Scheme: "mqtt", Host: host, Port: atoi(port)}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // a bound against a hang only
	defer cancel()

	// The stalled subscriber: CONNECT and SUBSCRIBE written by hand, then it
	// reads nothing at all.
	stalled, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer stalled.Close()
	var wire bytes.Buffer
	(&packets.Connect{ProtocolName: "MQTT", ProtocolVersion: 5, ClientID: "stalled", CleanStart: true, KeepAlive: 600, Properties: &packets.Properties{}}).WriteTo(&wire)
	(&packets.Subscribe{PacketID: 1, Subscriptions: []packets.SubOptions{{Topic: "load", QoS: stalledQoS}}, Properties: &packets.Properties{}}).WriteTo(&wire)
	if _, err := stalled.Write(wire.Bytes()); err != nil {
		t.Fatal(err)
	}

	const n = 4000
	got := make(chan struct{}, n)
	healthy, err := mqttc.Dial(ctx, mqttc.Config{Endpoint: ep, ClientID: "healthy", CleanStart: true,
		OnMessage: func(*mqttc.Message) { got <- struct{}{} }})
	if err != nil {
		t.Fatal(err)
	}
	defer healthy.Disconnect(ctx)
	if _, err := healthy.Subscribe(ctx, []mqttc.Subscription{{Filter: "load", QoS: 1}}, mqttc.SubscribeOptions{}); err != nil {
		t.Fatal(err)
	}
	// Wait until the stalled client's subscription exists: a retained probe
	// would reach it too, so ask the broker.
	for !hasSubscriber(s, "load", "stalled") {
		select {
		case <-ctx.Done():
			t.Fatal("the stalled client never subscribed")
		case <-time.After(5 * time.Millisecond): // poll interval of a condition wait
		}
	}

	pub, err := mqttc.Dial(ctx, mqttc.Config{Endpoint: ep, ClientID: "pub", CleanStart: true})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Disconnect(ctx)
	payload := bytes.Repeat([]byte("x"), 4096)
	for i := 0; i < n; i++ {
		if err := pub.Publish(ctx, &mqttc.Message{Topic: "load", Payload: payload, QoS: 1}); err != nil {
			t.Fatalf("publish %d: %v (the publisher was stalled)", i, err)
		}
	}
	for i := 0; i < n; i++ {
		select {
		case <-got:
		case <-ctx.Done():
			t.Fatalf("the healthy subscriber got %d of %d messages", i, n)
		}
	}
	if dropped := s.m.Info.Clone().MessagesDropped; dropped == 0 {
		t.Error("nothing was dropped for the stalled subscriber, or it was not counted")
	}
}

func hasSubscriber(s *Server, filter, clientID string) bool {
	_, ok := s.m.Topics.Subscribers(filter).Subscriptions[clientID]
	return ok
}

func atoi(s string) int {
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
	}
	return n
}

// TestStalledSubscriberDisconnected: a subscriber that stops reading, over
// TCP or WebSocket, is disconnected once a write to it has made no progress
// for the write timeout, and that ends its connection the normal way: a
// warning names it, its will is published, its session is kept. All the
// while the publisher goes on publishing and a healthy subscriber gets
// every message.
func TestStalledSubscriberDisconnected(t *testing.T) {
	watch := newLogWatch()
	s, _ := startLoopback(t, Config{WSListen: []string{"127.0.0.1:0"},
		WriteTimeout: 250 * time.Millisecond, MaxQueued: 1000, Logger: slog.New(watch)})
	ep := endpointOf(t, s.URLs()[0])
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // a bound against a hang only
	defer cancel()

	loads := make(chan struct{}, 100000)
	wills := make(chan string, 10)
	healthy, err := mqttc.Dial(ctx, mqttc.Config{Endpoint: ep, ClientID: "healthy", CleanStart: true,
		OnMessage: func(m *mqttc.Message) {
			if m.Topic == "load" {
				loads <- struct{}{}
			} else {
				wills <- m.Topic
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer healthy.Disconnect(ctx)
	if _, err := healthy.Subscribe(ctx, []mqttc.Subscription{{Filter: "load", QoS: 1}, {Filter: "will/#", QoS: 1}}, mqttc.SubscribeOptions{}); err != nil {
		t.Fatal(err)
	}
	pub, err := mqttc.Dial(ctx, mqttc.Config{Endpoint: ep, ClientID: "pub", CleanStart: true})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Disconnect(ctx)
	payload := bytes.Repeat([]byte("x"), 4096)

	for _, url := range s.URLs() {
		scheme, _, _ := strings.Cut(url, "://")
		t.Run(scheme, func(t *testing.T) {
			id := "stalled-" + scheme
			stalled, raw := dialStalled(t, url)
			defer raw.Close()
			var wire bytes.Buffer
			expiry := uint32(300)
			(&packets.Connect{ProtocolName: "MQTT", ProtocolVersion: 5, ClientID: id, CleanStart: true, KeepAlive: 600,
				Properties: &packets.Properties{SessionExpiryInterval: &expiry},
				WillFlag:   true, WillTopic: "will/" + id, WillMessage: []byte("gone"), WillProperties: &packets.Properties{}}).WriteTo(&wire)
			(&packets.Subscribe{PacketID: 1, Subscriptions: []packets.SubOptions{{Topic: "load", QoS: 0}}, Properties: &packets.Properties{}}).WriteTo(&wire)
			if _, err := stalled.Write(wire.Bytes()); err != nil {
				t.Fatal(err)
			}
			for !hasSubscriber(s, "load", id) {
				select {
				case <-ctx.Done():
					t.Fatal("the stalled client never subscribed")
				case <-time.After(5 * time.Millisecond): // poll interval of a condition wait
				}
			}

			// Publish until the broker has given up on the stalled client,
			// and a few more.
			timedOut := watch.waitFor(func(r slog.Record) bool {
				return r.Level == slog.LevelWarn && r.Message == "closed the connection: write timeout" && attr(r, "client") == id
			})
			published := 0
			for extra := 10; extra > 0; published++ {
				select {
				case <-timedOut:
					extra--
				default:
				}
				if err := pub.Publish(ctx, &mqttc.Message{Topic: "load", Payload: payload, QoS: 1}); err != nil {
					t.Fatalf("publish %d: %v (the publisher was stalled)", published, err)
				}
			}
			for n := 0; n < published; n++ {
				select {
				case <-loads:
				case <-ctx.Done():
					t.Fatalf("the healthy subscriber got %d of %d messages", n, published)
				}
			}
			select {
			case topic := <-wills:
				if topic != "will/"+id {
					t.Errorf("will on %s, want will/%s", topic, id)
				}
			case <-ctx.Done():
				t.Fatal("no will from the stalled client")
			}

			// The stalled client's connection is closed: what the broker had
			// sent is there to read (with room to read it quickly), then the end.
			_ = raw.SetReadBuffer(8 << 20)
			_ = raw.SetReadDeadline(time.Now().Add(time.Minute)) // a bound against a hang only
			if _, err := io.Copy(io.Discard, raw); err != nil && !errors.Is(err, syscall.ECONNRESET) {
				t.Errorf("the stalled client's connection was not closed: %v", err)
			}
			again, err := mqttc.Dial(ctx, mqttc.Config{Endpoint: ep, ClientID: id, CleanStart: false, SessionExpiry: &expiry})
			if err != nil {
				t.Fatal(err)
			}
			defer again.Disconnect(ctx)
			if !again.Server().SessionPresent {
				t.Error("the stalled client's session was not kept")
			}
		})
	}
}

// TestCloseWithStalledSubscriber: Close does not wait for a write to a
// client that stopped reading (mochi would, to send it DISCONNECT), however
// long the write timeout.
func TestCloseWithStalledSubscriber(t *testing.T) {
	for _, scheme := range []string{"mqtt", "ws"} {
		t.Run(scheme, func(t *testing.T) {
			cfg := Config{WriteTimeout: time.Hour, MaxQueued: 10}
			if scheme == "ws" {
				cfg.WSListen = []string{"127.0.0.1:0"}
			} else {
				cfg.Listen = []string{"127.0.0.1:0"}
			}
			s, err := Start(cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // a bound against a hang only
			defer cancel()
			stalled, raw := dialStalled(t, s.URLs()[0])
			defer raw.Close()
			var wire bytes.Buffer
			(&packets.Connect{ProtocolName: "MQTT", ProtocolVersion: 5, ClientID: "stalled", CleanStart: true, KeepAlive: 600, Properties: &packets.Properties{}}).WriteTo(&wire)
			(&packets.Subscribe{PacketID: 1, Subscriptions: []packets.SubOptions{{Topic: "load", QoS: 0}}, Properties: &packets.Properties{}}).WriteTo(&wire)
			if _, err := stalled.Write(wire.Bytes()); err != nil {
				t.Fatal(err)
			}
			for !hasSubscriber(s, "load", "stalled") {
				select {
				case <-ctx.Done():
					t.Fatal("the stalled client never subscribed")
				case <-time.After(5 * time.Millisecond): // poll interval of a condition wait
				}
			}
			pub, err := mqttc.Dial(ctx, mqttc.Config{Endpoint: endpointOf(t, s.URLs()[0]), ClientID: "pub", CleanStart: true})
			if err != nil {
				t.Fatal(err)
			}
			defer pub.Disconnect(ctx)
			// Until its queue overflows: a write to it is stuck.
			payload := bytes.Repeat([]byte("x"), 4096)
			for s.m.Info.Clone().MessagesDropped == 0 {
				if err := pub.Publish(ctx, &mqttc.Message{Topic: "load", Payload: payload, QoS: 1}); err != nil {
					t.Fatal(err)
				}
			}
			done := make(chan error, 1)
			go func() { done <- s.Close() }()
			select {
			case <-done:
			case <-ctx.Done():
				t.Fatal("Close waited for a client that stopped reading")
			}
		})
	}
}

// dialStalled connects to url (mqtt:// or ws://) with a small receive
// buffer, for a client that will stop reading: it returns the stream MQTT is
// written to and the TCP connection under it.
func dialStalled(t *testing.T, url string) (io.Writer, *net.TCPConn) {
	t.Helper()
	scheme, rest, _ := strings.Cut(url, "://")
	host, _, _ := strings.Cut(rest, "/")
	c, err := net.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	tc := c.(*net.TCPConn)
	if err := tc.SetReadBuffer(4096); err != nil {
		t.Fatal(err)
	}
	if scheme == "mqtt" {
		return tc, tc
	}
	ws, _, err := (&websocket.Dialer{Subprotocols: []string{wsconn.Subprotocol},
		NetDial: func(string, string) (net.Conn, error) { return tc, nil }}).Dial(url, nil)
	if err != nil {
		tc.Close()
		t.Fatal(err)
	}
	return wsconn.New(ws), tc
}

func endpointOf(t *testing.T, url string) mqttc.Endpoint {
	t.Helper()
	u, err := mqttc.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	return u.Endpoint
}

// logWatch is a slog.Handler that keeps what is logged, for a test to wait
// for a line instead of sleeping.
type logWatch struct {
	mu      sync.Mutex
	records []slog.Record
	waits   []logWait
}

type logWait struct {
	match func(slog.Record) bool
	ch    chan struct{}
}

func newLogWatch() *logWatch { return &logWatch{} }

// all returns what was logged so far.
func (w *logWatch) all() []slog.Record {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]slog.Record(nil), w.records...)
}

// waitFor returns a channel closed once a record that matches is logged
// (maybe already).
func (w *logWatch) waitFor(match func(slog.Record) bool) <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	ch := make(chan struct{})
	for _, r := range w.records {
		if match(r) {
			close(ch)
			return ch
		}
	}
	w.waits = append(w.waits, logWait{match, ch})
	return ch
}

func (w *logWatch) Enabled(context.Context, slog.Level) bool { return true }

func (w *logWatch) Handle(_ context.Context, r slog.Record) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	r = r.Clone()
	w.records = append(w.records, r)
	waits := w.waits[:0]
	for _, wt := range w.waits {
		if wt.match(r) {
			close(wt.ch)
		} else {
			waits = append(waits, wt)
		}
	}
	w.waits = waits
	return nil
}

func (w *logWatch) WithAttrs([]slog.Attr) slog.Handler { return w }
func (w *logWatch) WithGroup(string) slog.Handler      { return w }

// attr is the value of a record's attribute as a string ("" if absent).
func attr(r slog.Record, key string) string {
	v := ""
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == key {
			v = a.Value.String()
			return false
		}
		return true
	})
	return v
}
