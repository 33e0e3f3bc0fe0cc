// mqtk: tests of direct writes (MQTK.md, change 25).

package mqtt

import (
	"bytes"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// directConn is a connection that records what is written to it, and by
// which way: WriteDirect takes at most room bytes (then none), and Write
// waits while gate is set.
type directConn struct {
	net.Conn // for the rest of net.Conn
	mu       sync.Mutex
	room     int // what WriteDirect takes from now on; -1: all
	wire     bytes.Buffer
	direct   int           // bytes written by WriteDirect
	waited   int           // bytes written by Write
	gate     chan struct{} // Write waits until it is closed, if not nil
	wrote    chan struct{} // a Write has been made
}

func newDirectConn(t *testing.T) *directConn {
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	return &directConn{Conn: a, room: -1, wrote: make(chan struct{}, 100)}
}

func (c *directConn) CanWriteDirect() bool { return true }

func (c *directConn) WriteDirect(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := len(p)
	if c.room >= 0 {
		n = min(n, c.room)
		c.room -= n
	}
	c.wire.Write(p[:n])
	c.direct += n
	return n, nil
}

func (c *directConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	gate := c.gate
	c.mu.Unlock()
	if gate != nil {
		<-gate
	}
	c.mu.Lock()
	c.wire.Write(p)
	c.waited += len(p)
	c.mu.Unlock()
	c.wrote <- struct{}{}
	return len(p), nil
}

// payloads decodes the MQTT 5 QoS 0 PUBLISH packets in b, and returns their
// payloads; it fails the test if b is not whole packets.
func payloads(t *testing.T, b []byte) (got []string) {
	t.Helper()
	for len(b) > 0 {
		var fh packets.FixedHeader
		if err := fh.Decode(b[0]); err != nil || fh.Type != packets.Publish {
			t.Fatalf("not a PUBLISH: % x", b)
		}
		rem, n, err := packets.DecodeLength(bytes.NewBuffer(b[1:]))
		if err != nil || 1+n+rem > len(b) {
			t.Fatalf("a packet cut short: % x", b)
		}
		body := b[1+n : 1+n+rem]
		b = b[1+n+rem:]
		topic := 2 + int(body[0])<<8 | int(body[1])
		props, pn, _ := packets.DecodeLength(bytes.NewBuffer(body[topic:]))
		got = append(got, string(body[topic+pn+props:]))
	}
	return got
}

// publishBytes is an MQTT 5 QoS 0 PUBLISH of payload to "a", encoded.
func publishBytes(payload string) []byte {
	return append([]byte{0x30, byte(2 + 1 + 1 + len(payload)), 0, 1, 'a', 0}, payload...)
}

// TestWriteDirect: a message routed to a client with nothing queued is
// written by the routing goroutine itself when the publisher has nothing
// more to be read (Mods.WriteDirect); what the socket does not take at once
// is written by a writer goroutine, before anything queued after it, and
// the packets reach the wire whole and in order.
func TestWriteDirect(t *testing.T) {
	s := newAllowServer(t, &Options{})
	setup := func(id string) (*Client, *directConn) {
		c := newDirectConn(t)
		cl := newV5Client(s, c, id)
		cl.startWriting()
		return cl, c
	}
	sub := packets.Subscription{Filter: "a"}
	publish := func(cl *Client, payload string, direct bool) {
		t.Helper()
		pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish}, TopicName: "a", Payload: []byte(payload)}
		pk.Mods.WriteDirect = direct
		if err := s.publishToClient(cl, sub, &pk); err != nil {
			t.Fatal(err)
		}
	}
	idle := func(cl *Client) bool {
		q := cl.State.outbound
		q.mu.Lock()
		defer q.mu.Unlock()
		return !q.running && q.n == 0
	}

	// All taken at once: written in the routing goroutine, no writer.
	cl, c := setup("all")
	for _, p := range []string{"m1", "m2", "m3"} {
		publish(cl, p, true)
		if !idle(cl) {
			t.Fatalf("%s: the queue is not idle after a direct write", p)
		}
	}
	if got := payloads(t, c.wire.Bytes()); !slices.Equal(got, []string{"m1", "m2", "m3"}) || c.waited != 0 {
		t.Errorf("wire %q, %d bytes by a writer goroutine; want m1 m2 m3, all written directly", got, c.waited)
	}

	// Part or none of the first taken at once: the rest, then what was
	// queued meanwhile, by the writer goroutine.
	for _, room := range []int{5, 0} {
		cl, c := setup(fmt.Sprintf("room %d", room))
		c.room, c.gate = room, make(chan struct{})
		publish(cl, "first", true) // room bytes direct, the rest left for the writer, held at the gate
		publish(cl, "second", true)
		publish(cl, "third", true)
		if c.direct != room || idle(cl) {
			t.Fatalf("room %d: %d bytes written directly, queue idle %v; want %d, and a writer at work", room, c.direct, idle(cl), room)
		}
		close(c.gate)
		want := append(append(publishBytes("first"), publishBytes("second")...), publishBytes("third")...)
		deadline := time.After(time.Minute) // a bound against a hang only
		for {
			c.mu.Lock()
			n := c.wire.Len()
			c.mu.Unlock()
			if n >= len(want) {
				break
			}
			select {
			case <-c.wrote:
			case <-deadline:
				t.Fatalf("room %d: the writer wrote %d of %d bytes", room, n, len(want))
			}
		}
		c.mu.Lock()
		wire := bytes.Clone(c.wire.Bytes())
		c.mu.Unlock()
		if !bytes.Equal(wire, want) {
			t.Errorf("room %d: wire %q (% x), want first second third", room, payloads(t, wire), wire)
		}
	}

	// Not when the publisher has more to be read, nor for a payload above
	// maxDirectPayload, nor while another write holds the client's writes.
	large := strings.Repeat("x", maxDirectPayload+1)
	for _, tc := range []struct {
		name    string
		payload string
		direct  bool
		busy    bool
	}{{"publisher busy", "m", false, false}, {"large", large, true, false}, {"writes busy", "m", true, true}} {
		cl, c := setup(tc.name)
		if tc.busy {
			cl.writeMu.Lock()
		}
		publish(cl, tc.payload, tc.direct)
		if tc.busy {
			cl.writeMu.Unlock()
		}
		select {
		case <-c.wrote:
		case <-time.After(time.Minute): // a bound against a hang only
			t.Fatalf("%s: nothing written", tc.name)
		}
		c.mu.Lock()
		got, direct := payloads(t, c.wire.Bytes()), c.direct
		c.mu.Unlock()
		if !slices.Equal(got, []string{tc.payload}) || direct != 0 {
			t.Errorf("%s: %d packets on the wire, %d bytes direct; want the one, by the writer goroutine", tc.name, len(got), direct)
		}
	}
}
