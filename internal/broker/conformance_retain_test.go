package broker_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"

	"mqtk/internal/broker"
)

// Retained messages.

// TestMQTT_3_3_1_5_RetainedStored: "If the RETAIN flag is set to 1, in a
// PUBLISH Packet sent by a Client to a Server, the Server MUST store the
// Application Message and its QoS, so that it can be delivered to future
// subscribers whose subscriptions match its topic name" (3.1.1 and 5
// [MQTT-3.3.1-5]); "When a new subscription is established, the last
// retained message, if any, on each matching topic name MUST be sent to the
// subscriber" (3.1.1 [MQTT-3.3.1-6]; 5 with Retain Handling 0
// [MQTT-3.3.1-9]), "with the RETAIN flag set to 1" (3.1.1 [MQTT-3.3.1-8], 5
// §3.3.1.3); a new retained message replaces the old one.
func TestMQTT_3_3_1_5_RetainedStored(t *testing.T) {
	t.Parallel()
	forStatements(t, statements{v31: "MQTT-3.3.1-5", v311: "MQTT-3.3.1-5", v5: "MQTT-3.3.1-5"}, func(t *testing.T, v byte) {
		addr := startBroker(t)
		p, _ := connect(t, addr, v, "pub")
		p.pub("ret/a", "old", 1, true)
		p.pub("ret/a", "new", 1, true)
		p.pub("ret/b", "b", 0, true)

		s, _ := connect(t, addr, v, "sub")
		s.mustSubscribe(sub("ret/a", 2))
		got := s.receiveFrom("ret/a", "new")
		if !got.FixedHeader.Retain || got.FixedHeader.Qos != 1 {
			t.Errorf("got %s, want the retained message at QoS 1 (its own) with RETAIN 1", describe(got))
		}
		s.quiet("after the retained message")

		// "ret/+" is a new subscription: both retained messages come, in
		// no particular order.
		s.mustSubscribe(sub("ret/+", 0))
		got2 := map[string]string{}
		for _, m := range s.collect() {
			got2[m.TopicName] = string(m.Payload)
			if !m.FixedHeader.Retain {
				t.Errorf("got %s, want RETAIN 1", describe(m))
			}
		}
		if len(got2) != 2 || got2["ret/a"] != "new" || got2["ret/b"] != "b" {
			t.Errorf("subscribing to ret/+: got %v, want ret/a new and ret/b b", got2)
		}
	})
}

// TestMQTT_3_3_1_6_RetainedParentOfMultiLevel: the retained messages sent
// to a new subscription ([MQTT-3.3.1-6]) are those of every topic it
// matches, and "sport/#" matches "sport" too (4.7.1.2, non-normative):
// the level before a "#" counts, at the end of "+/#" and "m/+/#" too.
func TestMQTT_3_3_1_6_RetainedParentOfMultiLevel(t *testing.T) {
	t.Parallel()
	forStatements(t, statements{v31: "MQTT-3.3.1-6", v311: "MQTT-3.3.1-6", v5: "MQTT-3.3.1-9"}, func(t *testing.T, v byte) {
		addr := startBroker(t)
		p, _ := connect(t, addr, v, "pub")
		for _, topic := range []string{"m", "m/a", "m/a/b", "mx", "x/a"} {
			p.pub(topic, topic, 1, true)
		}
		for filter, want := range map[string]string{
			"m/#":   "m m/a m/a/b",
			"m/+/#": "m/a m/a/b",
			"+/#":   "m m/a m/a/b mx x/a",
			"m/a/#": "m/a m/a/b",
			"#":     "m m/a m/a/b mx x/a",
		} {
			// A client of its own for each (closed at the end): mosquitto
			// sends the marker message collect uses once per matching
			// subscription, and "#" matches it.
			s, _ := connect(t, addr, v, "sub-"+broker.FilterID(filter))
			s.mustSubscribe(sub(filter, 1))
			var got []string
			for _, m := range s.collect() {
				got = append(got, m.TopicName)
			}
			slices.Sort(got)
			if strings.Join(got, " ") != want {
				t.Errorf("subscribing to %s: retained %q, want %q", filter, got, want)
			}
		}
	})
}

// TestMQTT_3_3_1_10_EmptyRetainedRemoves: "A PUBLISH Packet with a RETAIN
// flag set to 1 and a payload containing zero bytes will be processed as
// normal by the Server and sent to Clients with a subscription matching the
// topic name. Additionally any existing retained message with the same
// topic name MUST be removed" (3.1.1 [MQTT-3.3.1-10], 5 [MQTT-3.3.1-6]);
// "A zero byte retained message MUST NOT be stored" (3.1.1
// [MQTT-3.3.1-11], 5 [MQTT-3.3.1-7]).
func TestMQTT_3_3_1_10_EmptyRetainedRemoves(t *testing.T) {
	t.Parallel()
	forStatements(t, statements{v31: "MQTT-3.3.1-10", v311: "MQTT-3.3.1-10", v5: "MQTT-3.3.1-6"}, func(t *testing.T, v byte) {
		addr := startBroker(t)
		p, _ := connect(t, addr, v, "pub")
		p.pub("clear/a", "x", 1, true)
		live, _ := connect(t, addr, v, "live")
		live.mustSubscribe(sub("clear/a", 1))
		live.receiveFrom("clear/a", "x")

		p.pub("clear/a", "", 1, true)
		if got := live.receiveFrom("clear/a", ""); got.FixedHeader.Retain {
			t.Errorf("existing subscriber: got %s, want RETAIN 0 (\"as normal\")", describe(got))
		}

		s, _ := connect(t, addr, v, "sub")
		s.mustSubscribe(sub("clear/#", 1))
		s.quiet("subscribing after the retained message was removed")
	})
}

// TestMQTT_3_3_1_12_NonRetainedKeepsRetained: "If the RETAIN flag is 0, in
// a PUBLISH Packet sent by a Client to a Server, the Server MUST NOT store
// the message and MUST NOT remove or replace any existing retained message"
// (3.1.1 [MQTT-3.3.1-12], 5 [MQTT-3.3.1-8]).
func TestMQTT_3_3_1_12_NonRetainedKeepsRetained(t *testing.T) {
	t.Parallel()
	forStatements(t, statements{v31: "MQTT-3.3.1-12", v311: "MQTT-3.3.1-12", v5: "MQTT-3.3.1-8"}, func(t *testing.T, v byte) {
		addr := startBroker(t)
		p, _ := connect(t, addr, v, "pub")
		p.pub("keep/a", "retained", 1, true)
		p.pub("keep/a", "live", 1, false)
		p.pub("keep/b", "live", 1, false)
		p.pub("keep/c", "", 1, false)
		// A broker may acknowledge a PUBLISH before it routes it (mochi
		// did): wait until it has handled them all, so that none reaches
		// the subscription made next as a live message.
		p.sync()

		s, _ := connect(t, addr, v, "sub")
		s.mustSubscribe(sub("keep/#", 1))
		s.receiveFrom("keep/a", "retained")
		s.quiet("after the one retained message")
	})
}

// TestMQTT_3_3_1_9_LiveRetainFlag: the server "MUST set the RETAIN flag to
// 0 when a PUBLISH Packet is sent to a Client because it matches an
// established subscription regardless of how the flag was set in the
// message it received" (3.1.1 [MQTT-3.3.1-9]); in MQTT 5 that is Retain As
// Published 0: "the Server MUST set the RETAIN flag to 0 when forwarding an
// Application Message regardless of how the RETAIN flag was set in the
// received PUBLISH packet" [MQTT-3.3.1-12].
func TestMQTT_3_3_1_9_LiveRetainFlag(t *testing.T) {
	t.Parallel()
	forStatements(t, statements{v31: "MQTT-3.3.1-9", v311: "MQTT-3.3.1-9", v5: "MQTT-3.3.1-12"}, func(t *testing.T, v byte) {
		addr := startBroker(t)
		s, _ := connect(t, addr, v, "sub")
		s.mustSubscribe(sub("live/#", 2))
		p, _ := connect(t, addr, v, "pub")
		for qos := byte(0); qos <= 2; qos++ {
			p.pub("live/a", "x", qos, true)
			if got := s.receiveFrom("live/a", "x"); got.FixedHeader.Retain {
				t.Errorf("QoS %d: got %s, want RETAIN 0", qos, describe(got))
			}
		}
	})
}

// TestMQTT5_3_3_1_13_RetainAsPublished: "If the value of Retain As
// Published subscription option is set to 1, the Server MUST set the RETAIN
// flag equal to the RETAIN flag in the received PUBLISH packet"
// [MQTT-3.3.1-13].
func TestMQTT5_3_3_1_13_RetainAsPublished(t *testing.T) {
	t.Parallel()
	addr := startBroker(t)
	s, _ := connect(t, addr, v5, "sub")
	s.mustSubscribe(packets.Subscription{Filter: "rap/#", Qos: 1, RetainAsPublished: true})
	p, _ := connect(t, addr, v5, "pub")
	for _, retain := range []bool{true, false} {
		p.pub("rap/a", "x", 1, retain)
		if got := s.receiveFrom("rap/a", "x"); got.FixedHeader.Retain != retain {
			t.Errorf("published with RETAIN %v: got %s", retain, describe(got))
		}
	}
}

// TestMQTT_3_8_4_3_ResubscribeResendsRetained: a SUBSCRIBE with the filter
// of an existing subscription "MUST completely replace that existing
// Subscription with a new Subscription ... Any existing retained messages
// matching the Topic Filter MUST be re-sent" (3.1.1 [MQTT-3.8.4-3]); in
// MQTT 5, Retain Handling 0: "the Server MUST send the retained messages
// matching the Topic Filter of the subscription" [MQTT-3.3.1-9]
// [MQTT-3.8.4-4]. The new subscription's QoS applies.
func TestMQTT_3_8_4_3_ResubscribeResendsRetained(t *testing.T) {
	t.Parallel()
	forStatements(t, statements{v31: "MQTT-3.8.4-3", v311: "MQTT-3.8.4-3", v5: "MQTT-3.3.1-9"}, func(t *testing.T, v byte) {
		addr := startBroker(t)
		p, _ := connect(t, addr, v, "pub")
		p.pub("again/a", "r", 2, true)
		s, _ := connect(t, addr, v, "sub")
		s.mustSubscribe(sub("again/a", 2))
		if got := s.receiveFrom("again/a", "r"); got.FixedHeader.Qos != 2 {
			t.Errorf("got %s, want QoS 2", describe(got))
		}
		s.mustSubscribe(sub("again/a", 1))
		if got := s.receiveFrom("again/a", "r"); !got.FixedHeader.Retain || got.FixedHeader.Qos != 1 {
			t.Errorf("subscribing again: got %s, want the retained message again at the new QoS 1, RETAIN 1", describe(got))
		}
		p.pub("again/a", "live", 2, false)
		if got := s.receiveFrom("again/a", "live"); got.FixedHeader.Qos != 1 {
			t.Errorf("got %s, want QoS 1: the subscription was replaced", describe(got))
		}
		s.quiet("one subscription, one copy")
	})
}

// TestMQTT5_3_3_1_10_RetainHandling: Retain Handling 1: "if the
// subscription did not already exist, the Server MUST send all retained
// message matching the Topic Filter of the subscription to the Client, and
// if the subscription did exist the Server MUST NOT send the retained
// messages" [MQTT-3.3.1-10]; Retain Handling 2: "the Server MUST NOT send
// the retained messages" [MQTT-3.3.1-11].
func TestMQTT5_3_3_1_10_RetainHandling(t *testing.T) {
	t.Parallel()
	addr := startBroker(t)
	p, _ := connect(t, addr, v5, "pub")
	p.pub("rh/a", "r", 1, true)
	s, _ := connect(t, addr, v5, "sub")

	t.Run("MQTT-3.3.1-10", func(t *testing.T) {
		s.mustSubscribe(packets.Subscription{Filter: "rh/+", Qos: 1, RetainHandling: 1})
		if got := s.receiveFrom("rh/a", "r"); !got.FixedHeader.Retain {
			t.Errorf("got %s, want RETAIN 1", describe(got))
		}
		s.mustSubscribe(packets.Subscription{Filter: "rh/+", Qos: 1, RetainHandling: 1})
		s.quiet("subscribing again with Retain Handling 1")
	})
	t.Run("MQTT-3.3.1-11", func(t *testing.T) {
		s.mustSubscribe(packets.Subscription{Filter: "rh/#", Qos: 1, RetainHandling: 2})
		s.quiet("a new subscription with Retain Handling 2")
	})
}

// TestMQTT_3_1_2_7_RetainedOutliveSession: "Retained messages do not form
// part of the Session state in the Server, they MUST NOT be deleted when the
// Session ends" (3.1.1 [MQTT-3.1.2-7]; 5 §4.1).
func TestMQTT_3_1_2_7_RetainedOutliveSession(t *testing.T) {
	t.Parallel()
	forStatements(t, statements{v31: "MQTT-3.1.2-7", v311: "MQTT-3.1.2-7", v5: "4.1"}, func(t *testing.T, v byte) {
		addr := startBroker(t)
		p, _ := connect(t, addr, v, "pub")
		p.pub("outlive/a", "r", 1, true)
		p.disconnect()
		s, _ := connect(t, addr, v, "sub")
		s.mustSubscribe(sub("outlive/a", 1))
		s.receiveFrom("outlive/a", "r")
	})
}
