package broker

import (
	"context"
	"fmt"
	"testing"
	"time"

	"mqtk/internal/mqttc"
)

// TestRetainedBeyondQueue: a new subscription gets every retained message
// under its filter, even when there are more than the client's queue holds
// (mochi dropped the rest; see third_party/mochi-server/MQTK.md).
func TestRetainedBeyondQueue(t *testing.T) {
	s, _ := startLoopback(t, Config{MaxQueued: 50})
	ep := endpointOf(t, s.URLs()[0])
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // a bound against a hang only
	defer cancel()

	const n = 2000
	pub, err := mqttc.Dial(ctx, mqttc.Config{Endpoint: ep, ClientID: "filler", CleanStart: true})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		if err := pub.Publish(ctx, &mqttc.Message{Topic: fmt.Sprintf("r/%d", i), Payload: []byte("x"), QoS: 1, Retain: true}); err != nil {
			t.Fatal(err)
		}
	}
	_ = pub.Disconnect(ctx)

	for _, qos := range []byte{0, 1} {
		got := make(chan string, n)
		sub, err := mqttc.Dial(ctx, mqttc.Config{Endpoint: ep, ClientID: fmt.Sprintf("sub%d", qos), CleanStart: true,
			OnMessage: func(m *mqttc.Message) {
				if m.Retain {
					got <- m.Topic
				}
			}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := sub.Subscribe(ctx, []mqttc.Subscription{{Filter: "r/#", QoS: qos}}, mqttc.SubscribeOptions{}); err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		for len(seen) < n {
			select {
			case topic := <-got:
				seen[topic] = true
			case <-ctx.Done():
				t.Fatalf("QoS %d subscriber got %d of %d retained messages (dropped: %d)", qos, len(seen), n, s.m.Info.Clone().MessagesDropped)
			}
		}
		_ = sub.Disconnect(ctx)
	}
}
