// mqtk: tests of outQueue (MQTK.md, change 21).

package mqtt

import (
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// TestOutQueue: packets come out in the order pushed (across segments), one
// writer at a time, and none before start; a full queue refuses; a drained
// queue holds no segment.
func TestOutQueue(t *testing.T) {
	var (
		mu      sync.Mutex
		got     []uint16
		writers int
		most    int
		drained = make(chan struct{}, 100)
	)
	var q *outQueue
	q = newOutQueue(1000, func() {
		mu.Lock()
		writers++
		if writers > most {
			most = writers
		}
		mu.Unlock()
		for {
			pk, ok := q.pop()
			if !ok {
				break
			}
			mu.Lock()
			got = append(got, pk.PacketID)
			mu.Unlock()
		}
		mu.Lock()
		writers--
		mu.Unlock()
		select {
		case drained <- struct{}{}:
		default: // the test has as many as it needs to look again
		}
	}, nil)
	for i := 1; i <= 10; i++ {
		if !q.push(&packets.Packet{PacketID: uint16(i)}, false) {
			t.Fatalf("push %d refused", i)
		}
	}
	mu.Lock()
	early := len(got)
	mu.Unlock()
	if early != 0 || q.Len() != 10 {
		t.Fatalf("%d written before start, %d queued; want 0 and 10", early, q.Len())
	}
	q.start()
	recv(t, drained)
	for i := 11; i <= 1000; i++ { // pushes racing the writer's end start new writers
		q.push(&packets.Packet{PacketID: uint16(i)}, false)
	}
	for {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n == 1000 {
			break
		}
		recv(t, drained)
	}
	for i, id := range got {
		if id != uint16(i+1) {
			t.Fatalf("packet %d written %dth: out of order", id, i+1)
		}
	}
	if most != 1 {
		t.Errorf("%d writers at once, want 1", most)
	}
	if q.Len() != 0 || q.head != nil || q.tail != nil {
		t.Errorf("drained queue: %d queued, segments kept (head %p, tail %p)", q.Len(), q.head, q.tail)
	}

	full := newOutQueue(2, func() {}, nil) // never started: nothing is taken
	if !full.push(&packets.Packet{}, false) || !full.push(&packets.Packet{}, false) || full.push(&packets.Packet{}, false) {
		t.Errorf("a queue of 2 took %d, and refused the third: %v", full.Len(), full.Len() == 2)
	}
}

// TestOutQueuePushWait: pushWait waits while the queue is full, until the
// writer takes a packet or done is closed.
func TestOutQueuePushWait(t *testing.T) {
	q := newOutQueue(1, func() {}, nil)
	q.push(&packets.Packet{PacketID: 1}, false)
	done := make(chan struct{})
	pushed := make(chan bool)
	go func() { pushed <- q.pushWait(&packets.Packet{PacketID: 2}, done) }()
	for { // until it waits (the lock makes waiting visible)
		q.mu.Lock()
		w := q.waiting
		q.mu.Unlock()
		if w == 1 {
			break
		}
		runtime.Gosched()
	}
	if pk, ok := q.pop(); !ok || pk.PacketID != 1 {
		t.Fatal("pop: not packet 1")
	}
	if !recv(t, pushed) {
		t.Fatal("pushWait gave up after room was made")
	}
	if pk, ok := q.pop(); !ok || pk.PacketID != 2 {
		t.Fatal("pop: not packet 2")
	}

	q.push(&packets.Packet{PacketID: 3}, false)
	go func() { pushed <- q.pushWait(&packets.Packet{PacketID: 4}, done) }()
	close(done)
	if recv(t, pushed) {
		t.Error("pushWait queued after done was closed, into a full queue")
	}
	if q.Len() != 1 {
		t.Errorf("%d queued, want 1", q.Len())
	}
}

// TestOutQueuePushWithin: pushWithin waits for room up to its limit; after
// a wait in vain it fails at once (here with an hour to wait, which would
// hang the test) until the writer takes a packet, and then waits again
// (MQTK.md, change 22).
func TestOutQueuePushWithin(t *testing.T) {
	q := newOutQueue(1, func() {}, nil)
	q.push(&packets.Packet{PacketID: 1}, false)
	if q.pushWithin(&packets.Packet{PacketID: 2}, false, time.Millisecond, nil) {
		t.Fatal("pushWithin queued into a full queue no one takes from")
	}
	stuck := make(chan bool)
	go func() { stuck <- q.pushWithin(&packets.Packet{PacketID: 3}, false, time.Hour, nil) }()
	if recv(t, stuck) {
		t.Fatal("pushWithin queued into a full queue")
	}
	q.pop()
	if !q.pushWithin(&packets.Packet{PacketID: 4}, false, time.Hour, nil) {
		t.Fatal("pushWithin refused with room")
	}
	done := make(chan struct{})
	pushed := make(chan bool)
	go func() { pushed <- q.pushWithin(&packets.Packet{PacketID: 5}, false, time.Hour, done) }()
	for { // until it waits: the writer took a packet since the wait in vain
		q.mu.Lock()
		w := q.waiting
		q.mu.Unlock()
		if w == 1 {
			break
		}
		runtime.Gosched()
	}
	if pk, _ := q.pop(); pk.PacketID != 4 || !recv(t, pushed) {
		t.Fatalf("popped %d, and the waiting push did not get the room", pk.PacketID)
	}
	close(done)
	if q.pushWithin(&packets.Packet{PacketID: 6}, false, time.Hour, done) {
		t.Error("pushWithin queued into a full queue after done")
	}
}

// recv is <-ch, bounded against a hang (a regression here would otherwise
// wait for go test's timeout).
func recv[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(time.Minute):
		t.Fatal("nothing came: the queue hung")
		panic("unreachable")
	}
}
