package mqttc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	v3packets "github.com/eclipse/paho.mqtt.golang/packets"

	"mqtk/internal/broker"
	"mqtk/internal/brokertest"
)

// testLimit bounds every wait in these tests; a safety net against hangs,
// never a synchronisation.
const testLimit = 60 * time.Second

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testLimit)
	t.Cleanup(cancel)
	return ctx
}

func endpointOf(t *testing.T, url string) Endpoint {
	t.Helper()
	u, err := ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	return u.Endpoint
}

// inbox collects received messages for a test.
type inbox struct {
	mu   sync.Mutex
	msgs []*Message
	more chan struct{}
}

func newInbox() *inbox { return &inbox{more: make(chan struct{}, 1)} }

func (b *inbox) add(m *Message) {
	b.mu.Lock()
	b.msgs = append(b.msgs, m)
	b.mu.Unlock()
	select {
	case b.more <- struct{}{}:
	default:
	}
}

// wait returns once n messages have arrived.
func (b *inbox) wait(t *testing.T, ctx context.Context, n int) []*Message {
	t.Helper()
	for {
		b.mu.Lock()
		if len(b.msgs) >= n {
			msgs := slices.Clone(b.msgs)
			b.mu.Unlock()
			return msgs
		}
		got := len(b.msgs)
		b.mu.Unlock()
		select {
		case <-b.more:
		case <-ctx.Done():
			t.Fatalf("%d of %d messages arrived", got, n)
		}
	}
}

func dialT(t *testing.T, ctx context.Context, cfg Config) Client {
	t.Helper()
	c, err := Dial(ctx, cfg)
	if err != nil {
		t.Fatalf("dial MQTT %s: %v", VersionName(cfg.ProtocolVersion), err)
	}
	t.Cleanup(func() { _ = c.Disconnect(context.Background()) })
	return c
}

// TestV3RoundTrip publishes at QoS 0, 1 and 2, retained and not, over MQTT
// 3.1.1 and 3.1 through the in-process broker, and checks what arrives, the
// granted QoS and the packet trace.
func TestV3RoundTrip(t *testing.T) {
	b := brokertest.Start(t, broker.Config{AllowAnonymous: true})
	for _, v := range []int{V311, V31} {
		t.Run(VersionName(v), func(t *testing.T) {
			ctx := testCtx(t)
			base := Config{Endpoint: endpointOf(t, b.URL), ProtocolVersion: v, CleanStart: true, KeepAlive: 60}
			prefix := "v" + strconv.Itoa(v)

			// A retained message before anyone subscribes.
			pubCfg := base
			pubCfg.ClientID = prefix + "-pub"
			trace := &syncWriter{w: &bytes.Buffer{}}
			pubCfg.Trace = trace
			pub := dialT(t, ctx, pubCfg)
			if s := pub.Server(); s.ProtocolVersion != v || s.MaximumQoS != 2 || !s.RetainAvailable || s.ReceiveMaximum == 0 {
				t.Fatalf("ServerInfo = %+v", s)
			}
			if err := pub.Publish(ctx, &Message{Topic: prefix + "/retained", Payload: []byte("kept"), QoS: 1, Retain: true}); err != nil {
				t.Fatal(err)
			}

			box := newInbox()
			subCfg := base
			subCfg.ClientID = prefix + "-sub"
			subCfg.OnMessage = box.add
			sub := dialT(t, ctx, subCfg)
			codes, err := sub.Subscribe(ctx, []Subscription{{Filter: prefix + "/q/#", QoS: 2}, {Filter: prefix + "/retained", QoS: 1}}, SubscribeOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(codes, []byte{2, 1}) {
				t.Fatalf("granted %v, want [2 1]", codes)
			}
			if m := box.wait(t, ctx, 1)[0]; m.Topic != prefix+"/retained" || string(m.Payload) != "kept" || !m.Retain || m.QoS != 1 {
				t.Fatalf("retained message: %+v", m)
			}

			// Several in flight at once, each acknowledged, and delivered in
			// order within each QoS.
			var pend []Pending
			for i := range 30 {
				p, err := pub.PublishAsync(ctx, &Message{Topic: prefix + "/q/" + strconv.Itoa(i%3), Payload: []byte(strconv.Itoa(i)), QoS: byte(i % 3)})
				if err != nil {
					t.Fatal(err)
				}
				pend = append(pend, p)
			}
			for _, p := range pend {
				if err := p.Wait(ctx); err != nil {
					t.Fatal(err)
				}
			}
			msgs := box.wait(t, ctx, 31)[1:]
			// Each QoS keeps its order (MQTT orders messages per QoS).
			last := map[byte]int{0: -1, 1: -1, 2: -1}
			for _, m := range msgs {
				n := atoi(t, string(m.Payload))
				if int(m.QoS) != n%3 || m.Retain || m.Topic != prefix+"/q/"+strconv.Itoa(n%3) {
					t.Errorf("message %+v", m)
				}
				if n <= last[m.QoS] {
					t.Errorf("QoS %d: message %d after %d", m.QoS, n, last[m.QoS])
				}
				last[m.QoS] = n
			}

			if err := sub.Unsubscribe(ctx, prefix+"/q/#"); err != nil {
				t.Fatal(err)
			}
			if err := pub.Disconnect(ctx); err != nil || pub.Err() != nil {
				t.Fatalf("Disconnect: %v, Err: %v", err, pub.Err())
			}
			<-pub.Done()
			tr := trace.String()
			for _, want := range []string{
				fmt.Sprintf("Client %s-pub sending CONNECT (v%d, c1, k60, u0, p0)\n", prefix, v),
				fmt.Sprintf("Client %s-pub received CONNACK (0, connection accepted)\n", prefix),
				fmt.Sprintf("Client %s-pub sending PUBLISH (d0, q1, r1, m1, '%s/retained', ... (4 bytes))\n", prefix, prefix),
				fmt.Sprintf("Client %s-pub received PUBACK (Mid: 1, RC:0)\n", prefix),
				fmt.Sprintf("Client %s-pub sending DISCONNECT\n", prefix),
			} {
				if !strings.Contains(tr, want) {
					t.Errorf("trace lacks %q:\n%s", want, tr)
				}
			}
		})
	}
}

// TestV3Refusals checks a CONNACK refusal (typed, with its 3.1.1 name), a
// refused subscription, and what MQTT 3 cannot carry.
func TestV3Refusals(t *testing.T) {
	b := brokertest.Start(t, broker.Config{
		Users: map[string]string{"alice": "secret"},
		ACL:   []broker.Rule{{Filter: "private/#", Access: broker.Read, Deny: true}, {Filter: "#", Access: broker.ReadWrite}},
	})
	ctx := testCtx(t)
	cfg := Config{Endpoint: endpointOf(t, b.URL), ProtocolVersion: V311, ClientID: "refused", CleanStart: true,
		Username: "alice", Password: "wrong", HasUsername: true, HasPassword: true}
	_, err := Dial(ctx, cfg)
	var ce *ConnectError
	if !errors.As(err, &ce) || ce.Version != V311 || (ce.Code != 4 && ce.Code != 5) {
		t.Fatalf("bad password: %v (%#v)", err, err)
	}
	if want := ConnackName(V311, ce.Code) + fmt.Sprintf(" (return code %d)", ce.Code); !strings.HasSuffix(err.Error(), want) {
		t.Errorf("error %q does not end with %q", err, want)
	}

	cfg.Password = "secret"
	c := dialT(t, ctx, cfg)
	codes, err := c.Subscribe(ctx, []Subscription{{Filter: "public/#", QoS: 1}, {Filter: "private/#", QoS: 1}}, SubscribeOptions{})
	var re *RejectedError
	if !errors.As(err, &re) || re.Topic != "private/#" || re.Code != 0x80 || !bytes.Equal(codes, []byte{1, 0x80}) {
		t.Fatalf("subscribe: %v, codes %v", err, codes)
	}
	for _, m := range []*Message{
		{Topic: "a", Props: Properties{ContentType: "text/plain"}},
		{Topic: "a", Props: Properties{User: []UserProperty{{"k", "v"}}}},
		{Topic: "a", Props: Properties{TopicAlias: 1}},
	} {
		if _, err := c.PublishAsync(ctx, m); !errors.Is(err, ErrInvalid) {
			t.Errorf("publish with %+v: %v, want ErrInvalid", m.Props, err)
		}
	}
	if _, err := c.Subscribe(ctx, []Subscription{{Filter: "a", NoLocal: true}}, SubscribeOptions{}); !errors.Is(err, ErrInvalid) {
		t.Errorf("subscribe with no local: %v, want ErrInvalid", err)
	}
	if _, err := c.Subscribe(ctx, []Subscription{{Filter: "a"}}, SubscribeOptions{SubscriptionID: 3}); !errors.Is(err, ErrInvalid) {
		t.Errorf("subscribe with an identifier: %v, want ErrInvalid", err)
	}
}

// TestV3Lost checks that a connection the broker drops ends the client with
// a *NetError, and what was waiting learns it.
func TestV3Lost(t *testing.T) {
	b, err := brokertest.New(broker.Config{AllowAnonymous: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	c, err := Dial(ctx, Config{Endpoint: endpointOf(t, b.URL), ProtocolVersion: V311, ClientID: "lost", CleanStart: false})
	if err != nil {
		b.Close()
		t.Fatal(err)
	}
	b.Close()
	select {
	case <-c.Done():
	case <-ctx.Done():
		t.Fatal("the client did not notice the broker closing")
	}
	var ne *NetError
	if err := c.Err(); !errors.As(err, &ne) {
		t.Fatalf("Err() = %v, want a *NetError", err)
	}
	if _, err := c.PublishAsync(ctx, &Message{Topic: "a", QoS: 1}); !errors.As(err, &ne) {
		t.Errorf("publish after the end: %v, want a *NetError", err)
	}
	if _, err := c.Subscribe(ctx, []Subscription{{Filter: "a"}}, SubscribeOptions{}); !errors.As(err, &ne) {
		t.Errorf("subscribe after the end: %v, want a *NetError", err)
	}
	_ = c.Disconnect(ctx)
}

// TestFallback connects without a version through fronts that refuse MQTT 5
// in each way brokers do, and checks that Dial falls back, says so once,
// and connects the next client with MQTT 3 straight away.
func TestFallback(t *testing.T) {
	b := brokertest.Start(t, broker.Config{AllowAnonymous: true})
	backend := fmt.Sprintf("127.0.0.1:%d", b.Port)
	for _, tc := range []struct {
		refuse brokertest.Refusal
		accept []byte
		want   int
	}{
		{brokertest.RefuseV3, []byte{4}, V311},
		{brokertest.RefuseV5, []byte{4}, V311},
		{brokertest.RefuseClose, []byte{4}, V311},
		{brokertest.RefuseV3, []byte{3}, V31},
	} {
		t.Run(fmt.Sprintf("%s-%d", tc.refuse, tc.want), func(t *testing.T) {
			ctx := testCtx(t)
			f, err := brokertest.NewFront(backend, tc.refuse, tc.accept...)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { f.Close() })
			var notes []string
			fb := &Fallback{Notify: func(from, to int) { notes = append(notes, fmt.Sprintf("%d->%d", from, to)) }}
			trace := &syncWriter{w: &bytes.Buffer{}}
			cfg := Config{Endpoint: endpointOf(t, f.String()), ClientID: "fb1", CleanStart: true, Fallback: fb, Trace: trace}
			box := newInbox()
			cfg.OnMessage = box.add
			c := dialT(t, ctx, cfg)
			if v := c.Server().ProtocolVersion; v != tc.want {
				t.Fatalf("connected with %d, want %d", v, tc.want)
			}
			if _, err := c.Subscribe(ctx, []Subscription{{Filter: "fb/#", QoS: 1}}, SubscribeOptions{}); err != nil {
				t.Fatal(err)
			}
			cfg2 := cfg
			cfg2.ClientID, cfg2.OnMessage, cfg2.Trace = "fb2", nil, nil
			c2 := dialT(t, ctx, cfg2)
			if err := c2.Publish(ctx, &Message{Topic: "fb/x", Payload: []byte("hi"), QoS: 1}); err != nil {
				t.Fatal(err)
			}
			if m := box.wait(t, ctx, 1)[0]; string(m.Payload) != "hi" {
				t.Fatalf("got %+v", m)
			}
			wantLevels := []byte{5, byte(tc.want), byte(tc.want)}
			if tc.want == V31 {
				wantLevels = []byte{5, 4, 3, 3}
			}
			if got := f.Levels(); !bytes.Equal(got, wantLevels) {
				t.Errorf("CONNECT levels %v, want %v", got, wantLevels)
			}
			if want := []string{fmt.Sprintf("5->%d", tc.want)}; !slices.Equal(notes, want) {
				t.Errorf("notices %v, want %v", notes, want)
			}
			if tc.refuse == brokertest.RefuseV3 && !strings.Contains(trace.String(), "Client fb1 received CONNACK (1, unacceptable protocol version)\n") {
				t.Errorf("trace lacks the refusal:\n%s", trace.String())
			}
		})
	}

	// v5-only options in use: no fallback, and the error says why.
	f, err := brokertest.NewFront(backend, brokertest.RefuseV3, 4)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	notified := false
	fb := &Fallback{V5Only: []string{"--no-local"}, Notify: func(int, int) { notified = true }}
	_, err = Dial(testCtx(t), Config{Endpoint: endpointOf(t, f.String()), ClientID: "fb3", Fallback: fb})
	var ce *ConnectError
	if !errors.As(err, &ce) || ce.Code != 1 || !strings.Contains(err.Error(), "unacceptable protocol version") ||
		!strings.Contains(err.Error(), "--no-local needs it, so mqtk did not fall back") {
		t.Errorf("with a v5-only option: %v", err)
	}
	if notified || !bytes.Equal(f.Levels(), []byte{5}) {
		t.Errorf("fell back anyway: notified %v, levels %v", notified, f.Levels())
	}

	// An explicit version is never changed.
	_, err = Dial(testCtx(t), Config{Endpoint: endpointOf(t, f.String()), ClientID: "fb4", ProtocolVersion: V5})
	if !errors.As(err, &ce) || ce.Code != 1 || !bytes.Equal(f.Levels(), []byte{5, 5}) {
		t.Errorf("explicit MQTT 5: %v, levels %v", err, f.Levels())
	}
}

// syncWriter makes a trace buffer safe to read while the client writes.
type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func (s *syncWriter) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.String()
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestPublishLargerThanMQTT: a message no MQTT packet can hold (Remaining
// Length over 268,435,455) is refused with ErrInvalid before it is
// written, in every protocol version; paho panicked encoding it.
func TestPublishLargerThanMQTT(t *testing.T) {
	b := brokertest.Start(t, broker.Config{AllowAnonymous: true})
	// Not written to: no memory is touched.
	payload := make([]byte, maxRemaining)
	for _, v := range []int{V5, V311, V31} {
		t.Run(VersionName(v), func(t *testing.T) {
			ctx := testCtx(t)
			c := dialT(t, ctx, Config{Endpoint: endpointOf(t, b.URL), ProtocolVersion: v, ClientID: "big" + strconv.Itoa(v), CleanStart: true})
			for _, qos := range []byte{0, 1} {
				_, err := c.PublishAsync(ctx, &Message{Topic: "big", QoS: qos, Payload: payload})
				if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "larger than MQTT allows") {
					t.Errorf("QoS %d: %v, want ErrInvalid: larger than MQTT allows", qos, err)
				}
			}
			if err := c.Publish(ctx, &Message{Topic: "big", QoS: 1, Payload: []byte("small")}); err != nil {
				t.Errorf("a small message after: %v", err)
			}
		})
	}
}

// TestTopicAliasOfRefusedMessage: a message refused before it is sent (too
// large for the broker) does not leave its topic alias behind: the next
// message with that alias still tells the broker its topic. It went out
// with an empty topic, which the broker takes as a protocol error.
func TestTopicAliasOfRefusedMessage(t *testing.T) {
	b := brokertest.Start(t, broker.Config{AllowAnonymous: true, MaximumPacketSize: 200})
	ctx := testCtx(t)
	box := newInbox()
	sub := dialT(t, ctx, Config{Endpoint: endpointOf(t, b.URL), ClientID: "alias-sub", CleanStart: true, OnMessage: box.add})
	if _, err := sub.Subscribe(ctx, []Subscription{{Filter: "alias/#", QoS: 1}}, SubscribeOptions{}); err != nil {
		t.Fatal(err)
	}
	pub := dialT(t, ctx, Config{Endpoint: endpointOf(t, b.URL), ClientID: "alias-pub", CleanStart: true})
	big := &Message{Topic: "alias/a", QoS: 1, Payload: make([]byte, 300), Props: Properties{TopicAlias: 1}}
	if _, err := pub.PublishAsync(ctx, big); !errors.Is(err, ErrInvalid) {
		t.Fatalf("a message over the broker's Maximum Packet Size: %v, want ErrInvalid", err)
	}
	if err := pub.Publish(ctx, &Message{Topic: "alias/a", QoS: 1, Payload: []byte("small"), Props: Properties{TopicAlias: 1}}); err != nil {
		t.Fatalf("the same alias, a small message: %v", err)
	}
	if got := box.wait(t, ctx, 1); got[0].Topic != "alias/a" || string(got[0].Payload) != "small" {
		t.Errorf("received %q on %q, want small on alias/a", got[0].Payload, got[0].Topic)
	}
}

// TestPublishAsyncPayloadReuse: a caller may reuse a message's payload as
// soon as PublishAsync returns (mqtk bench does, and nothing else is safe
// to promise): every payload arrives as it was when it was published. With
// MQTT 3, paho.mqtt.golang's Publish returned once its writer goroutine had
// taken the packet, before encoding it, so at QoS 0 (where nothing waits
// for an ack before the buffer is reused) most messages went out carrying
// a later message's bytes. It shows under load, so the publisher sends a
// few thousand messages as fast as it can.
func TestPublishAsyncPayloadReuse(t *testing.T) {
	const n = 3000
	b := brokertest.Start(t, broker.Config{AllowAnonymous: true, MaxQueued: 4 * n, MaxInflight: 4 * n})
	for _, v := range []int{V5, V311, V31} {
		for _, qos := range []byte{0, 1, 2} {
			t.Run(fmt.Sprintf("%s/qos%d", VersionName(v), qos), func(t *testing.T) {
				ctx := testCtx(t)
				prefix := fmt.Sprintf("reuse%d-%d", v, qos)
				box := newInbox()
				sub := dialT(t, ctx, Config{Endpoint: endpointOf(t, b.URL), ProtocolVersion: v, ClientID: prefix + "-sub", CleanStart: true, OnMessage: box.add})
				if _, err := sub.Subscribe(ctx, []Subscription{{Filter: prefix, QoS: qos}}, SubscribeOptions{}); err != nil {
					t.Fatal(err)
				}
				pub := dialT(t, ctx, Config{Endpoint: endpointOf(t, b.URL), ProtocolVersion: v, ClientID: prefix + "-pub", CleanStart: true})
				payload := make([]byte, 64)
				m := &Message{Topic: prefix, QoS: qos, Payload: payload}
				// At most 500 awaiting their ack: a window, as a client
				// keeps (mqtk's broker takes up to 65,535 from an MQTT 3
				// client, MQTK.md change 39).
				var pend []Pending
				wait := func(keep int) {
					for len(pend) > keep {
						if err := pend[0].Wait(ctx); err != nil {
							t.Fatal(err)
						}
						pend = pend[1:]
					}
				}
				for i := range n {
					clear(payload)
					copy(payload, strconv.Itoa(i))
					p, err := pub.PublishAsync(ctx, m)
					if err != nil {
						t.Fatal(err)
					}
					pend = append(pend, p)
					wait(500)
				}
				wait(0)
				seen := make(map[string]int, n)
				for _, got := range box.wait(t, ctx, n) {
					seen[string(bytes.TrimRight(got.Payload, "\x00"))]++
				}
				var wrong []string
				for i := range n {
					if k := strconv.Itoa(i); seen[k] != 1 {
						wrong = append(wrong, fmt.Sprintf("%s x%d", k, seen[k]))
					}
				}
				if len(wrong) > 0 {
					t.Errorf("%d of %d messages arrived other than once (e.g. %v): a payload was read after PublishAsync returned", len(wrong), n, wrong[:min(len(wrong), 5)])
				}
			})
		}
	}
}

// TestV3PublishLost: an MQTT 3 publisher whose broker stops reading, then
// drops the connection, learns of the loss at once. paho's Publish waits for
// its writer to take the packet, and if the connection ends meanwhile the
// goroutine feeding the writer may stop first (its select picks the stop or
// the packet at random), leaving Publish blocked until its 30 s timeout:
// pub -l then began its reconnection 30 s late. Each round gets the whole
// chain stalled (the socket, the send queue, paho's writer, paho's Publish
// in c.send, and c.sends full) and then closes the broker's end; before
// c.send, the round stalled about one time in two.
func TestV3PublishLost(t *testing.T) {
	for round := range 3 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		accepted := acceptScripted(ln, func(c net.Conn) error { // and nothing more is read
			if _, err := v3packets.ReadPacket(c); err != nil { // CONNECT
				return err
			}
			return v3packets.NewControlPacket(v3packets.Connack).Write(c)
		})
		ctx := testCtx(t)
		cl, err := Dial(ctx, Config{
			Endpoint:        Endpoint{Scheme: "mqtt", Host: "127.0.0.1", Port: ln.Addr().(*net.TCPAddr).Port},
			ProtocolVersion: V311, ClientID: "stalled", CleanStart: true,
		})
		if err != nil {
			t.Fatal(err)
		}
		server := <-accepted
		if server == nil {
			t.Fatal("the scripted broker saw no CONNECT")
		}
		c := cl.(*v3Client)
		published := flood(t, context.Background(), 0, cl, c.conn)
		for len(c.sends) < cap(c.sends) { // until c.send waits on paho
			select {
			case err := <-published:
				t.Fatalf("round %d: publish failed before the broker went: %v", round, err)
			case <-time.After(time.Millisecond): // poll interval of a condition wait
			}
		}
		server.Close()
		// paho's stall is 30 s; the bound is against that, far above the
		// few milliseconds the loss takes to show.
		select {
		case err := <-published:
			var ne *NetError
			if !errors.As(err, &ne) {
				t.Errorf("round %d: publish after the loss: %v, want a *NetError", round, err)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("round %d: PublishAsync still blocked 20s after the broker closed the connection", round)
		}
		select {
		case <-cl.Done():
		case <-ctx.Done():
			t.Fatalf("round %d: the client did not end", round)
		}
		_ = cl.Disconnect(ctx)
	}
}

// failingPaho is a paho client whose Publish fails the message numbered
// fail (payloads are numbers) before sending it, as paho's timeout does on
// a connection that is still up; it records the payloads it was given.
type failingPaho struct {
	mqtt.Client // nothing else is called
	fail        string
	mu          sync.Mutex
	got         []string
}

func (f *failingPaho) Publish(_ string, _ byte, _ bool, payload any) mqtt.Token {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.got = append(f.got, string(payload.([]byte)))
	if string(payload.([]byte)) == f.fail {
		return doneToken{errors.New("publish was broken by timeout")}
	}
	return doneToken{}
}

// doneToken is a paho token that has completed with err.
type doneToken struct{ err error }

func (doneToken) Wait() bool                     { return true }
func (doneToken) WaitTimeout(time.Duration) bool { return true }
func (doneToken) Done() <-chan struct{}          { return closedChan }
func (t doneToken) Error() error                 { return t.err }

var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// TestV3PublishFailedUnsent: when paho fails a publish before sending it
// (its 30 s timeout, with a broker that stopped reading but a connection
// still up), nothing queued behind it goes to paho: the connection ends,
// and pub -l sends that publish again, then the rest, in order. Before,
// the ones behind it went out first, and arrived before it.
func TestV3PublishFailedUnsent(t *testing.T) {
	ctx := testCtx(t)
	local, remote := net.Pipe()
	defer remote.Close()
	tc := newTraceConn(local, nil).forVersion(V311)
	pc := &failingPaho{fail: "2"}
	c := &v3Client{
		lifecycle: newLifecycle("pipe", tc), pc: pc, info: ServerInfo{ProtocolVersion: V311, MaximumQoS: 2},
		inflight: make(chan struct{}, v3ReceiveMaximum), inflight2: make(chan struct{}, v3QoS2Window),
		sends: make(chan *v3Pending, v3SendQueue), sent2: make(chan *v3Pending, v3QoS2Window),
	}
	// Queue all five before send runs, so that it finds 3 to 5 behind 2.
	var pend []Pending
	for i := 1; i <= 5; i++ {
		p, err := c.PublishAsync(ctx, &Message{Topic: "t", QoS: 1, Payload: []byte(strconv.Itoa(i))})
		if err != nil {
			t.Fatal(err)
		}
		pend = append(pend, p)
	}
	go c.send()
	go c.completeQoS2()
	if err := pend[0].Wait(ctx); err != nil {
		t.Errorf("publish 1: %v", err)
	}
	for i, p := range pend[1:] {
		var ne *NetError
		if err := p.Wait(ctx); !errors.As(err, &ne) {
			t.Errorf("publish %d: %v, want a *NetError (the connection ended)", i+2, err)
		}
	}
	select {
	case <-c.Done():
	default:
		t.Error("the connection did not end")
	}
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if !slices.Equal(pc.got, []string{"1", "2"}) {
		t.Errorf("paho was given %v, want [1 2]: nothing after the failed publish", pc.got)
	}
}

// TestSubscribeLargerThanBroker: a SUBSCRIBE or UNSUBSCRIBE larger than the
// broker's Maximum Packet Size is refused before it is sent (ErrInvalid:
// exit 2), as a PUBLISH is; sent, the broker closes the connection and the
// reason is lost (exit 3).
func TestSubscribeLargerThanBroker(t *testing.T) {
	b := brokertest.Start(t, broker.Config{AllowAnonymous: true, MaximumPacketSize: 100})
	ctx := testCtx(t)
	c := dialT(t, ctx, Config{Endpoint: endpointOf(t, b.URL), ProtocolVersion: V5, ClientID: "big-sub", CleanStart: true})
	long := strings.Repeat("f", 150)
	if _, err := c.Subscribe(ctx, []Subscription{{Filter: long}}, SubscribeOptions{}); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "SUBSCRIBE") {
		t.Errorf("subscribe: %v, want the SUBSCRIBE refused as larger than the Maximum Packet Size", err)
	}
	if err := c.Unsubscribe(ctx, long); !errors.Is(err, ErrInvalid) {
		t.Errorf("unsubscribe: %v, want it refused", err)
	}
	if _, err := c.Subscribe(ctx, []Subscription{{Filter: "short"}}, SubscribeOptions{}); err != nil {
		t.Errorf("a SUBSCRIBE that fits: %v", err)
	}
}

// TestWaitArrivedAck: an acknowledgement that has arrived counts even when
// Wait's context has ended (mqtk bench's drain ends it). Go's select picks
// at random among ready cases, and about half such publishes were counted
// as never acknowledged.
func TestWaitArrivedAck(t *testing.T) {
	b := brokertest.Start(t, broker.Config{AllowAnonymous: true})
	for _, v := range []int{V5, V311} {
		for _, qos := range []byte{1, 2} {
			t.Run(fmt.Sprintf("%s/qos%d", VersionName(v), qos), func(t *testing.T) {
				ctx := testCtx(t)
				c := dialT(t, ctx, Config{Endpoint: endpointOf(t, b.URL), ProtocolVersion: v,
					ClientID: fmt.Sprintf("arrived-%d-%d", v, qos), CleanStart: true})
				ended, cancel := context.WithCancel(ctx)
				cancel()
				for i := range 50 {
					p, err := c.PublishAsync(ctx, &Message{Topic: "arrived", QoS: qos, Payload: []byte("x")})
					if err != nil {
						t.Fatal(err)
					}
					switch p := p.(type) { // until the acknowledgement is there
					case *pending:
						for len(p.ret) == 0 && ctx.Err() == nil {
							time.Sleep(time.Millisecond) // poll interval of a channel's length
						}
					case *v3Pending:
						select {
						case <-p.sent: // p.tok is set
						case <-ctx.Done():
							t.Fatal("publish never sent")
						}
						select {
						case <-p.tok.Done():
						case <-ctx.Done():
						}
					}
					if err := p.Wait(ended); err != nil {
						t.Fatalf("publish %d: Wait = %v, its acknowledgement had arrived", i, err)
					}
				}
			})
		}
	}
}
