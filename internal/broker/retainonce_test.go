package broker_test

import (
	"bytes"
	"fmt"
	"net"
	"slices"
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

// TestRetainedOnce: a retained message published while a subscription to
// its topic is being made reaches the subscriber once, live or as a
// retained message, never both (QoS 2 is exactly once). mochi stored the
// message, then (after acknowledging it) gathered its subscribers; and it
// added a subscription, then (after the SUBACK) looked up the retained
// messages. A subscription made between the first two steps, or a message
// retained between the last two, got the message twice; see
// third_party/mochi-server/MQTK.md, change 17.
//
// The test holds the broker in each gap in turn, at the hooks mochi calls
// there (OnRetainMessage after storing; OnSubscribed after subscribing,
// before the SUBACK), and does the other step meanwhile, so the interleaving
// happens every time; nothing is awaited by time. Subtest "order" checks
// that what is published while a subscription is made reaches the
// subscriber after that subscription's retained messages.
func TestRetainedOnce(t *testing.T) {
	if *onMosquitto {
		t.Skip("holds mqtk's broker at its hooks")
	}
	gates := newGates()
	closeAfterBroker(t)
	b := brokertest.Start(t, broker.Config{OnSubscribed: func(_, filter string) { gates.pass("subscribed " + filter) }})
	if err := b.AddHook(&gateHook{gates: gates}); err != nil {
		t.Fatal(err)
	}
	addr := net.JoinHostPort(b.Host, strconv.Itoa(b.Port))

	// A client publishes a retained message; the broker is held once it
	// has stored it, and another client subscribes to its topic then. The
	// subscription was made after the message was stored: the subscriber
	// gets it as a retained message (RETAIN 1), and not live as well.
	t.Run("publish", func(t *testing.T) {
		forVersions(t, allVersions, func(t *testing.T, v byte) {
			name := "publish-" + versionName(v)
			topic := "once/" + name
			stored := gates.add(t, "retained "+topic)
			p, _ := connect(t, addr, v, "pub-"+name)
			s, _ := connect(t, addr, v, "sub-"+name)
			pk := message(topic, "m", 2, true)
			pk.PacketID = p.newID()
			p.send(pk)
			stored.reached(t)
			s.mustSubscribe(sub(topic, 2))
			stored.release()
			p.await(packets.Pubrec, pk.PacketID)
			p.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pubrel}, PacketID: pk.PacketID})
			p.await(packets.Pubcomp, pk.PacketID)
			p.sync() // the broker has sent the message on
			expectOnce(t, s.collect(), topic, true)
		})
	})

	// A client subscribes; the broker is held once it has made the
	// subscription, before the SUBACK, and another client publishes a
	// retained message to the topic then. The message was published after
	// the subscription was made: the subscriber gets it live (RETAIN 0),
	// and not as a retained message as well.
	t.Run("subscribe", func(t *testing.T) {
		forVersions(t, allVersions, func(t *testing.T, v byte) {
			name := "subscribe-" + versionName(v)
			topic := "once/" + name
			subscribed := gates.add(t, "subscribed "+topic)
			p, _ := connect(t, addr, v, "pub-"+name)
			s, _ := connect(t, addr, v, "sub-"+name)
			id := s.newID()
			s.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe}, PacketID: id, Filters: packets.Subscriptions{sub(topic, 2)}})
			subscribed.reached(t)
			p.pub(topic, "m", 2, true) // acknowledged and sent on (pub syncs)
			subscribed.release()
			if ack := s.await(packets.Suback, id); len(ack.ReasonCodes) != 1 || ack.ReasonCodes[0] != 2 {
				t.Fatalf("got %s, want QoS 2 granted", describe(ack))
			}
			expectOnce(t, s.collect(), topic, false)
		})
	})

	// A retained message is on a topic; a client subscribes to the topic
	// and to another without retained messages, in one SUBSCRIBE, and the
	// broker is held once it has made the subscriptions, before the SUBACK.
	// Another client meanwhile publishes a new retained value to the topic,
	// a message not retained to it and one to the other topic. The
	// subscriber gets the old value first, as retained, then the others
	// live in the order published, each once, all after the SUBACK: it ends
	// with the new value, as it would on mosquitto. (Before the subscriber
	// had been held back, the live ones came first and the old value
	// last, MQTK.md change 17.)
	t.Run("order", func(t *testing.T) {
		forVersions(t, allVersions, func(t *testing.T, v byte) {
			name := "order-" + versionName(v)
			topic, other := "once/"+name, "once/"+name+"/other"
			subscribed := gates.add(t, "subscribed "+topic)
			p, _ := connect(t, addr, v, "pub-"+name)
			s, _ := connect(t, addr, v, "sub-"+name)
			p.pub(topic, "old", 1, true)
			id := s.newID()
			s.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe}, PacketID: id,
				Filters: packets.Subscriptions{sub(topic, 2), sub(other, 1)}})
			subscribed.reached(t)
			p.pub(topic, "new", 2, true)
			p.pub(topic, "live", 1, false)
			p.pub(other, "other", 0, false)
			p.sync() // the broker has sent the last two on
			subscribed.release()
			if ack := s.await(packets.Suback, id); len(ack.ReasonCodes) != 2 || ack.ReasonCodes[0] != 2 || ack.ReasonCodes[1] != 1 {
				t.Fatalf("got %s, want QoS 2 and 1 granted", describe(ack))
			}
			beforeAck := len(s.pending)
			got := s.collect()
			want := []string{
				fmt.Sprintf("%q %q retain", topic, "old"),
				fmt.Sprintf("%q %q", topic, "new"),
				fmt.Sprintf("%q %q", topic, "live"),
				fmt.Sprintf("%q %q", other, "other"),
			}
			var gotS []string
			for _, pk := range got {
				d := fmt.Sprintf("%q %q", pk.TopicName, pk.Payload)
				if pk.FixedHeader.Retain {
					d += " retain"
				}
				gotS = append(gotS, d)
			}
			if !slices.Equal(gotS, want) {
				t.Errorf("the subscriber got, in order:\n\t%s\nwant:\n\t%s", strings.Join(gotS, "\n\t"), strings.Join(want, "\n\t"))
			}
			if beforeAck > 0 {
				t.Errorf("%d of them came before the SUBACK, want none", beforeAck)
			}
		})
	})

	// The same as "publish" for a retained will: the broker is held once it
	// has stored the will of a client whose connection ended.
	t.Run("will", func(t *testing.T) {
		forVersions(t, allVersions, func(t *testing.T, v byte) {
			name := "will-" + versionName(v)
			topic := "once/" + name
			stored := gates.add(t, "retained "+topic)
			sent := gates.add(t, "will sent "+topic)
			sent.release() // only noted
			w, _ := connect(t, addr, v, "will-"+name, will(topic, "m", 2, true))
			s, _ := connect(t, addr, v, "sub-"+name)
			w.drop()
			stored.reached(t)
			s.mustSubscribe(sub(topic, 2))
			stored.release()
			sent.reached(t) // the broker has sent the will on
			expectOnce(t, s.collect(), topic, true)
		})
	})
}

// expectOnce fails unless got holds one message on topic with payload "m",
// with RETAIN as retained says.
func expectOnce(t *testing.T, got []packets.Packet, topic string, retained bool) {
	t.Helper()
	var n int
	for _, pk := range got {
		if pk.TopicName != topic || !bytes.Equal(pk.Payload, []byte("m")) {
			t.Errorf("got %s, want only %q m", describe(pk), topic)
			continue
		}
		n++
		if pk.FixedHeader.Retain != retained {
			t.Errorf("got %s, want RETAIN %v", describe(pk), retained)
		}
	}
	if n != 1 {
		t.Errorf("the subscriber got the message %d times, want once", n)
	}
}

// gates hold the broker's goroutine at an event (a name such as "retained
// " + topic) until the test lets it go.
type gates struct {
	mu sync.Mutex
	m  map[string]*gate
}

type gate struct {
	once     sync.Once
	arrived  chan struct{} // closed when the broker reaches the gate
	released chan struct{} // closed by the test
	relOnce  sync.Once
}

func newGates() *gates { return &gates{m: map[string]*gate{}} }

// add sets a gate at event; it is released when t ends if not before.
func (g *gates) add(t *testing.T, event string) *gate {
	gt := &gate{arrived: make(chan struct{}), released: make(chan struct{})}
	g.mu.Lock()
	g.m[event] = gt
	g.mu.Unlock()
	t.Cleanup(gt.release)
	return gt
}

// pass is called by the broker at event: it waits there if a gate is set
// (the first time it is reached).
func (g *gates) pass(event string) {
	g.mu.Lock()
	gt := g.m[event]
	g.mu.Unlock()
	if gt == nil {
		return
	}
	first := false
	gt.once.Do(func() { close(gt.arrived); first = true })
	if first {
		<-gt.released
	}
}

// reached waits for the broker to reach the gate.
func (gt *gate) reached(t *testing.T) {
	t.Helper()
	select {
	case <-gt.arrived:
	case <-time.After(wireTimeout): // a bound against a hang only
		t.Fatal("the broker did not reach the gate")
	}
}

func (gt *gate) release() { gt.relOnce.Do(func() { close(gt.released) }) }

// gateHook passes the gates of retained messages and of wills sent.
type gateHook struct {
	mqtt.HookBase
	gates *gates
}

func (h *gateHook) ID() string { return "test-gates" }

func (h *gateHook) Provides(b byte) bool { return b == mqtt.OnRetainMessage || b == mqtt.OnWillSent }

func (h *gateHook) OnRetainMessage(_ *mqtt.Client, pk packets.Packet, _ int64) {
	h.gates.pass("retained " + pk.TopicName)
}

func (h *gateHook) OnWillSent(_ *mqtt.Client, pk packets.Packet) {
	h.gates.pass("will sent " + pk.TopicName)
}
