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
// last line had to be dropped.
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
				return usageErrorf("--payload-format-indicator: line %d (%q) is not UTF-8", lines, line)
			}
			backlog = append(backlog, m)
		}
		eof, readErr = end, err
		return nil
	}
	for {
		lost, err := r.send(&backlog)
		if err != nil {
			return err
		}
		if !lost && (eof || ctx.Err() != nil) {
			_, err := r.q.finish()
			switch {
			case err != nil && !connectionLost(err):
				return err
			case err != nil:
				lost = true // unacked comes again from finish below
			case readErr != nil:
				return fmt.Errorf("-l: read stdin: %w", readErr)
			case ctx.Err() != nil:
				if n := lr.partialLen(); n > 0 {
					return fmt.Errorf("%w: an incomplete last line of %d bytes was not sent", context.Cause(ctx), n)
				}
				return context.Cause(ctx)
			default:
				return nil
			}
		}
		if !lost {
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
		if err == nil {
			err = r.client.Err()
		}
		if err == nil || !connectionLost(err) {
			return err
		}
		backlog = append(unacked, backlog...)
		if ctx.Err() != nil {
			return notSent(err, len(backlog))
		}
		if err := r.reconnect(ctx, err, unacked); err != nil {
			return notSent(err, len(backlog))
		}
	}
}

// send publishes the backlog in order, taking each message out of it once
// it is sent. lost says the connection was lost (what was not sent stays in
// the backlog); err is any other failure.
func (r *pubRun) send(backlog *[]*outMsg) (lost bool, err error) {
	for len(*backlog) > 0 {
		m := (*backlog)[0]
		if err := r.q.publish(r.base, m); err != nil {
			if errors.Is(err, errAlreadyFailed) {
				_, qerr := r.q.finish()
				if connectionLost(qerr) {
					return true, nil
				}
				return false, qerr
			}
			if connectionLost(err) {
				return true, nil
			}
			return false, fmt.Errorf("line %d: %w", m.n, err)
		}
		*backlog = (*backlog)[1:]
	}
	return false, nil
}

// reconnect replaces a lost connection, waiting --reconnect-delay, doubled
// after each failed attempt up to 30s. The new connection starts a clean
// session, so that nothing the broker half-held of the old one (a QoS 2
// message awaiting its PUBREL under a packet identifier the new connection
// may use again) meets the messages sent again. It gives up when the
// connection was lost for a reason reconnecting cannot help, and when the
// same message has been left unacknowledged by three connections in a row:
// an MQTT 3.1.1 broker refuses a publish by closing the connection.
func (r *pubRun) reconnect(ctx context.Context, lost error, unacked []*outMsg) error {
	if r.o.noReconnect || !pubRetryable(lost) {
		return lost
	}
	if len(unacked) > 0 && unacked[0] == r.stuckOn {
		r.stuckTimes++
	} else if len(unacked) > 0 {
		r.stuckOn, r.stuckTimes = unacked[0], 1
	} else {
		r.stuckOn, r.stuckTimes = nil, 0
	}
	if r.stuckTimes >= 3 {
		return fmt.Errorf("%w; line %d was sent on %d connections in a row and each ended before the broker acknowledged it: it may be refusing it", lost, r.stuckOn.n, r.stuckTimes)
	}
	delay := r.plan.reconnect
	again := ""
	if len(unacked) > 0 {
		again = fmt.Sprintf(" (%d unacknowledged %s to send again)", len(unacked), plural(len(unacked), "message", "messages"))
	}
	r.note("mqtk: %v; reconnecting in %s%s\n", lost, delay, again)
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
			r.q = newPubQueue(c, r.base, &r.unacked)
			return nil
		}
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		if !retryable(err) {
			return err
		}
		delay = min(2*delay, 30*time.Second)
		r.note("mqtk: reconnect failed: %v; trying again in %s\n", err, delay)
	}
}

func (r *pubRun) note(format string, args ...any) {
	if !r.o.conn.quiet {
		fmt.Fprintf(r.a.IO.Err, format, args...)
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

// pubRetryable reports whether pub -l should reconnect after losing its
// connection with err: as sub does (retryable), but not when the broker's
// DISCONNECT blames what was sent, which sending again would repeat.
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
