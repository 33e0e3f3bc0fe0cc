package broker_test

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"mqtk/internal/broker"
	"mqtk/internal/brokertest"
)

// Resuming a session while messages for it keep coming, and what a resumed
// session's queue carries over from the connection before (topic aliases).
// See third_party/mochi-server/MQTK.md, changes 18 and 19.

// resumeHook lets a test act at moments of a session's resumption that no
// client sees, and wait for a connection's end. It is added after mqtk's
// hooks (broker.AddHook).
type resumeHook struct {
	mqtt.HookBase
	id string // the client whose session is resumed

	mu      sync.Mutex
	changed chan struct{} // closed and replaced when gone changes
	gone    int           // connections of id that have ended
	// onConnack runs once, in the broker's goroutine for id's connection,
	// when the CONNACK of a resumed session has been written and before
	// the broker resends the session's queue.
	onConnack func()
	// onRoute runs once, in the publisher's goroutine, when a message is
	// being routed to id and mqtk's ACL has refused it: mochi then asks
	// the next hook, this one, which grants it. The tests make the ACL
	// refuse one topic to bring the routing of its messages here, between
	// mochi finding the subscriber's connection and queueing the message.
	onRoute func()
}

func (h *resumeHook) ID() string { return "test-resume" }

func (h *resumeHook) Provides(b byte) bool {
	return b == mqtt.OnDisconnect || b == mqtt.OnPacketSent || b == mqtt.OnACLCheck
}

func (h *resumeHook) OnDisconnect(cl *mqtt.Client, _ error, _ bool) {
	if cl.ID != h.id {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.gone++
	close(h.changed)
	h.changed = make(chan struct{})
}

func (h *resumeHook) OnPacketSent(cl *mqtt.Client, pk packets.Packet, _ []byte) {
	if cl.ID != h.id || pk.FixedHeader.Type != packets.Connack || !pk.SessionPresent {
		return
	}
	h.mu.Lock()
	fn := h.onConnack
	h.onConnack = nil
	h.mu.Unlock()
	if fn != nil {
		fn()
	}
}

func (h *resumeHook) OnACLCheck(cl *mqtt.Client, _ string, write bool) bool {
	if cl.ID == h.id && !write {
		h.mu.Lock()
		fn := h.onRoute
		h.onRoute = nil
		h.mu.Unlock()
		if fn != nil {
			fn()
		}
	}
	return true
}

// waitGone returns once n connections of the client have ended (the
// broker has finished with them: a message routed to the session since is
// queued, not written).
func (h *resumeHook) waitGone(t *testing.T, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wireTimeout) // a bound against a hang only
	defer cancel()
	for {
		h.mu.Lock()
		gone, ch := h.gone, h.changed
		h.mu.Unlock()
		if gone >= n {
			return
		}
		select {
		case <-ch:
		case <-ctx.Done():
			t.Fatalf("waiting for connection %d of %s to end: %v", n, h.id, ctx.Err())
		}
	}
}

// startHooked starts mqtk's broker with cfg and a resumeHook for client id,
// and returns the broker's address.
func startHooked(t *testing.T, cfg broker.Config, id string) (*brokertest.Broker, *resumeHook, string) {
	t.Helper()
	b := brokertest.Start(t, cfg)
	h := &resumeHook{id: id, changed: make(chan struct{})}
	if err := b.Server.AddHook(h); err != nil {
		t.Fatal(err)
	}
	return b, h, net.JoinHostPort(b.Host, strconv.Itoa(b.Port))
}

// awaitSignal waits for ch to be closed (a hook reached its moment).
func awaitSignal(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(wireTimeout): // a bound against a hang only
		t.Fatalf("waiting until %s", what)
	}
}

// hold blocks a hook until ch is closed (bounded, so that a failed test
// does not leave the broker stuck).
func hold(ch <-chan struct{}) {
	select {
	case <-ch:
	case <-time.After(wireTimeout):
	}
}

// resumeModes are the brokers a session is resumed on: without
// persistence, with it, and with it after a restart (the queue is then the
// stored one).
var resumeModes = []string{"memory", "persist", "restart"}

func resumeConfig(t *testing.T, mode string, cfg broker.Config) broker.Config {
	if mode != "memory" {
		cfg.PersistDir = t.TempDir()
	}
	return cfg
}

// brief describes a PUBLISH for comparing sequences of them.
func brief(pk packets.Packet) string {
	return fmt.Sprintf("%s %s q%d dup=%v", pk.TopicName, pk.Payload, pk.FixedHeader.Qos, pk.FixedHeader.Dup)
}

// TestResumeWhilePublishing: a client resuming its session while messages
// for it keep coming gets CONNACK, then the session's queue in order (the
// message it had been sent before with DUP 1, the ones queued while it was
// away with DUP 0, or DUP 1 after a restart since the store does not know
// whether they were sent), then the messages routed to it during the
// resumption, each once. mochi wrote a message routed to the new connection
// between registering it and resending the queue at once and then resent
// it with the queue (QoS 1 and 2 twice, possibly before older ones); and it
// lost one routed to the old connection after the new one had copied its
// queue. The test holds a message's routing in a hook until the new
// connection has its queue (the "late" message), and publishes more while
// the broker is about to resend the queue (the "new" ones), so both happen
// on every run. With a Receive Maximum, what exceeds it waits, and must
// come in the same order.
func TestResumeWhilePublishing(t *testing.T) {
	t.Parallel()
	type variant struct {
		name string
		v    byte
		opts []option
	}
	variants := []variant{
		{"3.1.1", v311, nil},
		{"5", v5, nil},
		{"5-receive-maximum-2", v5, []option{receiveMaximum(2)}},
	}
	for _, mode := range resumeModes {
		for _, va := range variants {
			t.Run(mode+"/"+va.name, func(t *testing.T) {
				t.Parallel()
				testResumeWhilePublishing(t, mode, va.v, va.opts)
			})
		}
	}
}

func testResumeWhilePublishing(t *testing.T, mode string, v byte, extra []option) {
	if *onMosquitto {
		t.Skip("acts inside mqtk's broker")
	}
	closeAfterBroker(t)
	const id = "resumer"
	// Routing resume/late to the resumer asks the test's hook (see onRoute).
	cfg := resumeConfig(t, mode, broker.Config{ACL: []broker.Rule{
		{Filter: "#", Access: broker.ReadWrite},
		{Filter: "resume/late", Access: broker.Read, Deny: true},
	}})
	b, h, addr := startHooked(t, cfg, id)
	opts := append([]option{persistent()}, extra...)

	s, _ := connect(t, addr, v, id, opts...)
	s.mustSubscribe(sub("resume/#", 2))
	p, _ := connect(t, addr, v, "resume-pub")
	p.pub("resume/sent", "sent", 1, false)
	s.expect(packets.Publish) // and never acknowledged
	s.disconnect()
	h.waitGone(t, 1)

	restored := mode == "restart" // DUP 1 on the whole queue
	want := []string{"resume/sent sent q1 dup=true"}
	for i := range 6 {
		qos := byte(1 + i%2)
		p.pub("resume/old", fmt.Sprint("old-", i), qos, false)
		want = append(want, fmt.Sprintf("resume/old old-%d q%d dup=%v", i, qos, restored))
	}
	p.sync() // the QoS 1 messages have been queued too
	if mode == "restart" {
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
		b, h, addr = startHooked(t, cfg, id)
		p, _ = connect(t, addr, v, "resume-pub")
	}

	lateHeld, connacked, published := make(chan struct{}), make(chan struct{}), make(chan struct{})
	h.mu.Lock()
	h.onRoute = func() { close(lateHeld); hold(connacked) }
	h.onConnack = func() { close(connacked); hold(published) }
	h.mu.Unlock()
	late := message("resume/late", "late", 1, false)
	late.PacketID = p.newID()
	p.send(late) // acknowledged once routed: after the hook lets it go
	awaitSignal(t, lateHeld, "the late message is being routed to the offline session")
	want = append(want, "resume/late late q1 dup=false")

	s = dial(t, addr, v, id)
	s.sendConnect(opts...)
	awaitSignal(t, connacked, "the session is resumed")
	p.await(packets.Puback, late.PacketID) // the late message has been routed
	for i := range 6 {
		qos := byte(1 + i%2)
		p.pub("resume/new", fmt.Sprint("new-", i), qos, false)
		want = append(want, fmt.Sprintf("resume/new new-%d q%d dup=false", i, qos))
	}
	// The last: a message missing before it fails the test at once.
	p.pub("resume/end", "end", 1, false)
	want = append(want, "resume/end end q1 dup=false")
	close(published)

	if ack := s.expect(packets.Connack); ack.ReasonCode != 0 || !ack.SessionPresent {
		t.Fatalf("resuming: got %s (session present %v), want success with the session present", describe(ack), ack.SessionPresent)
	}
	var got []string
	for len(got) < 2*len(want) {
		m := s.receive()
		got = append(got, brief(m))
		if string(m.Payload) == "end" {
			break
		}
	}
	if g, w := strings.Join(got, "\n"), strings.Join(want, "\n"); g != w {
		t.Fatalf("the resumed session got\n%s\nwant\n%s", g, w)
	}
	s.quiet("after the queue and the messages published while resuming")
}

// TestTakeoverOfResumingSession: a session taken over while it is being
// resumed, after its CONNACK and before its queue is resent, reaches the
// connection that took it over whole and in order. On the connection taken
// over, the Receive Maximum is smaller than the queue: mqtk's flowHook
// used to take what exceeded it out of the session at that CONNACK, to put
// it back once the resend had begun, and a takeover in between handed over
// the queue without those messages (lost from memory, their identifiers
// free for new ones). Now they stay in the session (MQTK.md, change 28).
func TestTakeoverOfResumingSession(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"memory", "persist"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			if *onMosquitto {
				t.Skip("acts inside mqtk's broker")
			}
			closeAfterBroker(t)
			const id = "twice"
			_, h, addr := startHooked(t, resumeConfig(t, mode, broker.Config{}), id)
			s, _ := connect(t, addr, v5, id, persistent())
			s.mustSubscribe(sub("twice/#", 1))
			s.disconnect()
			h.waitGone(t, 1)
			p, _ := connect(t, addr, v5, "twice-pub")
			var want []string
			for i := range 5 {
				p.pub("twice/q", fmt.Sprint(i), 1, false)
				want = append(want, fmt.Sprintf("twice/q %d q1 dup=false", i))
			}
			p.sync()

			connacked, takenOver := make(chan struct{}), make(chan struct{})
			h.mu.Lock()
			h.onConnack = func() { close(connacked); hold(takenOver) }
			h.mu.Unlock()
			first := dial(t, addr, v5, id)
			first.sendConnect(persistent(), receiveMaximum(2))
			awaitSignal(t, connacked, "the session is resumed with Receive Maximum 2")
			s, ack := connect(t, addr, v5, id, persistent())
			close(takenOver)
			if !ack.SessionPresent {
				t.Fatal("taking the session over: session present 0, want 1")
			}
			var got []string
			for _, m := range s.collect() {
				got = append(got, brief(m))
			}
			if g, w := strings.Join(got, "\n"), strings.Join(want, "\n"); g != w {
				t.Fatalf("the connection that took the session over got\n%s\nwant\n%s", g, w)
			}
		})
	}
}

// TestTooLargeDiscardedFromStore: a message discarded because it is too
// large for the client [MQTT-3.1.2-25] (see
// TestMQTT5_3_1_2_25_TooLargeDiscarded) is gone from the store too: after
// a restart, a connection without the limit does not get it.
func TestTooLargeDiscardedFromStore(t *testing.T) {
	t.Parallel()
	if *onMosquitto {
		t.Skip("restarts mqtk's broker")
	}
	closeAfterBroker(t)
	const id = "large-stored"
	small := func(pk *packets.Packet) { pk.Properties.MaximumPacketSize = 200 }
	cfg := resumeConfig(t, "persist", broker.Config{})
	b, h, addr := startHooked(t, cfg, id)
	s, _ := connect(t, addr, v5, id, persistent(), small)
	s.mustSubscribe(sub("large/stored", 1))
	s.disconnect()
	h.waitGone(t, 1)
	p, _ := connect(t, addr, v5, "large-stored-pub")
	p.pub("large/stored", strings.Repeat("x", 500), 1, false)
	p.pub("large/stored", "after", 1, false)
	p.sync()
	s, _ = connect(t, addr, v5, id, persistent(), small)
	s.receiveFrom("large/stored", "after")
	s.quiet("after the message that fits")
	s.disconnect()
	h.waitGone(t, 2)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	_, _, addr = startHooked(t, cfg, id)
	s, ack := connect(t, addr, v5, id, persistent())
	if !ack.SessionPresent {
		t.Fatal("after the restart: session present 0, want 1")
	}
	s.quiet("after the restart, without a Maximum Packet Size: the large message was discarded")
}

// topicOf resolves the topic of a PUBLISH a client receives on a
// connection with the Topic Alias Maximum max, with the aliases the server
// has set on it so far, and fails the test for an alias the connection may
// not carry or does not know.
func topicOf(t *testing.T, aliases map[uint16]string, max uint16, pk packets.Packet) string {
	t.Helper()
	a := pk.Properties.TopicAlias
	switch {
	case a == 0 && pk.TopicName == "":
		t.Fatalf("got %s: no topic and no alias", describe(pk))
	case a == 0:
	case a > max:
		t.Fatalf("got %s with topic alias %d, above the connection's Topic Alias Maximum %d [MQTT-3.1.2-26] [MQTT-3.1.2-27]", describe(pk), a, max)
	case pk.TopicName != "":
		aliases[a] = pk.TopicName
	default:
		topic, ok := aliases[a]
		if !ok {
			t.Fatalf("got %s with topic alias %d, which this connection never set (a protocol error, §3.3.2.3.4)", describe(pk), a)
		}
		return topic
	}
	return pk.TopicName
}

// TestResumeTopicAliases: the queue a session carries to its next
// connection holds full topic names. mochi queued a message as it sent it,
// with the topic replaced by an outbound topic alias once the connection
// knew the alias, so the next connection, which never agreed that alias
// (topic aliases belong to one connection [MQTT-3.3.2-7]), got a PUBLISH
// with an alias it did not know, or with one at all though it allowed
// none, and after a restart a PUBLISH with no topic and no alias. The
// queue is resent with topics, or with aliases set anew on the new
// connection, and later messages use those.
func TestResumeTopicAliases(t *testing.T) {
	t.Parallel()
	for _, mode := range resumeModes {
		for _, max := range []uint16{5, 0} {
			t.Run(fmt.Sprintf("%s/then-alias-maximum-%d", mode, max), func(t *testing.T) {
				t.Parallel()
				testResumeTopicAliases(t, mode, max)
			})
		}
	}
}

func testResumeTopicAliases(t *testing.T, mode string, max uint16) {
	if *onMosquitto {
		t.Skip("mosquitto sends no topic aliases")
	}
	closeAfterBroker(t)
	const id = "aliased"
	cfg := resumeConfig(t, mode, broker.Config{})
	b, h, addr := startHooked(t, cfg, id)

	s, _ := connect(t, addr, v5, id, persistent(), topicAliasMaximum(5))
	s.mustSubscribe(sub("alias/#", 1))
	p, _ := connect(t, addr, v5, "alias-pub")
	p.pub("alias/a", "1", 1, false)
	p.pub("alias/a", "2", 1, false)
	p.pub("alias/b", "3", 1, false)
	aliases := map[uint16]string{}
	for i, payload := range []string{"1", "2", "3"} {
		m := s.expect(packets.Publish)
		topicOf(t, aliases, 5, m)
		if string(m.Payload) != payload || m.Properties.TopicAlias == 0 {
			t.Fatalf("first connection: got %s alias %d, want %q with an alias", describe(m), m.Properties.TopicAlias, payload)
		}
		if i == 0 {
			s.ack(m) // 2 and 3 stay in the session; 2 came with the alias alone
		}
	}
	s.disconnect()
	h.waitGone(t, 1)
	if mode == "restart" {
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
		b, h, addr = startHooked(t, cfg, id)
		p, _ = connect(t, addr, v5, "alias-pub")
	}

	opts := []option{persistent()}
	if max > 0 {
		opts = append(opts, topicAliasMaximum(max))
	}
	s, ack := connect(t, addr, v5, id, opts...)
	if !ack.SessionPresent {
		t.Fatal("the session was not resumed")
	}
	aliases = map[uint16]string{}
	var got []string
	for range 2 {
		m := s.receive()
		got = append(got, fmt.Sprintf("%s %s dup=%v", topicOf(t, aliases, max, m), m.Payload, m.FixedHeader.Dup))
	}
	p.pub("alias/a", "4", 1, false)
	p.pub("alias/b", "5", 1, false)
	for range 2 {
		m := s.receive()
		got = append(got, fmt.Sprintf("%s %s dup=%v", topicOf(t, aliases, max, m), m.Payload, m.FixedHeader.Dup))
	}
	want := []string{"alias/a 2 dup=true", "alias/b 3 dup=true", "alias/a 4 dup=false", "alias/b 5 dup=false"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("the resumed session got %q, want %q", got, want)
	}
	s.quiet("after the messages")
}

// TestTopicAliasAfterRefusedWrite: a message the broker does not send
// because it exceeds the client's Maximum Packet Size [MQTT-3.1.2-25] sets
// no topic alias; the next message on its topic brings the topic (mochi
// had set the alias when it routed the dropped message, and sent the next
// one with the alias alone, which the client never learnt).
func TestTopicAliasAfterRefusedWrite(t *testing.T) {
	t.Parallel()
	addr := startMQTK(t, broker.Config{})
	s, _ := connect(t, addr, v5, "small", topicAliasMaximum(5), func(pk *packets.Packet) { pk.Properties.MaximumPacketSize = 200 })
	s.mustSubscribe(sub("big/#", 1))
	p, _ := connect(t, addr, v5, "big-pub")
	p.pub("big/t", strings.Repeat("x", 500), 0, false)
	p.pub("big/t", "small", 1, false)
	aliases := map[uint16]string{}
	m := s.receive()
	if topic := topicOf(t, aliases, 5, m); topic != "big/t" || string(m.Payload) != "small" {
		t.Errorf("got %s on %q, want the small message on big/t", describe(m), topic)
	}
	s.quiet("after the small message")
}
