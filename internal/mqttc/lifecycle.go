package mqttc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"syscall"
)

// lifecycle is what both backends keep about a connection once it is up:
// why it ended (the first reason wins) and a channel closed when it did.
// It gives them Done, Err and the errors of operations cut short.
type lifecycle struct {
	addr string
	conn *traceConn

	mu      sync.Mutex
	ended   bool
	endErr  error
	closing bool // Disconnect was called: the end is no error
	done    chan struct{}
}

func newLifecycle(addr string, conn *traceConn) lifecycle {
	return lifecycle{addr: addr, conn: conn, done: make(chan struct{})}
}

// endLost ends the client after the connection was lost: because the broker
// sent DISCONNECT (MQTT 5; its reason wins, whatever the library reports
// first), or because of err or the first read error.
func (l *lifecycle) endLost(err error) {
	if d := l.conn.serverDisconnect(); d != nil {
		e := &DisconnectError{Code: d.ReasonCode}
		if d.Properties != nil {
			e.Reason = d.Properties.ReasonString
		}
		l.end(e)
		return
	}
	if cause := l.conn.readErr(); cause != nil {
		err = cause
	}
	if err == nil {
		err = errors.New("connection closed")
	}
	l.end(&NetError{Op: "lost connection to", Addr: l.addr, Err: err})
}

// end records why the connection ended (the first reason wins) and closes done.
func (l *lifecycle) end(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ended {
		return
	}
	l.ended = true
	if !l.closing {
		l.endErr = err
	}
	close(l.done)
}

// startClosing marks the end that follows as asked for.
func (l *lifecycle) startClosing() {
	l.mu.Lock()
	l.closing = true
	l.mu.Unlock()
}

func (l *lifecycle) Done() <-chan struct{} { return l.done }

func (l *lifecycle) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.endErr
}

// lostErr is the error for an operation cut short by the connection ending.
func (l *lifecycle) lostErr(op string) error {
	if err := l.Err(); err != nil {
		var ne *NetError
		if errors.As(err, &ne) {
			return &NetError{Op: op, Addr: l.addr, Err: ne.Err}
		}
		return err
	}
	return &NetError{Op: op, Addr: l.addr, Err: errors.New("connection closed")}
}

// boundToConnection returns a context that also ends when the connection
// does: the libraries leave a SUBSCRIBE or UNSUBSCRIBE waiting after a lost
// connection.
func (l *lifecycle) boundToConnection(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		select {
		case <-l.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

// opErr classifies a failed request that got no acknowledgement.
func (l *lifecycle) opErr(ctx context.Context, op, topic string, err error) error {
	select {
	case <-l.done:
		return l.lostErr(op)
	default:
	}
	if cerr := ctxErr(ctx, op, topic); cerr != nil {
		return cerr
	}
	return &NetError{Op: op, Addr: l.addr, Err: err}
}

// ctxErr is the error of an operation whose ctx has ended: a TimeoutError
// at its deadline, the context's error if it was cancelled; nil if ctx has
// not ended.
func ctxErr(ctx context.Context, op, topic string) error {
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return &TimeoutError{Op: op, Topic: topic}
	case ctx.Err() != nil:
		return ctx.Err()
	}
	return nil
}

// disconnect ends the connection on the client's side, within ctx: it
// waits for what was queued before to be written, then runs send (the
// backend's DISCONNECT, and its wait for the end of the connection). If ctx
// ends first, the connection is aborted: a broker that stopped reading
// would otherwise keep send (and any publisher waiting for room in the
// queue) waiting for good.
func (l *lifecycle) disconnect(ctx context.Context, send func()) {
	// What was queued before (a QoS 0 publish) must have been written for
	// the session to end cleanly; if it could not be, say so.
	if err := l.flushQueue(ctx); err != nil {
		l.endLost(err)
	}
	l.startClosing()
	finished := make(chan struct{})
	go func() {
		send()
		close(finished)
	}()
	select {
	case <-finished:
	case <-ctx.Done():
		l.conn.abort()
	}
	l.end(nil)
}

// flushQueue waits, within ctx, for everything sent so far to be written.
func (l *lifecycle) flushQueue(ctx context.Context) error {
	res := make(chan error, 1)
	go func() { res <- l.conn.flushQueue() }()
	select {
	case err := <-res:
		return err
	case <-ctx.Done():
		return nil // Disconnect's own bound: the close abandons the write
	}
}

// openConn opens the transport for cfg (see dialTransport) and wraps it in
// a traceConn for the given protocol version.
func openConn(ctx context.Context, cfg Config, version int) (*traceConn, error) {
	raw, err := dialTransport(ctx, cfg)
	if cause := callerCause(ctx); err != nil && cause != nil {
		return nil, cause
	}
	if err != nil {
		return nil, &NetError{Op: "connect", Addr: cfg.Endpoint.String(), Err: err, Hint: netHint(err, cfg)}
	}
	var tr *tracer
	if cfg.Trace != nil {
		tr = &tracer{w: cfg.Trace, clientID: cfg.ClientID}
	}
	return newTraceConn(raw, tr).forVersion(version), nil
}

// connectFailed is the error for a CONNECT that got no CONNACK (ctx is the
// one bounding the connect). A broker that closed the connection without
// a byte in reply is marked: it may be one that speaks only MQTT 3.1.1.
// If what ended ctx was the caller's own deadline with a cause of its own
// (pub's -W), that is the error.
func connectFailed(ctx context.Context, cfg Config, conn *traceConn, err error) error {
	if cause := callerCause(ctx); cause != nil {
		return cause
	}
	if ctx.Err() != nil && errors.Is(err, context.DeadlineExceeded) {
		err = fmt.Errorf("no CONNACK within %s", cfg.connectTimeout())
	}
	return &NetError{Op: "connect", Addr: cfg.Endpoint.String(), Err: err, Hint: netHint(err, cfg),
		unanswered: ctx.Err() == nil && !conn.answered() && closedByPeer(err)}
}

// callerCause is the cause of a deadline ctx passed, if the caller gave
// it one (context.WithDeadlineCause): not the connect timeout's plain
// error, and not a cancellation (an interruption is the caller's to
// handle; sub ends a reconnecting run with exit 0 on one).
func callerCause(ctx context.Context) error {
	if cause := context.Cause(ctx); cause != nil && cause != ctx.Err() && errors.Is(cause, context.DeadlineExceeded) {
		return cause
	}
	return nil
}

// closedByPeer reports whether err is the other end closing the connection.
func closedByPeer(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// publishSync is Publish in terms of PublishAsync.
func publishSync(ctx context.Context, c Client, m *Message) error {
	p, err := c.PublishAsync(ctx, m)
	if err != nil {
		return err
	}
	return p.Wait(ctx)
}

// done is a Pending that has nothing to wait for.
type done struct{}

func (done) Wait(context.Context) error { return nil }
