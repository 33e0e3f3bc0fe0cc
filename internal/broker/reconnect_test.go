package broker_test

import (
	"fmt"
	"testing"
)

// TestQuickReconnectKeepsSubscription: a client that disconnects and at
// once connects again with the same identifier and a clean session, and
// subscribes, receives what is then published: the old connection's
// clean-up must not take the new connection's subscription with it.
func TestQuickReconnectKeepsSubscription(t *testing.T) {
	addr := startBroker(t)
	forVersions(t, []byte{v31, v311, v5}, func(t *testing.T, v byte) {
		pub, _ := connect(t, addr, v, "qr-pub-"+versionName(v))
		topic := "qr/" + versionName(v)
		for i := 0; i < 200; i++ {
			id := "qr-sub-" + versionName(v)
			old, _ := connect(t, addr, v, id)
			old.mustSubscribe(sub(topic+"/#", 1))
			old.disconnect()
			c, _ := connect(t, addr, v, id)
			c.mustSubscribe(sub(topic+"/#", 1))
			payload := fmt.Sprint(i)
			pub.pub(topic+"/x", payload, 1, false)
			c.receiveFrom(topic+"/x", payload)
			c.disconnect()
		}
	})
}
