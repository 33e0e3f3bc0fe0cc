package cli

import (
	"context"
	"syscall"
	"testing"
	"time"

	"mqtk/internal/broker"
	"mqtk/internal/brokertest"
	"mqtk/internal/mqttc"
)

// failingWrites is a connection whose writes fail while its reader has not
// seen the end yet: Done is still open and Err nil, as between a failed
// write and the reader's own error on a real socket.
type failingWrites struct{ mqttc.Client }

func (failingWrites) PublishAsync(context.Context, *mqttc.Message) (mqttc.Pending, error) {
	return nil, &mqttc.NetError{Op: "publish", Addr: "mqtt://test", Err: syscall.EPIPE}
}
func (failingWrites) Done() <-chan struct{}            { return make(chan struct{}) }
func (failingWrites) Err() error                       { return nil }
func (failingWrites) Disconnect(context.Context) error { return nil }

// TestPublishLinesFailedWrite: a write that fails with nothing awaiting an
// acknowledgement is a lost connection too: pub -l reconnects and sends
// the line on the new connection (it used to end with exit 3 and the rest
// of its input unsent).
func TestPublishLinesFailedWrite(t *testing.T) {
	b := brokertest.Start(t, broker.Config{})
	got := make(chan string, 2)
	sub, err := mqttc.Dial(context.Background(), mqttc.Config{
		Endpoint: mqttc.Endpoint{Scheme: "mqtt", Host: b.Host, Port: b.Port}, ClientID: "fw-sub", CleanStart: true,
		OnMessage: func(m *mqttc.Message) { got <- string(m.Payload) },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Disconnect(context.Background())
	if _, err := sub.Subscribe(context.Background(), []mqttc.Subscription{{Filter: "fw"}}, mqttc.SubscribeOptions{}); err != nil {
		t.Fatal(err)
	}
	a, _, errb := testApp("one\n", nil)
	r := &pubRun{a: a, o: &pubOptions{}, base: context.Background(),
		plan: &pubPlan{msg: mqttc.Message{Topic: "fw"}, lines: true, reconnect: time.Millisecond},
		cfg:  mqttc.Config{Endpoint: mqttc.Endpoint{Scheme: "mqtt", Host: b.Host, Port: b.Port}, ClientID: "fw-pub", ConnectTimeout: 10 * time.Second},
	}
	r.client = failingWrites{}
	r.q = newPubQueue(r.client, r.base, &r.unacked, nil)
	if err := r.publishLines(context.Background()); err != nil {
		t.Fatalf("publishLines: %v; stderr:\n%s", err, errb)
	}
	defer r.client.Disconnect(context.Background())
	select {
	case m := <-got:
		if m != "one" {
			t.Errorf("got %q, want one", m)
		}
	case <-time.After(time.Minute): // a bound against a hang, not a synchronisation
		t.Fatalf("the line never arrived; stderr:\n%s", errb)
	}
	if want := "mqtk: publish mqtt://test: broken pipe; reconnecting in 1ms (1 unacknowledged message to send again)\n"; errb.String() != want {
		t.Errorf("stderr %q, want %q", errb.String(), want)
	}
}
