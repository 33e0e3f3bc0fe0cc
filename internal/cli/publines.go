package cli

import (
	"context"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"mqtk/internal/mqttc"
)

// publishLines sends each line of stdin as a message, in order, and waits
// for the acks. When the connection is lost it reconnects (unless
// --no-reconnect) and sends again, first and in order, the messages the
// broker had not acknowledged, then carries on. On interruption it still
// publishes every complete line already read, and says so if an incomplete
// last line had to be dropped. Lines it could not publish (refuse) are
// counted in the run's error by withRefused (runPub), whatever ended it.
func (r *pubRun) publishLines(ctx context.Context) error {
	lr := newLineReader(r.a.IO.In)
	var (
		backlog []*outMsg // read (or sent on a lost connection), to send in order
		lines   int
		eof     bool
		readErr error
	)
	take := func() error {
		got, end, err := lr.take()
		for _, line := range got {
			lines++
			m := &outMsg{Message: r.plan.msg, n: lines}
			m.Payload = line
			if m.Props.PayloadFormat != nil && !utf8.Valid(line) {
				r.refuse(m, mqttc.Invalidf("--payload-format-indicator: %q is not UTF-8", line))
				continue
			}
			backlog = append(backlog, m)
		}
		eof, readErr = end, err
		return nil
	}
	// abandoned is the error for a run that ends with the connection
	// lost: err, and how many of the lines read were not acknowledged.
	abandoned := func(err error) error {
		_ = take() // the lines read meanwhile count too
		return notSent(err, len(backlog))
	}
	for {
		loss, err := r.send(&backlog)
		if err != nil {
			return err
		}
		if loss == nil && (eof || ctx.Err() != nil) {
			_, err := r.q.finish()
			switch {
			case err != nil && !connectionLost(err):
				return err
			case err != nil:
				loss = err // what it left unacknowledged comes again from finish below
			case readErr != nil:
				return fmt.Errorf("-l: read stdin: %w", readErr)
			case ctx.Err() != nil:
				if n := lr.partialLen(); n > 0 {
					return fmt.Errorf("%w: an incomplete last line of %d bytes was not sent", context.Cause(ctx), n)
				}
				return context.Cause(ctx)
			default:
				return nil // withRefused
			}
		}
		if loss == nil {
			select {
			case <-lr.ready:
				if err := take(); err != nil {
					return err
				}
				continue
			case <-ctx.Done():
				// Send every complete line already read, then end.
				if err := take(); err != nil {
					return err
				}
				continue
			case <-r.q.failed:
			case <-r.client.Done():
			}
		}
		unacked, err := r.q.finish()
		switch {
		case err != nil && !connectionLost(err):
			return err
		case err != nil:
			loss = err
		case loss == nil:
			loss = r.client.Err() // the client is done
		}
		if loss == nil {
			loss = errors.New("the connection ended")
		}
		backlog = append(unacked, backlog...)
		if ctx.Err() != nil {
			return abandoned(loss)
		}
		if err := r.reconnect(ctx, loss, backlog); err != nil {
			return abandoned(err)
		}
	}
}

// send publishes the backlog in order, taking each message out of it once
// it is sent. A lost connection is returned as loss (what was not sent
// stays in the backlog); err is any other failure.
func (r *pubRun) send(backlog *[]*outMsg) (loss, err error) {
	for len(*backlog) > 0 {
		m := (*backlog)[0]
		if err := r.q.publish(r.base, m); err != nil {
			if errors.Is(err, errAlreadyFailed) {
				_, qerr := r.q.finish()
				if connectionLost(qerr) {
					return qerr, nil
				}
				return nil, qerr
			}
			if connectionLost(err) {
				return err, nil
			}
			if !errors.Is(err, mqttc.ErrTooLarge) { // a fault of every line (QoS, retain...): the end
				return nil, fmt.Errorf("line %d: %w", m.n, err)
			}
			r.refuse(m, err) // a line the broker cannot take
		}
		*backlog = (*backlog)[1:]
	}
	return nil, nil
}

// maxSends is how many connections a message is sent on before pub -l
// gives up on it: an MQTT 3.1.1 broker refuses a publish by closing the
// connection, so one it refuses would otherwise be sent for ever.
const maxSends = 3

// reconnect replaces a lost connection, waiting --reconnect-delay, doubled
// after each failed attempt up to 30s. The new connection starts a clean
// session, so that nothing the broker half-held of the old one (a QoS 2
// message awaiting its PUBREL under a packet identifier the new connection
// may use again) meets the messages sent again. It gives up when the
// connection was lost for a reason reconnecting cannot help, and when the
// first message of the backlog has been sent on maxSends connections that
// each ended before the broker acknowledged it.
func (r *pubRun) reconnect(ctx context.Context, lost error, backlog []*outMsg) error {
	if r.o.noReconnect || !pubRetryable(lost) {
		return lost
	}
	if len(backlog) > 0 && backlog[0].sends >= maxSends {
		return fmt.Errorf("%w; line %d was sent on %d connections and each ended before the broker acknowledged it: it may be refusing it", lost, backlog[0].n, backlog[0].sends)
	}
	unacked := 0
	for _, m := range backlog {
		if m.sends > 0 {
			unacked++
		}
	}
	delay := r.plan.reconnect
	again := ""
	if unacked > 0 {
		again = fmt.Sprintf(" (%d unacknowledged %s to send again)", unacked, plural(unacked, "message", "messages"))
	}
	r.note("mqtk: %v; reconnecting in %s%s\n", r.lostConnection(lost), delay, again)
	// The old connection may not have seen its end (a publish timed out in
	// paho): close it, so that one connection at a time is ours.
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	_ = r.client.Disconnect(dctx)
	cancel()
	r.cfg.CleanStart = true
	for {
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return context.Cause(ctx)
		case <-t.C:
		}
		c, err := mqttc.Dial(ctx, r.cfg)
		if err == nil {
			r.client = c
			r.q = newPubQueue(c, r.base, &r.unacked, r.refuser())
			return nil
		}
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		if !retryable(err) {
			return err
		}
		delay = nextReconnectDelay(delay, r.plan.reconnect)
		r.note("mqtk: reconnect failed: %v; trying again in %s\n", withoutHint(err), delay)
	}
}

// lostConnection is how the reconnection notice names the loss: as the
// connection itself reports its end ("lost connection to URL: EOF"), the
// same whatever pub was doing, once the client has seen it; lost (which may
// be a publish's error, with its hint) otherwise.
func (r *pubRun) lostConnection(lost error) error {
	t := time.NewTimer(time.Second) // the reader sees a failed write's end at once
	defer t.Stop()
	select {
	case <-r.client.Done():
		if err := r.client.Err(); err != nil {
			return err
		}
	case <-t.C:
	}
	return lost
}

func (r *pubRun) note(format string, args ...any) {
	r.noteMu.Lock()
	defer r.noteMu.Unlock()
	if !r.o.conn.quiet {
		fmt.Fprintf(r.a.IO.Err, format, args...)
	}
}

// refuse skips a line that cannot be published: one the broker rejected
// (a reason code >= 0x80), one larger than it takes, one not UTF-8 with
// --payload-format-indicator. As mosquitto_pub -l does, pub says so and
// goes on with the next line (a `tail -f` pipeline does not end on one bad
// line); at the end the run exits as the first of them would have
// (withRefused).
func (r *pubRun) refuse(m *outMsg, err error) {
	r.note("mqtk: line %d not published: %v\n", m.n, err)
	r.noteMu.Lock()
	defer r.noteMu.Unlock()
	// The first by line order: a line refused at once (too large) may
	// come before an earlier one's rejection in its PUBACK.
	if r.refused++; r.first == nil || m.n < r.firstN {
		r.first, r.firstN = fmt.Errorf("line %d: %w", m.n, err), m.n
	}
}

// refuser is refuse for a pubQueue: with -l only.
func (r *pubRun) refuser() func(*outMsg, error) {
	if !r.plan.lines {
		return nil
	}
	return r.refuse
}

// withRefused is the error a run of pub -l that ended with err returns,
// given the lines it refused: nil becomes the first refused line's error,
// so the run exits as that line would have (5 for the broker's rejection,
// 2 for a line it could not take); any other error keeps its own exit code
// and counts them too, since the notes that named them may have scrolled
// away.
func (r *pubRun) withRefused(err error) error {
	r.noteMu.Lock()
	defer r.noteMu.Unlock()
	switch {
	case r.refused == 0:
		return err
	case err == nil:
		return fmt.Errorf("%d %s not published; the first: %w", r.refused, plural(r.refused, "line", "lines"), r.first)
	case r.refused == 1:
		return fmt.Errorf("%w; and 1 line not published (%v)", err, r.first)
	default:
		return fmt.Errorf("%w; and %d lines not published (the first: %v)", err, r.refused, r.first)
	}
}

// notSent adds to err how many messages read were not sent, or not
// acknowledged, if any.
func notSent(err error, n int) error {
	if n == 0 {
		return err
	}
	return fmt.Errorf("%w (%d %s read and not acknowledged)", err, n, plural(n, "message", "messages"))
}

// nextReconnectDelay doubles a wait before reconnecting, up to 30s or the
// first wait, if that was longer.
func nextReconnectDelay(d, first time.Duration) time.Duration {
	return min(2*d, max(30*time.Second, first))
}

// withoutHint is err without the remedy a first connection's failure
// carries ("is a broker running?"), which is noise while reconnecting to
// a broker that was there.
func withoutHint(err error) error {
	var ne *mqttc.NetError
	if errors.As(err, &ne) && ne.Hint != "" && err == error(ne) {
		c := *ne
		c.Hint = ""
		return &c
	}
	return err
}

// pubRetryable reports whether pub -l should reconnect after losing its
// connection with err: as sub does (retryable), but not when the broker's
// DISCONNECT blames what was sent, which sending again would repeat, or
// sends the client to another server.
func pubRetryable(err error) bool {
	var de *mqttc.DisconnectError
	if errors.As(err, &de) {
		switch de.Code {
		case 0x81, // malformed packet
			0x82, // protocol error
			0x83, // implementation specific error
			0x87, // not authorized
			0x90, // topic name invalid
			0x93, // receive maximum exceeded
			0x94, // topic alias invalid
			0x95, // packet too large
			0x99, // payload format invalid
			0x9A, // retain not supported
			0x9B, // QoS not supported
			0x9C, // use another server
			0x9D: // server moved
			return false
		}
	}
	return retryable(err)
}
