package broker

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"mqtk/internal/mqttc"
)

// TestRetainWhileSubscribing stores and clears retained messages while
// other clients subscribe to filters that match them. mochi stored a
// retained message's topic without a lock the retained lookup for a new
// subscription honoured; under -race this test reported it (see
// third_party/mochi-server/MQTK.md). Without -race it checks that every
// subscription is granted and the broker survives.
func TestRetainWhileSubscribing(t *testing.T) {
	s, _ := startLoopback(t, Config{})
	ep := endpointOf(t, s.URLs()[0])
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // a bound against a hang only
	defer cancel()

	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for w := 0; w < 2; w++ {
		wg.Add(2)
		go func() {
			defer wg.Done()
			c, err := mqttc.Dial(ctx, mqttc.Config{Endpoint: ep, ClientID: fmt.Sprintf("retainer%d", w), CleanStart: true})
			if err != nil {
				errs <- err
				return
			}
			defer c.Disconnect(ctx)
			for i := 0; i < 300; i++ {
				payload := []byte("x")
				if i%3 == 2 {
					payload = nil // clear it again
				}
				if err := c.Publish(ctx, &mqttc.Message{Topic: fmt.Sprintf("rr/%d/t%d", w, i%7), Payload: payload, QoS: 1, Retain: true}); err != nil {
					errs <- err
					return
				}
			}
		}()
		go func() {
			defer wg.Done()
			c, err := mqttc.Dial(ctx, mqttc.Config{Endpoint: ep, ClientID: fmt.Sprintf("looker%d", w), CleanStart: true, OnMessage: func(*mqttc.Message) {}})
			if err != nil {
				errs <- err
				return
			}
			defer c.Disconnect(ctx)
			for i := 0; i < 300; i++ {
				if _, err := c.Subscribe(ctx, []mqttc.Subscription{{Filter: "rr/+/+"}}, mqttc.SubscribeOptions{}); err != nil {
					errs <- err
					return
				}
				if err := c.Unsubscribe(ctx, "rr/+/+"); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
