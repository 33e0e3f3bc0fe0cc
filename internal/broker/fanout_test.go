package broker_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"

	"mqtk/internal/broker"
)

// TestFanoutPerSubscriber: the subscribers of one message each get it as
// their subscription and connection make it (QoS, RETAIN, Subscription
// Identifiers, Topic Alias, packet identifier, protocol version), with the
// payload and the publisher's properties intact, though the broker no
// longer copies them for each (third_party/mochi-server/MQTK.md): the
// copies are written concurrently, and with -race this checks that they
// share nothing that is written. A message retained while they received
// it then reaches a new subscription, with that subscription's identifier.
func TestFanoutPerSubscriber(t *testing.T) {
	t.Parallel()
	addr := startMQTK(t, broker.Config{}) // mosquitto sends no topic aliases, and overlapping subscriptions' copies apart
	type subscriber struct {
		name     string
		version  byte
		aliases  uint16 // Topic Alias Maximum
		subs     []packets.Subscription
		ids      []int // Subscription Identifiers, one per SUBSCRIBE
		qos      byte  // granted
		retain   bool  // RETAIN 1 on the live message
		wantIDs  []int
		useAlias bool
	}
	subscribers := []*subscriber{
		{name: "v5-alias-rap", version: v5, aliases: 5, subs: []packets.Subscription{{Filter: "fan/+/x", Qos: 2, RetainAsPublished: true}}, ids: []int{7}, qos: 2, retain: true, wantIDs: []int{7}, useAlias: true},
		{name: "v5-plain", version: v5, subs: []packets.Subscription{sub("fan/a/x", 1)}, qos: 1},
		{name: "v5-overlap", version: v5, subs: []packets.Subscription{sub("fan/#", 0), sub("fan/a/+", 1)}, ids: []int{11, 9}, qos: 1, wantIDs: []int{9, 11}},
		{name: "v5-alias-one", version: v5, aliases: 1, subs: []packets.Subscription{sub("fan/a/x", 2)}, ids: []int{3}, qos: 2, wantIDs: []int{3}, useAlias: true},
		{name: "v311", version: v311, subs: []packets.Subscription{sub("fan/a/x", 2)}, qos: 2},
		{name: "v31", version: v31, subs: []packets.Subscription{sub("fan/#", 1)}, qos: 1},
	}
	clients := map[*subscriber]*client{}
	for _, s := range subscribers {
		var opts []option
		if s.aliases > 0 {
			opts = append(opts, topicAliasMaximum(s.aliases))
		}
		c, _ := connect(t, addr, s.version, "fan-"+s.name, opts...)
		for i, f := range s.subs {
			var props packets.Properties
			if i < len(s.ids) {
				props.SubscriptionIdentifier = []int{s.ids[i]}
			}
			c.mustSubscribeProps(props, f)
		}
		clients[s] = c
	}

	p, _ := connect(t, addr, v5, "fan-pub")
	props := packets.Properties{
		PayloadFormat: 1, PayloadFormatFlag: true, ContentType: "text/plain",
		ResponseTopic: "fan/reply", CorrelationData: []byte("corr"),
		User: []packets.UserProperty{{Key: "k", Val: "v1"}, {Key: "k", Val: "v2"}},
	}
	const n = 50
	for i := range n {
		m := message("fan/a/x", fmt.Sprint("m", i), 2, i == n-1)
		m.Properties = props
		m.Mods.AllowResponseInfo = true // else mochi's encoder leaves out the response topic and correlation data
		p.publish(m)
	}

	for _, s := range subscribers {
		c := clients[s]
		for i := range n {
			got := c.receive()
			name := fmt.Sprintf("%s, message %d", s.name, i)
			if want := fmt.Sprint("m", i); string(got.Payload) != want {
				t.Fatalf("%s: got %s, want payload %q", name, describe(got), want)
			}
			checkFanoutCopy(t, name, got, s.version, s.qos, s.retain && i == n-1, s.wantIDs, props)
			switch {
			case !s.useAlias:
				if got.TopicName != "fan/a/x" || got.Properties.TopicAliasFlag {
					t.Errorf("%s: topic %q alias %d, want the topic without an alias", name, got.TopicName, got.Properties.TopicAlias)
				}
			case i == 0:
				if got.TopicName != "fan/a/x" || got.Properties.TopicAlias == 0 {
					t.Errorf("%s: topic %q alias %d, want the topic with an alias", name, got.TopicName, got.Properties.TopicAlias)
				}
			default:
				if got.TopicName != "" || got.Properties.TopicAlias == 0 {
					t.Errorf("%s: topic %q alias %d, want the alias alone", name, got.TopicName, got.Properties.TopicAlias)
				}
			}
		}
		c.nothingPending("after the messages")
	}

	late, _ := connect(t, addr, v5, "fan-late")
	late.mustSubscribeProps(packets.Properties{SubscriptionIdentifier: []int{21}}, sub("fan/a/x", 1))
	got := late.receiveFrom("fan/a/x", fmt.Sprint("m", n-1))
	checkFanoutCopy(t, "retained", got, v5, 1, true, []int{21}, props)
}

func checkFanoutCopy(t *testing.T, name string, got packets.Packet, version, qos byte, retain bool, ids []int, props packets.Properties) {
	t.Helper()
	if got.FixedHeader.Qos != qos || got.FixedHeader.Retain != retain || got.FixedHeader.Dup {
		t.Errorf("%s: got %s, want QoS %d, retain %v, no DUP", name, describe(got), qos, retain)
	}
	if (qos > 0) != (got.PacketID != 0) {
		t.Errorf("%s: packet identifier %d at QoS %d", name, got.PacketID, qos)
	}
	p := got.Properties
	if version < v5 {
		if p.ContentType != "" || len(p.User) > 0 || len(p.SubscriptionIdentifier) > 0 {
			t.Errorf("%s: MQTT %s message with properties %+v", name, versionName(version), p)
		}
		return
	}
	if !slices.Equal(p.SubscriptionIdentifier, ids) {
		t.Errorf("%s: subscription identifiers %v, want %v", name, p.SubscriptionIdentifier, ids)
	}
	if p.PayloadFormat != props.PayloadFormat || !p.PayloadFormatFlag || p.ContentType != props.ContentType ||
		p.ResponseTopic != props.ResponseTopic || string(p.CorrelationData) != string(props.CorrelationData) ||
		!slices.Equal(p.User, props.User) {
		t.Errorf("%s: properties %+v, want the publisher's %+v", name, p, props)
	}
}
