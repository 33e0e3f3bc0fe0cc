package broker

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	paho "github.com/eclipse/paho.golang/packets"

	"mqtk/internal/mqttc"
)

// The publishers of these tests send queueWaitN messages of 1 KiB, more
// than socket buffers hold, through queues of queueWaitQueue.
const (
	queueWaitN     = 10000
	queueWaitQueue = 10
)

// publishLoad writes n PUBLISHes of 1 KiB at qos to "load" and a PINGREQ on
// pub, from a goroutine (the broker may stop reading it), and returns a
// channel that is closed when the broker has answered the PINGREQ: it has
// routed every message by then.
func publishLoad(t *testing.T, addr string, n int, qos byte) <-chan struct{} {
	pub := rawDial(t, addr)
	pub.send(t, &paho.Connect{ProtocolName: "MQTT", ProtocolVersion: 5, ClientID: "pub", CleanStart: true, KeepAlive: 600, Properties: &paho.Properties{}})
	pub.await(t, paho.CONNACK)
	var burst bytes.Buffer
	payload := bytes.Repeat([]byte("x"), 1024)
	for i := range n {
		p := &paho.Publish{Topic: "load", QoS: qos, Payload: payload, Properties: &paho.Properties{}}
		if qos > 0 {
			p.PacketID = uint16(i + 1)
		}
		p.WriteTo(&burst)
	}
	paho.NewControlPacket(paho.PINGREQ).WriteTo(&burst)
	routed := make(chan struct{})
	go func() {
		defer close(routed)
		if _, err := pub.conn.Write(burst.Bytes()); err != nil {
			t.Error(err)
			return
		}
		pub.conn.SetReadDeadline(time.Now().Add(time.Minute)) // a bound against a hang only
		for {
			p, err := paho.ReadPacket(pub.r)
			if err != nil {
				t.Errorf("the publisher's PINGRESP: %v", err)
				return
			}
			if p.Type == paho.PINGRESP {
				return
			}
		}
	}()
	return routed
}

// rawSubscriber connects a raw MQTT 5 client id with a receive buffer of
// rcvbuf bytes and subscribes it to "load" at qos; with expiry > 0 its
// session outlives the connection. It reads nothing more unless told to.
func rawSubscriber(t *testing.T, addr, id string, rcvbuf int, qos byte, expiry uint32) *rawConn {
	t.Helper()
	c := rawConnect(t, addr, id, rcvbuf, expiry)
	c.send(t, &paho.Subscribe{PacketID: 1, Subscriptions: []paho.SubOptions{{Topic: "load", QoS: qos}}, Properties: &paho.Properties{}})
	c.await(t, paho.SUBACK)
	return c
}

// rawConnect connects an MQTT 5 client id with a receive buffer of rcvbuf
// bytes and, if expiry is not 0, a persistent session (clean start 0)
// expiring after expiry seconds.
func rawConnect(t *testing.T, addr, id string, rcvbuf int, expiry uint32) *rawConn {
	t.Helper()
	c := rawDial(t, addr)
	if err := c.conn.(*net.TCPConn).SetReadBuffer(rcvbuf); err != nil {
		t.Fatal(err)
	}
	connect := &paho.Connect{ProtocolName: "MQTT", ProtocolVersion: 5, ClientID: id, CleanStart: expiry == 0, KeepAlive: 600, Properties: &paho.Properties{}}
	if expiry > 0 {
		connect.Properties.SessionExpiryInterval = &expiry
	}
	c.send(t, connect)
	c.await(t, paho.CONNACK)
	return c
}

// TestQueueWaitSlowSubscriber: with --queue-wait, a subscriber slower than
// its publisher (a burst of 10,000 messages of 1 KiB, as fast as TCP takes
// them, through a queue of 10) gets every message: the publisher waits for
// room instead of the message being dropped. (With QueueWait 0 most are
// dropped.)
func TestQueueWaitSlowSubscriber(t *testing.T) {
	s, addr := startLoopback(t, Config{MaxQueued: queueWaitQueue, QueueWait: time.Minute})
	// A receive buffer not as small as the stalled subscribers' 4 KiB: a
	// window that never reaches a loopback segment (64 KiB) is reopened
	// only by TCP's zero window probes, seconds apart.
	sub := rawSubscriber(t, addr, "slow", 128<<10, 0, 0)
	read := make(chan error, 1)
	go func() {
		sub.conn.SetReadDeadline(time.Now().Add(time.Minute)) // a bound against a hang only
		for i := 0; i < queueWaitN; {
			p, err := paho.ReadPacket(sub.r)
			if err != nil {
				read <- fmt.Errorf("after %d of %d messages: %w", i, queueWaitN, err)
				return
			}
			if p.Type == paho.PUBLISH {
				i++
			}
		}
		read <- nil
	}()

	<-publishLoad(t, addr, queueWaitN, 0) // the broker has routed them all
	if d := s.m.Info.Clone().MessagesDropped; d != 0 {
		t.Fatalf("%d messages dropped", d)
	}
	if err := <-read; err != nil {
		t.Fatal(err)
	}
}

// TestQueueWaitStalledSubscriber: with --queue-wait, a subscriber that
// stopped reading holds the publisher up once: after a wait in vain its
// messages are dropped at once (the publisher would otherwise wait a second
// per message, over an hour for these), and a healthy subscriber gets them
// all.
func TestQueueWaitStalledSubscriber(t *testing.T) {
	s, addr := startLoopback(t, Config{MaxQueued: queueWaitQueue, QueueWait: time.Second, WriteTimeout: time.Hour})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // a bound against a hang only
	defer cancel()

	rawSubscriber(t, addr, "stalled", 4096, 0, 0) // and it reads nothing more

	got := make(chan struct{}, queueWaitN)
	healthy, err := mqttc.Dial(ctx, mqttc.Config{Endpoint: endpointOf(t, s.URLs()[0]), ClientID: "healthy", CleanStart: true,
		OnMessage: func(*mqttc.Message) { got <- struct{}{} }})
	if err != nil {
		t.Fatal(err)
	}
	defer healthy.Disconnect(ctx)
	if _, err := healthy.Subscribe(ctx, []mqttc.Subscription{{Filter: "load"}}, mqttc.SubscribeOptions{}); err != nil {
		t.Fatal(err)
	}

	routed := publishLoad(t, addr, queueWaitN, 0)
	select {
	case <-routed:
	case <-ctx.Done():
		t.Fatal("the publisher was held up: the broker did not route its messages")
	}
	for i := 0; i < queueWaitN; i++ {
		select {
		case <-got:
		case <-ctx.Done():
			t.Fatalf("the healthy subscriber got %d of %d messages", i, queueWaitN)
		}
	}
	if d := s.m.Info.Clone().MessagesDropped; d == 0 {
		t.Error("nothing dropped for the stalled subscriber")
	}
}

// TestInflightCountAfterDrops: QoS 1 messages dropped because a stalled
// subscriber's queue is full are counted out of
// $SYS/broker/messages/inflight (MQTK.md change 23): the count equals what
// is in flight.
func TestInflightCountAfterDrops(t *testing.T) {
	s, addr := startLoopback(t, Config{MaxQueued: queueWaitQueue, WriteTimeout: time.Hour})
	rawSubscriber(t, addr, "stalled", 4096, 1, 0) // and it reads nothing more

	<-publishLoad(t, addr, queueWaitN, 1) // more than the socket buffers hold
	cl, ok := s.m.Clients.Get("stalled")
	if !ok {
		t.Fatal("the stalled client is gone")
	}
	info := s.m.Info.Clone()
	if info.MessagesDropped == 0 {
		t.Fatal("nothing dropped: the test did not fill the queue")
	}
	if n := int64(cl.State.Inflight.Len()); info.Inflight != n {
		t.Errorf("$SYS inflight %d, in flight %d (%d dropped)", info.Inflight, n, info.MessagesDropped)
	}
}

// TestInflightCountAfterResume: a persistent session's queue is counted in
// $SYS/broker/messages/inflight once while the client is away and still
// once after it resumes the session, and nothing when acknowledged. mochi
// counted the queue out when the new connection took it over from the old
// one (ClearInflights on the old connection's copy), though the new one
// holds it: the count fell to 0, and below as the messages were
// acknowledged.
func TestInflightCountAfterResume(t *testing.T) {
	s, addr := startLoopback(t, Config{})
	const n = 5
	sub := rawSubscriber(t, addr, "resumed", 1<<16, 1, 3600)
	sub.conn.Close()
	<-publishLoad(t, addr, n, 1) // each acknowledged once queued for the session
	inflight := func(what string, want int64) {
		t.Helper()
		if got := s.m.Info.Clone().Inflight; got != want {
			t.Errorf("%s: $SYS inflight %d, want %d", what, got, want)
		}
	}
	inflight("the session away with its queue", n)

	c := rawConnect(t, addr, "resumed", 1<<16, 3600)
	var ids []uint16
	c.conn.SetReadDeadline(time.Now().Add(time.Minute)) // a bound against a hang only
	for len(ids) < n {
		p, err := paho.ReadPacket(c.r)
		if err != nil {
			t.Fatalf("the resumed session's queue: %v", err)
		}
		if pub, ok := p.Content.(*paho.Publish); ok {
			ids = append(ids, pub.PacketID)
		}
	}
	inflight("the queue resent", n)
	for _, id := range ids {
		c.send(t, &paho.Puback{PacketID: id, Properties: &paho.Properties{}})
	}
	c.send(t, paho.NewControlPacket(paho.PINGREQ))
	c.await(t, paho.PINGRESP) // the acknowledgements have been read
	inflight("all acknowledged", 0)
}
