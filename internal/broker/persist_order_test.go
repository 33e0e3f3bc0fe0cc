package broker

import (
	"fmt"
	"testing"

	"mqtk/internal/mqttc"
)

// TestQueueOrderWithoutPersistence: queueOrder alone, on a broker without
// persistence, makes a resumed session get its queue in publish order
// (mochi resends it in random order within each second).
func TestQueueOrderWithoutPersistence(t *testing.T) {
	b := startPersistCfg(t, Config{})
	if err := b.m.AddHook(newQueueOrder(), nil); err != nil {
		t.Fatal(err)
	}
	const id = "order-sub"
	sub := connect(t, b, id, true)
	sub.subscribe(t, b, id, "order/#", 2)
	sub.disconnect(t, b, id)
	pub := publisher(t, b)
	var want []*mqttc.Message
	for i := 0; i < 30; i++ {
		m := &mqttc.Message{Topic: fmt.Sprintf("order/%d", i), Payload: []byte(fmt.Sprint(i)), QoS: byte(1 + i%2)}
		publish(t, pub, m)
		want = append(want, m)
	}
	b.wait(t, "queued "+id, len(want)) // see TestPersistQueuedMessages
	sub = connect(t, b, id, true)
	sub.expect(t, b, "order/end", want)

}
