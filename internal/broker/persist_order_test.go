package broker

import (
	"fmt"
	"testing"

	"mqtk/internal/mqttc"
)

// TestQueueOrderWithoutPersistence: on a broker without persistence, a
// resumed session gets its queue in publish order (mochi resent it in
// random order within each second; MQTK.md change 27).
func TestQueueOrderWithoutPersistence(t *testing.T) {
	b := startPersistCfg(t, Config{})
	const id = "order-sub"
	away(t, b, id, "order/#", 2)
	pub := publisher(t, b)
	var want []*mqttc.Message
	for i := 0; i < 30; i++ {
		m := &mqttc.Message{Topic: fmt.Sprintf("order/%d", i), Payload: []byte(fmt.Sprint(i)), QoS: byte(1 + i%2)}
		publish(t, pub, m)
		want = append(want, m)
	}
	b.wait(t, "queued "+id, len(want)) // see TestPersistQueuedMessages
	sub := connect(t, b, id, true)
	sub.expect(t, b, "order/end", want)

}
