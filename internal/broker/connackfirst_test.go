package broker

import (
	"context"
	"sync"
	"testing"
	"time"

	"mqtk/internal/mqttc"
)

// TestConnackFirst: a client resuming a session while messages for it keep
// arriving gets CONNACK before any of them [MQTT-3.2.0-1]. mochi started the
// client's writer before sending CONNACK, so a message routed to the client
// in between could be written first and the client (paho) refused the
// connection ("received unexpected packet 3"); see
// third_party/mochi-server/MQTK.md. The race needs traffic: the test
// reconnects a persistent session many times under a stream of publishes,
// and a reconnect that fails is the bug.
func TestConnackFirst(t *testing.T) {
	s, _ := startLoopback(t, Config{})
	ep := endpointOf(t, s.URLs()[0])
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // a bound against a hang only
	defer cancel()
	expiry := uint32(600)
	cfg := mqttc.Config{Endpoint: ep, ClientID: "resumer", SessionExpiry: &expiry, OnMessage: func(*mqttc.Message) {}}
	c, err := mqttc.Dial(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Subscribe(ctx, []mqttc.Subscription{{Filter: "stream", QoS: 1}}, mqttc.SubscribeOptions{}); err != nil {
		t.Fatal(err)
	}
	_ = c.Disconnect(ctx)

	pub, err := mqttc.Dial(ctx, mqttc.Config{Endpoint: ep, ClientID: "streamer", CleanStart: true})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Disconnect(ctx)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		m := &mqttc.Message{Topic: "stream", Payload: []byte("x")}
		for {
			select {
			case <-stop:
				return
			default:
			}
			if err := pub.Publish(ctx, m); err != nil {
				return
			}
		}
	}()
	defer func() { close(stop); wg.Wait() }()

	for i := 0; i < 300; i++ {
		c, err := mqttc.Dial(ctx, cfg)
		if err != nil {
			t.Fatalf("reconnect %d: %v", i, err)
		}
		_ = c.Disconnect(ctx)
	}
}
