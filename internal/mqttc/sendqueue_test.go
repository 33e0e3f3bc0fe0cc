package mqttc

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// tcpPair is both ends of a loopback TCP connection.
func tcpPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-accepted
	if server == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

// TestSendQueueOrder puts numbered records from several goroutines, some of
// them larger than the queue (written directly), and checks that the reader
// gets every record whole, and each goroutine's in order.
func TestSendQueueOrder(t *testing.T) {
	client, server := tcpPair(t)
	q := newSendQueue(client, nil)
	const writers, each = 4, 500
	big := maxQueued + 1000
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				size := 16
				if i%100 == 7 {
					size = big
				}
				rec := make([]byte, size)
				binary.BigEndian.PutUint32(rec[0:], uint32(size))
				binary.BigEndian.PutUint32(rec[4:], uint32(w))
				binary.BigEndian.PutUint32(rec[8:], uint32(i))
				if err := q.put(rec); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	done := make(chan error, 1)
	go func() {
		next := make([]uint32, writers)
		hdr := make([]byte, 12)
		for n := 0; n < writers*each; n++ {
			if _, err := io.ReadFull(server, hdr); err != nil {
				done <- err
				return
			}
			size, w, i := binary.BigEndian.Uint32(hdr), binary.BigEndian.Uint32(hdr[4:]), binary.BigEndian.Uint32(hdr[8:])
			if w >= writers || i != next[w] {
				done <- errors.New("record out of order or torn")
				return
			}
			next[w]++
			if _, err := io.CopyN(io.Discard, server, int64(size-12)); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	wg.Wait()
	if err := q.flush(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	q.close()
}

// TestSendQueueBackpressure: a producer whose peer does not read is held at
// the queue's bound, not allowed to buffer without limit; once the peer
// reads, everything arrives.
func TestSendQueueBackpressure(t *testing.T) {
	client, server := net.Pipe() // unbuffered: a write waits for a read
	defer client.Close()
	defer server.Close()
	q := newSendQueue(client, nil)
	rec := bytes.Repeat([]byte{'x'}, 1024)
	blocked := make(chan int, 1)
	go func() {
		n := 0
		for ; n < 4*maxQueued/len(rec); n++ {
			if err := q.put(rec); err != nil {
				break
			}
		}
		blocked <- n
	}()
	// Wait for the state a bounded queue must reach: the writer stuck in a
	// write and the queue full. An unbounded one would instead let the
	// producer finish.
	var got int64
	buf := make([]byte, 64<<10)
	for full := false; !full; {
		select {
		case n := <-blocked:
			t.Fatalf("producer put all %d records with nobody reading", n)
		case <-time.After(time.Millisecond): // poll the queue's state
		}
		q.mu.Lock()
		full = q.writing && len(q.buf)+len(rec) > maxQueued
		q.mu.Unlock()
	}
	// Read it all: the producer then completes.
	want := int64(4 * maxQueued)
	for got < want {
		n, err := server.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		got += int64(n)
	}
	if n := <-blocked; n != 4*maxQueued/len(rec) {
		t.Fatalf("put %d records, want %d", n, 4*maxQueued/len(rec))
	}
}

// TestSendQueueError: after the connection fails, put reports the error,
// onErr is called once, and flush and close return.
func TestSendQueueError(t *testing.T) {
	client, server := tcpPair(t)
	errs := make(chan error, 2)
	q := newSendQueue(client, func(err error) { errs <- err })
	server.Close()
	client.Close() // a write now fails at once
	var err error
	for i := 0; i < 10 && err == nil; i++ {
		err = q.put([]byte("hello"))
		if err == nil {
			err = q.flush()
		}
	}
	if err == nil {
		t.Fatal("no error from a closed connection")
	}
	if got := <-errs; got == nil {
		t.Fatal("onErr called with nil")
	}
	if err := q.put([]byte("again")); err == nil {
		t.Fatal("put after a failed write succeeded")
	}
	q.close()
	select {
	case e := <-errs:
		t.Fatalf("onErr called twice (%v)", e)
	default:
	}
}

// TestSendQueueCloseFlushes: what was queued before close reaches the peer.
func TestSendQueueCloseFlushes(t *testing.T) {
	client, server := tcpPair(t)
	q := newSendQueue(client, nil)
	for i := 0; i < 100; i++ {
		if err := q.put([]byte("0123456789")); err != nil {
			t.Fatal(err)
		}
	}
	q.close()
	client.Close()
	b, err := io.ReadAll(server)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != 1000 {
		t.Fatalf("peer got %d bytes, want 1000", len(b))
	}
	if err := q.put([]byte("late")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("put after close: %v, want net.ErrClosed", err)
	}
}

// TestSendQueueCloseStuck: a peer that never reads does not hold close for
// longer than closeFlushLimit.
func TestSendQueueCloseStuck(t *testing.T) {
	defer func(d time.Duration) { closeFlushLimit = d }(closeFlushLimit)
	closeFlushLimit = 50 * time.Millisecond
	client, server := net.Pipe()
	defer server.Close()
	q := newSendQueue(client, nil)
	if err := q.put([]byte("never read")); err != nil {
		t.Fatal(err)
	}
	ended := make(chan struct{})
	go func() { q.close(); close(ended) }()
	select {
	case <-ended:
	case <-time.After(closeFlushLimit + 10*time.Second):
		t.Fatal("close did not return after closeFlushLimit")
	}
}

// TestQueueCutShort: a packet whose context has ended is given up while it
// waits for room in the queue: with nothing of it queued, the error says so
// (NotQueuedError) and the queue goes on; with a part of it queued, the
// connection is aborted, and the error says that instead.
func TestQueueCutShort(t *testing.T) {
	for _, partial := range []bool{false, true} {
		t.Run(fmt.Sprint("partial=", partial), func(t *testing.T) {
			a, b := net.Pipe() // nobody reads b: the writer blocks on the first write
			defer a.Close()
			defer b.Close()
			q := newSendQueue(a, nil)
			for range 2 { // one in the blocked write, one filling the queue but 10 bytes
				if err := q.put(make([]byte, maxQueued-10)); err != nil {
					t.Fatal(err)
				}
			}
			c := &traceConn{Conn: a, q: q}
			ended, cancel := context.WithCancel(context.Background())
			cancel()
			c.LockCtx(ended)
			var err error
			if partial { // 10 bytes fit, and go; the rest waits
				_, _ = c.Write(make([]byte, 10))
				_, err = c.Write(make([]byte, maxBatch))
			} else {
				_, err = c.Write(make([]byte, maxBatch+20))
			}
			if uerr := c.UnlockErr(); err == nil {
				err = uerr
			}
			var nq *NotQueuedError
			if got := errors.As(err, &nq); got == partial {
				t.Errorf("error %v: NotQueuedError %v, want %v", err, got, !partial)
			}
			if aborted := q.writeErr() != nil; aborted != partial {
				t.Errorf("queue aborted %v, want %v (error %v)", aborted, partial, err)
			}
		})
	}
}
