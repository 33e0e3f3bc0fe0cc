// mqtk: this file is mqtk's (MQTK.md, change 21).

package mqtt

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// outQueue is a client's queue of packets waiting to be written, in order,
// by a writer goroutine that runs only while the queue holds something.
//
// mqtk: it replaces a channel of MaximumClientWritesPending slots made at
// connect (64 KiB at the default 8,192, most of what an idle connection
// cost the broker's heap) and the goroutine (WriteLoop) that waited on it
// for the connection's whole life. The queue holds its packets in
// segments of outSegmentSize from a pool shared by all clients, taken as it
// fills and given back as it drains: an idle client holds none, and a burst
// allocates nothing once the pool has enough.
type outQueue struct {
	mu      sync.Mutex
	head    *outSegment // popped from at hi
	tail    *outSegment // pushed to at ti
	hi, ti  int
	n       int
	size    atomic.Int32 // n, for Len without the lock
	max     int          // the bound: push refuses beyond it
	started bool         // writing may begin (see start)
	running bool         // a writer goroutine is running
	waiting int          // pushWait calls waiting for room
	pops    uint64       // packets taken by the writer, ever
	// stuck: a pushWithin timed out waiting for room when pops was
	// stuckAt; until the writer takes another packet, pushWithin fails at
	// once.
	stuck   bool
	stuckAt uint64
	room    chan struct{}
	writer  func() // the writer goroutine's body: pops and writes until pop says stop
	// direct, if not nil, is tried before a writer goroutine is started
	// for a queue that was idle: it writes from the pushing goroutine what
	// the connection takes at once, and reports whether that finished the
	// writing (the queue is idle again); if not, the goroutine does the
	// rest. See Client.writeDirect.
	direct func() bool
}

const outSegmentSize = 32

type outSegment struct {
	pks  [outSegmentSize]*packets.Packet
	next *outSegment
}

var outSegments = sync.Pool{New: func() any { return new(outSegment) }}

func newOutQueue(max int, writer func(), direct func() bool) *outQueue {
	if max < 1 {
		max = 1
	}
	return &outQueue{max: max, writer: writer, direct: direct, room: make(chan struct{}, 1)}
}

// Len is the number of packets queued and not yet taken by the writer.
func (q *outQueue) Len() int { return int(q.size.Load()) }

// Cap is the most the queue holds.
func (q *outQueue) Cap() int { return q.max }

// push queues pk, and reports false, queuing nothing, if the queue is full.
// With direct, the caller may write pk itself if the queue was idle (see
// direct).
func (q *outQueue) push(pk *packets.Packet, direct bool) bool {
	q.mu.Lock()
	if q.n >= q.max {
		q.mu.Unlock()
		return false
	}
	spawn := q.add(pk)
	q.mu.Unlock()
	if spawn {
		q.write(direct)
	}
	return true
}

// pushWait queues pk, waiting for room while the queue is full, until done
// is closed (then it queues nothing and reports false).
func (q *outQueue) pushWait(pk *packets.Packet, done <-chan struct{}) bool {
	return q.pushUntil(pk, done, nil)
}

// pushWithin queues pk, waiting up to wait for room if the queue is full,
// and reports false, queuing nothing, if there is none by then or done is
// closed. After a wait that ended without room, pushWithin fails at once
// until the writer takes another packet. So a client that reads more
// slowly than its messages come is sent every one, at the pace it reads
// (the publisher waits, as TCP makes a publisher wait for a broker), while
// one that stopped reading costs its publishers one wait, and then what it
// is sent is dropped.
func (q *outQueue) pushWithin(pk *packets.Packet, direct bool, wait time.Duration, done <-chan struct{}) bool {
	if q.push(pk, direct) {
		return true
	}
	q.mu.Lock()
	stuck := q.stuck && q.stuckAt == q.pops
	q.mu.Unlock()
	if stuck || wait <= 0 {
		return false
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	if q.pushUntil(pk, done, t.C) {
		return true
	}
	q.mu.Lock()
	q.stuck, q.stuckAt = true, q.pops
	q.mu.Unlock()
	return false
}

// pushUntil queues pk, waiting for room while the queue is full, until done
// is closed or timeout fires (then it queues nothing and reports false).
func (q *outQueue) pushUntil(pk *packets.Packet, done <-chan struct{}, timeout <-chan time.Time) bool {
	for {
		q.mu.Lock()
		if q.n < q.max {
			spawn := q.add(pk)
			q.mu.Unlock()
			if spawn {
				go q.writer() // pushWait and a wait for room: never direct
			}
			return true
		}
		q.waiting++
		q.mu.Unlock()
		gaveUp := false
		select {
		case <-q.room:
		case <-done:
			gaveUp = true
		case <-timeout:
			gaveUp = true
		}
		q.mu.Lock()
		q.waiting--
		if q.waiting > 0 && q.n < q.max {
			select { // pass the wake-up on: room for more than one waiter
			case q.room <- struct{}{}:
			default:
			}
		}
		q.mu.Unlock()
		if gaveUp {
			return false
		}
	}
}

// add puts pk at the tail, under q.mu, and reports whether a writer must
// be started.
func (q *outQueue) add(pk *packets.Packet) bool {
	switch {
	case q.tail == nil:
		q.head = outSegments.Get().(*outSegment)
		q.tail, q.hi, q.ti = q.head, 0, 0
	case q.ti == outSegmentSize:
		next := outSegments.Get().(*outSegment)
		q.tail.next, q.tail, q.ti = next, next, 0
	}
	q.tail.pks[q.ti] = pk
	q.ti++
	q.n++
	q.size.Store(int32(q.n))
	if q.started && !q.running {
		q.running = true
		return true
	}
	return false
}

// pop takes the packet at the head for the writer. When the queue is
// empty it reports false, and the writer must return: the next push starts
// another.
func (q *outQueue) pop() (*packets.Packet, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.n == 0 {
		q.running = false
		return nil, false
	}
	pk := q.head.pks[q.hi]
	q.head.pks[q.hi] = nil
	q.hi++
	q.n--
	q.size.Store(int32(q.n))
	q.pops++
	if q.n == 0 { // the last segment goes back to the pool too
		q.head.next = nil
		outSegments.Put(q.head)
		q.head, q.tail, q.hi, q.ti = nil, nil, 0, 0
	} else if q.hi == outSegmentSize {
		done := q.head
		q.head, q.hi = done.next, 0
		done.next = nil
		outSegments.Put(done)
	}
	if q.waiting > 0 {
		select {
		case q.room <- struct{}{}:
		default:
		}
	}
	return pk, true
}

// write writes what was pushed to a queue that was idle: with direct, from
// the pushing goroutine if it can, else (or for what is left) in a writer
// goroutine.
//
// mqtk: a writer goroutine per message was most of the broker's latency at
// a light load, each a goroutine to create and, often, another thread to
// wake (MQTK.md, change 25).
func (q *outQueue) write(direct bool) {
	if direct && q.direct != nil && q.direct() {
		return
	}
	go q.writer()
}

// finish ends the direct write's turn as the writer (see direct): if
// nothing has been pushed meanwhile, the queue is idle again and finish
// reports true; otherwise the caller must start a writer goroutine.
func (q *outQueue) finish() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.n > 0 {
		return false
	}
	q.running = false
	return true
}

// start lets writing begin (packets queued before wait), starting a writer
// if anything is queued.
func (q *outQueue) start() {
	q.mu.Lock()
	q.started = true
	spawn := q.n > 0 && !q.running
	if spawn {
		q.running = true
	}
	q.mu.Unlock()
	if spawn {
		go q.writer()
	}
}
