package broker

import (
	"testing"
	"time"

	paho "github.com/eclipse/paho.golang/packets"
)

// TestTakeoverOfStalledClient: a client that reconnects while its old
// connection is stuck in a write (the old socket's buffers full: a device
// that lost its network and came back) gets its CONNACK without waiting for
// the old connection's write timeout (an hour here).
func TestTakeoverOfStalledClient(t *testing.T) {
	s, addr := startLoopback(t, Config{MaxQueued: queueWaitQueue, WriteTimeout: time.Hour})
	expiry := uint32(600)
	rawSubscriber(t, addr, "device", 4096, 1, expiry) // and it reads nothing more: the broker's writes to it block

	<-publishLoad(t, addr, queueWaitN, 1) // more than the socket buffers hold
	cl, ok := s.m.Clients.Get("device")
	if !ok || cl.State.Inflight.Len() == 0 || s.m.Info.Clone().MessagesDropped == 0 {
		t.Fatal("the old connection's queue did not fill: its writes are not stuck")
	}

	next := rawDial(t, addr)
	next.send(t, &paho.Connect{ProtocolName: "MQTT", ProtocolVersion: 5, ClientID: "device", KeepAlive: 600, Properties: &paho.Properties{SessionExpiryInterval: &expiry}})
	next.conn.SetReadDeadline(time.Now().Add(time.Minute)) // a bound against a hang only
	for {
		p, err := paho.ReadPacket(next.r)
		if err != nil {
			t.Fatalf("the new connection got no CONNACK: %v", err)
		}
		if p.Type == paho.CONNACK {
			break
		}
	}
}
