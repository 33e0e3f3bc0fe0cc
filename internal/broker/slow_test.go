package broker

import (
	"bytes"
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"

	"mqtk/internal/mqttc"
)

// TestStalledSubscriber: a subscriber that stops reading does not stall the
// publisher or a healthy subscriber; what cannot be queued for it is
// dropped and counted.
func TestStalledSubscriber(t *testing.T) {
	// A small queue for the stalled client to overflow. The healthy one is
	// a QoS 1 subscriber: mochi queues its messages only within its Receive
	// Maximum (paho's 65535 here), so with a queue that small it would lose
	// messages too whenever the publisher is faster (mochi drops a QoS 1
	// message that does not fit in the queue: a known gap, see the notes of
	// issue 4); 1000 leaves it room.
	s, err := Start(Config{Listen: []string{"127.0.0.1:0"}, MaxQueued: 1000})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	addr := strings.TrimPrefix(s.URLs()[0], "mqtt://")
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
	(&packets.Subscribe{PacketID: 1, Subscriptions: []packets.SubOptions{{Topic: "load", QoS: 0}}, Properties: &packets.Properties{}}).WriteTo(&wire)
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
