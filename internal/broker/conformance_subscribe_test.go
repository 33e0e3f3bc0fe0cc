package broker_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"

	"mqtk/internal/broker"
)

// Subscriptions: overlapping ones, shared ones, subscription identifiers,
// No Local.

// TestMQTT_3_3_5_1_OverlappingSubscriptions: "When Clients make
// subscriptions with Topic Filters that include wildcards, it is possible
// for a Client's subscriptions to overlap so that a published message might
// match multiple filters. In this case the Server MUST deliver the message
// to the Client respecting the maximum QoS of all the matching
// subscriptions. In addition, the Server MAY deliver further copies of the
// message, one for each additional matching subscription and respecting the
// subscription's QoS in each case" (3.1.1 [MQTT-3.3.5-1], 5
// [MQTT-3.3.4-2]). mqtk's broker (mochi) sends one copy; mosquitto one per
// subscription: both conform.
func TestMQTT_3_3_5_1_OverlappingSubscriptions(t *testing.T) {
	t.Parallel()
	forStatements(t, statements{v31: "MQTT-3.3.5-1", v311: "MQTT-3.3.5-1", v5: "MQTT-3.3.4-2"}, func(t *testing.T, v byte) {
		addr := startBroker(t)
		s, _ := connect(t, addr, v, "overlap")
		s.mustSubscribe(sub("over/+", 0), sub("over/#", 2), sub("over/a", 1))
		p, _ := connect(t, addr, v, "pub")
		for qos := byte(0); qos <= 2; qos++ {
			p.pub("over/a", fmt.Sprint(qos), qos, false)
			p.sync()
			got := s.collect()
			if len(got) == 0 || len(got) > 3 {
				t.Fatalf("published at QoS %d: got %d copies, want 1 to 3 (one per matching subscription)", qos, len(got))
			}
			var qoss []int
			for _, m := range got {
				qoss = append(qoss, int(m.FixedHeader.Qos))
			}
			// One copy at QoS min(published, 2) at least, and no copy above
			// what its subscription and the message allow.
			if slices.Max(qoss) != int(qos) {
				t.Errorf("published at QoS %d: copies at QoS %v, want one at QoS %d (the highest of the matching subscriptions, 2, capped by the message's)", qos, qoss, qos)
			}
			if len(got) == 3 {
				slices.Sort(qoss)
				if want := []int{0, min(int(qos), 1), int(qos)}; !slices.Equal(qoss, want) {
					t.Errorf("published at QoS %d: one copy per subscription at QoS %v, want %v", qos, qoss, want)
				}
			}
		}
	})
}

// TestMQTT5_3_3_4_3_SubscriptionIdentifiers: "If the Client specified a
// Subscription Identifier for any of the overlapping subscriptions the
// Server MUST send those Subscription Identifiers in the message which is
// published as the result of the subscriptions" [MQTT-3.3.4-3]. "If the
// Server sends a single copy of the message it MUST include in the PUBLISH
// packet the Subscription Identifiers for all matching subscriptions which
// have a Subscription Identifiers, their order is not significant"
// [MQTT-3.3.4-4]; "If the Server sends multiple PUBLISH packets it MUST
// send, in each of them, the Subscription Identifier of the matching
// subscription if it has a Subscription Identifier" [MQTT-3.3.4-5]. A
// subscription replaced by one without an identifier loses it (§3.8.2.1.2),
// and retained messages sent on subscribing carry it.
func TestMQTT5_3_3_4_3_SubscriptionIdentifiers(t *testing.T) {
	t.Parallel()
	addr := startBroker(t)
	p, _ := connect(t, addr, v5, "pub")
	p.pub("sidr/r", "retained", 1, true)
	s, _ := connect(t, addr, v5, "sid")

	t.Run("retained", func(t *testing.T) {
		s.mustSubscribeProps(packets.Properties{SubscriptionIdentifier: []int{7}}, sub("sidr/r", 1))
		if got := s.receiveFrom("sidr/r", "retained"); !slices.Equal(got.Properties.SubscriptionIdentifier, []int{7}) {
			t.Errorf("retained message on subscribing: subscription identifiers %v, want [7]", got.Properties.SubscriptionIdentifier)
		}
	})
	t.Run("MQTT-3.3.4-3", func(t *testing.T) {
		s.mustSubscribeProps(packets.Properties{SubscriptionIdentifier: []int{1}}, sub("sid/+", 1))
		s.mustSubscribeProps(packets.Properties{SubscriptionIdentifier: []int{268435455}}, sub("sid/#", 1))
		s.mustSubscribe(sub("sid/x", 1))
		p.pub("sid/x", "x", 1, false)
		p.sync()
		got := s.collect()
		var all []int
		for _, m := range got {
			all = append(all, m.Properties.SubscriptionIdentifier...)
			if len(got) > 1 && len(m.Properties.SubscriptionIdentifier) > 1 {
				t.Errorf("one of %d copies carries identifiers %v, want at most its own subscription's [MQTT-3.3.4-5]", len(got), m.Properties.SubscriptionIdentifier)
			}
		}
		slices.Sort(all)
		if !slices.Equal(all, []int{1, 268435455}) {
			t.Errorf("%d copies with subscription identifiers %v, want 1 and 268435455 (sid/x has none) [MQTT-3.3.4-4]", len(got), all)
		}
	})
	t.Run("replaced", func(t *testing.T) {
		s.mustSubscribe(packets.Subscription{Filter: "sid/+", Qos: 1, RetainHandling: 2})
		s.mustSubscribe(packets.Subscription{Filter: "sid/#", Qos: 1, RetainHandling: 2})
		p.pub("sid/y", "y", 1, false)
		p.sync()
		for _, m := range s.collect() {
			if len(m.Properties.SubscriptionIdentifier) > 0 {
				t.Errorf("got %s with subscription identifiers %v, want none: the subscriptions were replaced without one", describe(m), m.Properties.SubscriptionIdentifier)
			}
		}
	})
}

// TestMQTT5_3_8_3_3_NoLocal: No Local: "If the value is 1, Application
// Messages MUST NOT be forwarded to a connection with a ClientID equal to
// the ClientID of the publishing connection" [MQTT-3.8.3-3].
func TestMQTT5_3_8_3_3_NoLocal(t *testing.T) {
	t.Parallel()
	addr := startBroker(t)
	c, _ := connect(t, addr, v5, "self")
	c.mustSubscribe(packets.Subscription{Filter: "local/t", Qos: 1, NoLocal: true}, sub("local/other", 1))
	c.pub("local/t", "own", 1, false)
	c.pub("local/other", "own", 1, false)
	c.receiveFrom("local/other", "own") // a subscription without No Local
	c.quiet("its own message on a No Local subscription")
	p, _ := connect(t, addr, v5, "other")
	p.pub("local/t", "other's", 1, false)
	c.receiveFrom("local/t", "other's")
}

// TestMQTT5_3_8_3_4_SharedNoLocal: "It is a Protocol Error to set the No
// Local bit to 1 on a Shared Subscription" [MQTT-3.8.3-4]: the server
// closes the connection (4.13), maybe after DISCONNECT 0x82; a SUBACK with
// 0x82 would be no answer: it is not a SUBACK reason code [MQTT-3.9.3-2].
func TestMQTT5_3_8_3_4_SharedNoLocal(t *testing.T) {
	t.Parallel()
	addr := startBroker(t)
	c, _ := connect(t, addr, v5, "shared-local")
	c.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe}, PacketID: 1,
		Filters: packets.Subscriptions{{Filter: "$share/g/t", Qos: 1, NoLocal: true}}})
	c.expectClosedAfterError(0x82)
}

// TestMQTT5_4_8_2_SharedSubscriptions: a Shared Subscription "$share/{
// ShareName}/{filter}" ... "Each message is sent to only one of the
// Sessions" of the group (§4.8.2, [MQTT-4.8.2-1] [MQTT-4.8.2-2]), while
// each other group and each non-shared subscription gets every message,
// and "the Server MUST respect the granted QoS for the Client's
// subscription" [MQTT-4.8.2-3].
func TestMQTT5_4_8_2_SharedSubscriptions(t *testing.T) {
	t.Parallel()
	addr := startBroker(t)
	var group []*client
	for i := range 3 {
		c, _ := connect(t, addr, v5, fmt.Sprint("member", i))
		c.mustSubscribe(sub("$share/g/shared/+", byte(i%2)))
		group = append(group, c)
	}
	other, _ := connect(t, addr, v5, "other-group")
	other.mustSubscribe(sub("$share/h/shared/#", 2))
	plain, _ := connect(t, addr, v5, "plain")
	plain.mustSubscribe(sub("shared/+", 2))

	p, _ := connect(t, addr, v5, "pub")
	const n = 12 // within a broker's own inflight limit (mosquitto's is 20)
	for i := range n {
		p.pub("shared/t", fmt.Sprint(i), 1, false)
	}
	p.sync()

	seen := map[string]int{}
	for i, c := range group {
		for _, m := range c.collect() {
			seen[string(m.Payload)]++
			if m.FixedHeader.Qos != byte(i%2) {
				t.Errorf("%s: got %s, want QoS %d, its subscription's", c.id, describe(m), i%2)
			}
		}
	}
	for i := range n {
		if k := seen[fmt.Sprint(i)]; k != 1 {
			t.Errorf("message %d went to %d members of the group, want 1", i, k)
		}
	}
	for _, c := range []*client{other, plain} {
		if got := c.collect(); len(got) != n {
			t.Errorf("%s: got %d messages, want all %d", c.id, len(got), n)
		}
	}
}

// TestMQTT_4_7_2_1_DollarTopics: "The Server MUST NOT match Topic Filters
// starting with a wildcard character (# or +) with Topic Names beginning
// with a $ character" [MQTT-4.7.2-1]: neither live messages nor retained
// ones, for any $ topic, not $SYS alone.
func TestMQTT_4_7_2_1_DollarTopics(t *testing.T) {
	t.Parallel()
	forStatements(t, statements{v311: "MQTT-4.7.2-1", v5: "MQTT-4.7.2-1"}, func(t *testing.T, v byte) {
		addr := startBroker(t)
		p, _ := connect(t, addr, v, "pub")
		p.pub("$dollar/x", "retained", 1, true)
		p.pub("$dollar", "retained", 1, true)
		for _, filter := range []string{"#", "+/x", "+", "+/#"} {
			s, _ := connect(t, addr, v, "sub-"+broker.FilterID(filter))
			s.mustSubscribe(sub(filter, 1))
			p.pub("$dollar/x", "live", 1, false)
			for _, m := range s.collect() {
				if strings.HasPrefix(m.TopicName, "$") {
					t.Errorf("subscribed to %s: got %s", filter, describe(m))
				}
			}
		}
		// Named, they match.
		s, _ := connect(t, addr, v, "named")
		s.mustSubscribe(sub("$dollar/#", 1))
		var got []string
		for _, m := range s.collect() {
			got = append(got, m.TopicName)
		}
		slices.Sort(got)
		if strings.Join(got, " ") != "$dollar $dollar/x" {
			t.Errorf("subscribed to $dollar/#: retained %q, want $dollar and $dollar/x", got)
		}
	})
}

// TestMQTT_4_7_1_3_InvalidFilters: "The single-level wildcard can be used
// at any level in the Topic Filter ... it MUST occupy an entire level of
// the filter" [MQTT-4.7.1-3], so must the multi-level one, the last
// [MQTT-4.7.1-2]; a Shared Subscription's "ShareName that is at least one
// character long" is followed by a filter [MQTT-4.8.2-1]. A SUBSCRIBE with
// such a filter is refused: a SUBACK failure (0x80, in MQTT 5 a code of
// 0x80 or more) or the connection closed. (mochi granted all but "a/#/b"
// and "$share/g". mosquitto 2.0.11 grants the three $share ones, so they
// are left out with -conformance.mosquitto.)
func TestMQTT_4_7_1_3_InvalidFilters(t *testing.T) {
	t.Parallel()
	forStatements(t, statements{v31: "MQTT-4.7.1-3", v311: "MQTT-4.7.1-3", v5: "MQTT-4.7.1-3"}, func(t *testing.T, v byte) {
		addr := startBroker(t)
		filters := []string{"a/b+", "a+/b", "a#", "+a", "a/#/b"}
		if v == v5 && !*onMosquitto {
			filters = append(filters, "$share//a", "$share/g", "$share/g/")
		}
		for i, f := range filters {
			c, _ := connect(t, addr, v, fmt.Sprint("filter", i))
			c.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe}, PacketID: 1,
				Filters: packets.Subscriptions{{Filter: f, Qos: 1}}})
			fr, err := c.read()
			switch {
			case err != nil: // closed
			case fr.pk.FixedHeader.Type == packets.Suback:
				if len(fr.pk.ReasonCodes) != 1 || fr.pk.ReasonCodes[0] < 0x80 {
					t.Errorf("SUBSCRIBE %q: SUBACK % x, want it refused", f, fr.raw)
				}
			case v == v5 && fr.pk.FixedHeader.Type == packets.Disconnect && fr.pk.ReasonCode >= 0x80:
				c.expectClosed()
			default:
				t.Errorf("SUBSCRIBE %q: got %s, want it refused", f, describe(fr.pk))
			}
		}
	})
}
