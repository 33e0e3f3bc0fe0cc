package bench_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"mqtk/internal/bench"
	"mqtk/internal/mqttc"
)

// loopback is a client whose publishes are delivered at once to every
// subscriber's OnMessage, through one reused Message and without
// allocating: what is left in a benchmark is the bench's own per-message
// work.
type loopback struct {
	mu   *sync.Mutex
	subs *[]func(*mqttc.Message)
	msg  *mqttc.Message
	done chan struct{}
}

type ok struct{}

func (ok) Wait(context.Context) error { return nil }

func (c loopback) PublishAsync(_ context.Context, m *mqttc.Message) (mqttc.Pending, error) {
	c.mu.Lock()
	c.msg.Topic, c.msg.Payload, c.msg.Received = m.Topic, m.Payload, time.Now()
	for _, s := range *c.subs {
		s(c.msg)
	}
	c.mu.Unlock()
	return ok{}, nil
}
func (c loopback) Publish(ctx context.Context, m *mqttc.Message) error {
	_, err := c.PublishAsync(ctx, m)
	return err
}
func (c loopback) Subscribe(context.Context, []mqttc.Subscription, mqttc.SubscribeOptions) ([]byte, error) {
	return []byte{0}, nil
}
func (c loopback) Unsubscribe(context.Context, ...string) error { return nil }
func (c loopback) Disconnect(context.Context) error             { return nil }
func (c loopback) Server() mqttc.ServerInfo                     { return mqttc.ServerInfo{} }
func (c loopback) Done() <-chan struct{}                        { return c.done }
func (c loopback) Err() error                                   { return nil }

// BenchmarkHotPath runs b.N messages through one publisher and one
// subscriber of a real run: header, send time, window, acknowledgement,
// tracker and histograms. allocs/op is the bench's own allocation per
// message (setup amortised over b.N); the MQTT client's is measured in
// internal/mqttc.
func BenchmarkHotPath(b *testing.B) {
	for _, qos := range []byte{0, 1} {
		b.Run(fmt.Sprintf("qos%d", qos), func(b *testing.B) {
			var mu sync.Mutex
			var subs []func(*mqttc.Message)
			msg := &mqttc.Message{}
			o := bench.Options{
				Config: bench.Config{Publishers: 1, Subscribers: 1, Messages: b.N, Size: 100, Inflight: 16, Topic: "b"},
				QoS:    qos, ClientID: "b", DrainIdle: time.Second,
				Dial: func(_ context.Context, cfg mqttc.Config) (mqttc.Client, error) {
					if cfg.OnMessage != nil {
						subs = append(subs, cfg.OnMessage)
					}
					return loopback{mu: &mu, subs: &subs, msg: msg, done: make(chan struct{})}, nil
				},
			}
			b.ReportAllocs()
			b.ResetTimer()
			res, err := bench.Run(context.Background(), o)
			if err != nil {
				b.Fatal(err)
			}
			if res.Received != uint64(b.N) {
				b.Fatalf("received %d of %d", res.Received, b.N)
			}
		})
	}
}
