package broker

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
)

// DefaultWriteTimeout is how long a write to a client may make no progress
// before the connection is closed. It is the send timeout RabbitMQ and EMQX
// use for the same purpose (15s): long enough for TCP to ride out a few
// seconds of packet loss (its retransmissions back off 0.2, 0.4, ... 6.4 s,
// about 12.6 s in all) and for any link faster than a few KB/s to take a
// 64 KiB piece of a large message; short enough that a client that stopped
// reading is let go, its will published and its session kept for later,
// within seconds rather than after 1.5 times a keep-alive of minutes (or
// never, with keep-alive 0).
const DefaultWriteTimeout = 15 * time.Second

// shutdownGrace is how long Close lets writes to clients go on (the
// DISCONNECT each one is sent, a stalled client's pending publish) before
// it closes the connections under them, so that shutdown takes well under
// a second whatever state the clients are in.
const shutdownGrace = 250 * time.Millisecond

// writeChunk is the most written to the socket under one deadline: a large
// packet is written in pieces, so the timeout measures a stall, not the time
// a large message takes on a slow link.
const writeChunk = 64 << 10

// errWriteTimeout is what mochi sees as the reason a client went away after
// a write timed out (it reads it from the closed connection).
var errWriteTimeout = errors.New("write timeout")

// deadlineConn is the net.Conn the listener hands to mochi. Each Write must
// make progress within timeout or the connection is closed: mochi would
// otherwise wait as long as the keep-alive deadline it sets (1.5 times the
// client's keep-alive; forever with keep-alive 0), holding the client's lock
// all the while, which blocks the DISCONNECT sent to it on shutdown too.
//
// mochi sets one deadline for both directions (SetDeadline) from the
// keep-alive; here SetDeadline sets only the read deadline, which is what
// the keep-alive and the listener's CONNECT timeout are about, and the
// write deadline is this type's own. To spare a call per write, the write
// deadline is moved on only once a quarter of the timeout has passed since
// it was set, so a stalled write is detected between 3/4 and all of timeout
// after it last made progress.
//
// It works the same over TCP, TLS, Unix sockets and WebSockets (wsconn
// takes its write deadline under its write lock; this type sets it from the
// writing goroutine, before each write).
type deadlineConn struct {
	net.Conn
	timeout time.Duration
	// stopBy is the listener's: from Close on, the instant (Unix
	// nanoseconds) by which every write must be done; 0 before that.
	stopBy *atomic.Int64

	wmu      sync.Mutex // serialises writes (mochi does too, under its client lock)
	deadline time.Time  // the write deadline in force, under wmu
	writing  atomic.Bool
	timedOut atomic.Bool // a write timed out, not on shutdown: the connection is closed
	reported atomic.Bool // and that has been logged

	// raw reads and writes Conn's socket, if it is a TCP or Unix one (see
	// rawSocket); nil otherwise (TLS, WebSocket). rw is raw if there is
	// one, else Conn: what Read and Write go through.
	raw *rawSocket
	rw  io.ReadWriter

	readDeadline time.Time        // the read deadline set last (see SetDeadline)
	readSpan     time.Duration    // how far ahead it was then
	now          func() time.Time // the clock of SetDeadline; nil is time.Now (tests set it)
}

func newDeadlineConn(c net.Conn, timeout time.Duration, stopBy *atomic.Int64) *deadlineConn {
	d := &deadlineConn{Conn: c, timeout: timeout, stopBy: stopBy, raw: newRawSocket(c), rw: c}
	if d.raw != nil {
		d.rw = d.raw
	}
	return d
}

// WriteDirect writes as much of p as the socket takes at once, without
// waiting, for mochi's write queue (mqtt.DirectWriter): 0 and no error if it
// takes nothing, or if a Write is under way. Like Write, it closes the
// connection when a write fails.
func (c *deadlineConn) WriteDirect(p []byte) (int, error) {
	if c.raw == nil || !c.wmu.TryLock() {
		return 0, nil
	}
	defer c.wmu.Unlock()
	c.extend() // the socket refuses any write once its deadline has passed
	n, err := c.raw.WriteNow(p)
	if errors.Is(err, os.ErrDeadlineExceeded) { // shutting down: Write times it out
		return n, nil
	}
	if err != nil {
		_ = c.Conn.Close()
	}
	return n, err
}

// CanWriteDirect reports whether WriteDirect writes (mqtt.DirectWriter).
func (c *deadlineConn) CanWriteDirect() bool { return c.raw != nil }

var _ mqtt.DirectWriter = (*deadlineConn)(nil)

func (c *deadlineConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.writing.Store(true)
	defer c.writing.Store(false)
	n := 0
	for n < len(p) {
		stopping := c.extend()
		m, err := c.rw.Write(p[n:min(len(p), n+writeChunk)])
		n += m
		if err != nil {
			if !stopping && c.expired(err) {
				c.timedOut.Store(true)
			}
			// A write that failed part way leaves the stream in pieces:
			// nothing more can be sent, and mochi's reader must learn it.
			_ = c.Conn.Close()
			return n, err
		}
	}
	return n, nil
}

// extend moves the write deadline on, or to the listener's stop time once
// it is closing; it reports whether it is.
func (c *deadlineConn) extend() (stopping bool) {
	now := time.Now()
	want := now.Add(c.timeout)
	if s := c.stopBy.Load(); s != 0 {
		if stop := time.Unix(0, s); stop.Before(want) {
			if !c.deadline.Equal(stop) {
				c.deadline = stop
				_ = c.Conn.SetWriteDeadline(stop)
			}
			return true
		}
	}
	if c.deadline.Sub(now) < c.timeout*3/4 {
		c.deadline = want
		_ = c.Conn.SetWriteDeadline(want)
	}
	return false
}

// expired reports whether a write failed because its deadline passed (the
// error of a TLS or WebSocket connection does not always say so).
func (c *deadlineConn) expired(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) || !time.Now().Before(c.deadline)
}

// Read is the connection's Read, except that once a write has timed out it
// says so, and that is the reason mochi gives for the disconnect.
func (c *deadlineConn) Read(p []byte) (int, error) {
	n, err := c.rw.Read(p)
	if err != nil && c.timedOut.Load() {
		err = errWriteTimeout
	}
	return n, err
}

// SetDeadline sets the read deadline only: mochi's keep-alive and the
// listener's CONNECT timeout are about what the client sends; how long a
// write may take is this type's business.
//
// mochi sets the deadline again before every packet it reads, 1.5 times the
// keep-alive from then, and setting one costs a timer update, a few per cent
// of the broker's time under load. A deadline that moves on by less than a
// sixth of the span last set (or of its own, if shorter) is left where it
// is: the client still has 1.25 times its keep-alive from any packet. An
// earlier deadline, or none, is always set. Only the connection's reading
// goroutine sets it.
func (c *deadlineConn) SetDeadline(t time.Time) error {
	// A sixth of the shorter span: the one last set may be the CONNECT
	// timeout's, longer than the keep-alive's (a late CONNECT with a short
	// keep-alive was held to the CONNECT deadline).
	now := time.Now
	if c.now != nil {
		now = c.now
	}
	span := t.Sub(now())
	if !t.IsZero() && !c.readDeadline.IsZero() && !t.Before(c.readDeadline) && t.Sub(c.readDeadline) < min(c.readSpan, span)/6 {
		return nil
	}
	c.readDeadline, c.readSpan = t, span
	return c.Conn.SetReadDeadline(t)
}

// abortWrite closes the connection if a write to it is under way (on
// shutdown, once the grace period is over).
func (c *deadlineConn) abortWrite() {
	if c.writing.Load() {
		_ = c.Conn.Close()
	}
}

// writeTimeoutHook logs the client that was disconnected because a write to
// it timed out (at Warn, whether or not the broker is verbose).
type writeTimeoutHook struct {
	mqtt.HookBase
	log     *slog.Logger
	timeout time.Duration
}

func (h *writeTimeoutHook) ID() string           { return "mqtk-write-timeout" }
func (h *writeTimeoutHook) Provides(b byte) bool { return b == mqtt.OnDisconnect }

func (h *writeTimeoutHook) OnDisconnect(cl *mqtt.Client, err error, expire bool) {
	if c, ok := cl.Net.Conn.(*deadlineConn); ok && c.timedOut.Load() && c.reported.CompareAndSwap(false, true) {
		h.log.Warn("closed the connection: write timeout", "client", cl.ID, "remote", cl.Net.Remote, "timeout", h.timeout)
	}
}
