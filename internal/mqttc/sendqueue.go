package mqttc

import (
	"context"
	"errors"
	"net"
	"sync"
	"time"
)

// sendQueue writes a connection's outgoing bytes from a goroutine of its
// own, so that whatever is queued while one write is under way goes out
// together in the next (natural batching, as nats.go's flusher does). Under
// load, a syscall and a TCP segment per packet become one per batch: a
// publisher with a window of messages in flight, or a subscriber
// acknowledging a burst of deliveries, writes them in a few syscalls instead
// of one each. When the connection is idle, a packet is written as soon as
// the writer goroutine runs.
//
// The queue is bounded: a producer that gets more than maxQueued bytes
// ahead of the socket waits, so TCP's backpressure still reaches it. A
// payload of maxQueued or more is written by its producer directly, in turn,
// rather than copied.
type sendQueue struct {
	conn net.Conn

	mu      sync.Mutex
	cond    *sync.Cond // broadcast when buf is taken, a write ends, or the writer stops
	buf     []byte     // queued, not yet taken by a write
	spare   []byte     // the previous write's buffer, reused
	writing bool       // a write is under way (by the writer or a direct one)
	err     error      // the first write error; every later put fails with it
	closed  bool
	waiting int // puts waiting for room

	wake    chan struct{} // capacity 1: buf may have something to write
	stopped chan struct{} // closed when the writer goroutine returns
	onErr   func(error)   // called once, from the writer, with the first error
}

// maxQueued bounds the bytes waiting in a sendQueue.
const maxQueued = 256 << 10

// closeFlushLimit bounds how long closing a connection waits for what is
// queued to be written (a DISCONNECT, the last publishes) when the broker has
// stopped reading. A variable for tests.
var closeFlushLimit = 5 * time.Second

func newSendQueue(conn net.Conn, onErr func(error)) *sendQueue {
	q := &sendQueue{conn: conn, wake: make(chan struct{}, 1), stopped: make(chan struct{}), onErr: onErr}
	q.cond = sync.NewCond(&q.mu)
	go q.run()
	return q
}

// put queues p for writing, in order with everything put before it. It
// returns the first write error, if one has happened.
func (q *sendQueue) put(p []byte) error { return q.putCtx(nil, p) }

// putCtx is put that, if ctx is not nil, stops waiting for room (or, for a
// large p, for its turn) when ctx ends and returns a *NotQueuedError:
// nothing of p was queued.
func (q *sendQueue) putCtx(ctx context.Context, p []byte) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(p) >= maxQueued {
		return q.writeDirect(ctx, p)
	}
	for q.err == nil && !q.closed && len(q.buf)+len(p) > maxQueued {
		q.waiting++
		err := q.wait(ctx)
		q.waiting--
		if err != nil {
			return err
		}
	}
	if q.err != nil {
		return q.err
	}
	if q.closed {
		return net.ErrClosed
	}
	idle := len(q.buf) == 0 && !q.writing
	q.buf = append(q.buf, p...)
	if idle {
		q.kick()
	}
	return nil
}

// wait waits for the queue to change or, if ctx is not nil, for ctx to
// end; q.mu is held.
func (q *sendQueue) wait(ctx context.Context) error {
	if ctx == nil {
		q.cond.Wait()
		return nil
	}
	if ctx.Err() != nil {
		return &NotQueuedError{Err: context.Cause(ctx)}
	}
	// The broadcast needs q.mu, which Wait releases: it cannot come
	// between the check above and the Wait.
	stop := context.AfterFunc(ctx, func() {
		q.mu.Lock()
		q.cond.Broadcast()
		q.mu.Unlock()
	})
	q.cond.Wait()
	stop()
	if ctx.Err() != nil {
		return &NotQueuedError{Err: context.Cause(ctx)}
	}
	return nil
}

// NotQueuedError is a write given up because its context ended while it
// waited for the broker to read what was written before: nothing of it was
// sent, and the connection is still usable.
type NotQueuedError struct{ Err error }

func (e *NotQueuedError) Error() string { return "not sent: " + e.Err.Error() }
func (e *NotQueuedError) Unwrap() error { return e.Err }

// notQueued reports whether err is, or wraps, a *NotQueuedError.
func notQueued(err error) bool {
	var nq *NotQueuedError
	return errors.As(err, &nq)
}

// writeDirect writes a large p once everything queued before it is written;
// q.mu is held. If ctx ends once the write has begun, the queue is aborted
// (part of a packet may be out: the connection cannot go on), which cuts
// the write short.
func (q *sendQueue) writeDirect(ctx context.Context, p []byte) error {
	for q.err == nil && !q.closed && (len(q.buf) > 0 || q.writing) {
		if err := q.wait(ctx); err != nil {
			return err
		}
	}
	if q.err != nil {
		return q.err
	}
	if q.closed {
		return net.ErrClosed
	}
	q.writing = true
	q.mu.Unlock()
	stop := func() bool { return false }
	if ctx != nil {
		stop = context.AfterFunc(ctx, q.abort)
	}
	_, err := q.conn.Write(p)
	stop()
	q.mu.Lock()
	q.writing = false
	q.cond.Broadcast()
	q.kick() // others may have queued behind this write, or closed the queue
	if err != nil {
		q.fail(err)
		return err
	}
	return nil
}

// kick wakes the writer goroutine.
func (q *sendQueue) kick() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// fail records the first write error; q.mu is held.
func (q *sendQueue) fail(err error) {
	if q.err != nil {
		return
	}
	q.err = err
	q.buf = nil
	q.cond.Broadcast()
	q.kick()
	if q.onErr != nil {
		go q.onErr(err)
	}
}

func (q *sendQueue) run() {
	defer close(q.stopped)
	q.mu.Lock()
	defer q.mu.Unlock()
	for {
		for len(q.buf) == 0 || q.writing {
			if q.err != nil || (q.closed && len(q.buf) == 0 && !q.writing) {
				q.cond.Broadcast()
				return
			}
			q.mu.Unlock()
			<-q.wake
			q.mu.Lock()
		}
		b := q.buf
		q.buf = q.spare[:0]
		q.writing = true
		q.cond.Broadcast() // room for producers waiting on the bound
		q.mu.Unlock()
		_, err := q.conn.Write(b)
		q.mu.Lock()
		q.writing = false
		q.cond.Broadcast()
		if cap(b) <= 2*maxQueued {
			q.spare = b[:0]
		}
		if err != nil {
			q.fail(err)
		}
	}
}

// writeErr is the first write error, if any.
func (q *sendQueue) writeErr() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.err
}

// flush waits until everything queued so far is written, or a write fails.
func (q *sendQueue) flush() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	for q.err == nil && (len(q.buf) > 0 || q.writing) {
		q.cond.Wait()
	}
	return q.err
}

// abort stops the queue at once: what is queued is dropped, a write under
// way is cut short, and put returns net.ErrClosed, including to a caller
// waiting for room (the broker has stopped reading and the caller's time is
// up).
func (q *sendQueue) abort() {
	q.mu.Lock()
	q.closed = true
	q.fail(net.ErrClosed)
	q.mu.Unlock()
	_ = q.conn.SetWriteDeadline(time.Now())
}

// close stops taking bytes, writes what is queued (for up to
// closeFlushLimit, after which the write is abandoned) and stops the writer.
// The connection itself is left open for the caller to close.
func (q *sendQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.cond.Broadcast()
	q.mu.Unlock()
	q.kick()
	t := time.NewTimer(closeFlushLimit)
	defer t.Stop()
	select {
	case <-q.stopped:
	case <-t.C:
		_ = q.conn.SetWriteDeadline(time.Now())
		<-q.stopped
	}
}
