package broker

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"mqtk/internal/mqttc"
)

// retained subscribes a new clean session to filter and returns the
// retained messages it gets, sorted by topic. To know it has them all, it
// then subscribes to endTopic, which filter must not match, where it has
// left a retained message: mochi sends a subscription's retained messages
// before it reads the next SUBSCRIBE.
func retained(t *testing.T, b *testBroker, filter, endTopic string) []*mqttc.Message {
	t.Helper()
	publish(t, publisher(t, b), &mqttc.Message{Topic: endTopic, Payload: []byte("end"), QoS: 1, Retain: true})
	id := "retained-" + FilterID(filter)
	sub := connect(t, b, id, false)
	sub.subscribe(t, b, id, filter, 2)
	sub.subscribe(t, b, id, endTopic, 1)
	var got []*mqttc.Message
	for {
		m := sub.receive(t)
		if m.Topic == endTopic {
			break
		}
		got = append(got, m)
	}
	sort.Slice(got, func(i, j int) bool { return got[i].Topic < got[j].Topic })
	return got
}

// TestPersistRetained: retained messages, with their properties, survive a
// restart and a crash; a cleared one stays cleared.
func TestPersistRetained(t *testing.T) {
	for _, crash := range []bool{false, true} {
		t.Run(map[bool]string{false: "restart", true: "crash"}[crash], func(t *testing.T) {
			b := startPersist(t, t.TempDir())
			pub := publisher(t, b)
			format := byte(1)
			withProps := &mqttc.Message{Topic: "ret/a", Payload: []byte(`{"v":1}`), QoS: 0, Retain: true, Props: mqttc.Properties{
				ContentType: "application/json", ResponseTopic: "ret/reply", CorrelationData: []byte("c-1"), PayloadFormat: &format,
				User: []mqttc.UserProperty{{Key: "k", Value: "v"}, {Key: "k", Value: "w"}},
			}}
			publish(t, pub, withProps)
			publish(t, pub, &mqttc.Message{Topic: "ret/b", Payload: []byte("b"), QoS: 1, Retain: true})
			publish(t, pub, &mqttc.Message{Topic: "ret/c", Payload: []byte("c"), QoS: 2, Retain: true})
			publish(t, pub, &mqttc.Message{Topic: "ret/cleared", Payload: []byte("x"), QoS: 1, Retain: true})
			publish(t, pub, &mqttc.Message{Topic: "ret/cleared", Payload: nil, QoS: 1, Retain: true})
			publish(t, pub, &mqttc.Message{Topic: "ret/b", Payload: []byte("b2"), QoS: 1, Retain: true})

			b = restart(t, b, crash)
			got := retained(t, b, "ret/#", "ret-end")
			var desc []string
			for _, m := range got {
				desc = append(desc, fmt.Sprintf("%s %s q%d retain=%v", m.Topic, m.Payload, m.QoS, m.Retain))
			}
			want := []string{`ret/a {"v":1} q0 retain=true`, "ret/b b2 q1 retain=true", "ret/c c q2 retain=true"}
			if strings.Join(desc, "\n") != strings.Join(want, "\n") {
				t.Fatalf("retained after the restart:\n%s\nwant\n%s", strings.Join(desc, "\n"), strings.Join(want, "\n"))
			}
			p := got[0].Props
			if p.ContentType != "application/json" || p.ResponseTopic != "ret/reply" || string(p.CorrelationData) != "c-1" ||
				p.PayloadFormat == nil || *p.PayloadFormat != 1 || fmt.Sprint(p.User) != fmt.Sprint(withProps.Props.User) {
				t.Errorf("properties after the restart: %+v", p)
			}
			if p.MessageExpiry != nil {
				t.Errorf("message expiry %d on a message published without one", *p.MessageExpiry)
			}
		})
	}
}

// TestPersistRetainedExpiry: a retained message never expires unless its
// publisher set an expiry (mochi's default would end it after 24 hours),
// and one that has an expiry keeps it across a restart, and then expires.
func TestPersistRetainedExpiry(t *testing.T) {
	b := startPersist(t, t.TempDir())
	pub := publisher(t, b)
	second, soon, hour := uint32(1), uint32(2), uint32(3600)
	publish(t, pub, &mqttc.Message{Topic: "exp/never", Payload: []byte("n"), QoS: 1, Retain: true})
	publish(t, pub, &mqttc.Message{Topic: "exp/second", Payload: []byte("s"), QoS: 1, Retain: true, Props: mqttc.Properties{MessageExpiry: &second}})
	publish(t, pub, &mqttc.Message{Topic: "exp/soon", Payload: []byte("s"), QoS: 1, Retain: true, Props: mqttc.Properties{MessageExpiry: &soon}})
	publish(t, pub, &mqttc.Message{Topic: "exp/hour", Payload: []byte("h"), QoS: 1, Retain: true, Props: mqttc.Properties{MessageExpiry: &hour}})

	never, ok := b.m.Topics.Retained.Get("exp/never")
	if !ok || never.Expiry != 0 || never.Properties.MessageExpiryInterval != 0 {
		t.Fatalf("exp/never: expiry %d (interval %d), want none", never.Expiry, never.Properties.MessageExpiryInterval)
	}
	before := map[string]int64{}
	for _, topic := range []string{"exp/soon", "exp/hour"} {
		pk, ok := b.m.Topics.Retained.Get(topic)
		if !ok || pk.Expiry == 0 {
			t.Fatalf("%s has no expiry", topic)
		}
		before[topic] = pk.Expiry
	}
	b.wait(t, "expired exp/second", 1)
	if _, ok := b.m.Topics.Retained.Get("exp/second"); ok {
		t.Error("exp/second is still retained after it expired")
	}

	first := b
	b = restart(t, b, false)
	restarted := time.Now().Unix()
	if _, ok := b.m.Topics.Retained.Get("exp/second"); ok {
		t.Error("exp/second came back after the restart")
	}
	if pk, ok := b.m.Topics.Retained.Get("exp/never"); !ok || pk.Expiry != 0 {
		t.Errorf("exp/never after the restart: present %v, expiry %d; want present, no expiry", ok, pk.Expiry)
	}
	if pk, ok := b.m.Topics.Retained.Get("exp/hour"); !ok || pk.Expiry != before["exp/hour"] || pk.ProtocolVersion != 5 {
		t.Errorf("exp/hour after the restart: present %v, expiry %d, protocol %d; want expiry %d, protocol 5", ok, pk.Expiry, pk.ProtocolVersion, before["exp/hour"])
	}
	got := retained(t, b, "exp/+", "exp-end")
	for _, m := range got {
		switch m.Topic {
		case "exp/never":
			if m.Props.MessageExpiry != nil {
				t.Errorf("exp/never is delivered with an expiry of %d", *m.Props.MessageExpiry)
			}
		case "exp/hour":
			if e := m.Props.MessageExpiry; e == nil || *e == 0 || *e > 3600 {
				t.Errorf("exp/hour is delivered with expiry %v, want what is left of 3600", e)
			}
		}
	}
	// exp/soon expires in the new broker, unless it did so in the first or
	// had expired by the restart (it is not restored then, though the
	// first broker's once-a-second sweep may not have seen it yet).
	if _, ok := b.m.Topics.Retained.Get("exp/soon"); ok {
		b.wait(t, "expired exp/soon", 1)
	} else if first.eventCount("expired exp/soon") == 0 && restarted <= before["exp/soon"] {
		t.Error("exp/soon was lost in the restart before it expired")
	}
	b.Close()
	for _, k := range storedKeys(t, b.dir) {
		if strings.Contains(k, "exp/second") || strings.Contains(k, "exp/soon") {
			t.Errorf("expired message still stored: %s", k)
		}
	}
}
