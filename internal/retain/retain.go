// Package retain finds the retained messages under topic filters and clears
// them, for `mqtk retain-clear`.
//
// A run is a series of passes. Each pass collects: it subscribes to the
// filters with retain handling 0 (send retained messages) and notes the
// topic of every message that arrives with the retain flag, until a quiet
// period passes without a new one. Messages published while it listens
// arrive without the retain flag (Retain As Published is off) and are not
// collected. The pass then clears what it found that no earlier pass had
// seen: an empty retained message to each topic, pipelined within the
// broker's Receive Maximum, every acknowledgement checked.
//
// The collection of the next pass is the check of the previous one. A topic
// cleared earlier that holds a retained message again was re-published by
// someone meanwhile: it is reported and left alone. A topic not seen before
// is one the broker did not send the first time (brokers cap how many
// retained messages they send for one subscription) or one retained since:
// it is cleared in turn. The run ends when a check finds nothing new, or
// after Options.MaxPasses passes.
//
// Nothing outside the filters, and nothing matching an exclusion, is ever
// cleared, whatever the broker sends: every topic is matched again here,
// with MQTT's rule that a filter starting with a wildcard does not match
// topics starting with '$'.
package retain

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"mqtk/internal/mqttc"
	"mqtk/internal/topic"
)

// Scope is what a run may clear: topics matching one of Filters and none of
// Exclude.
type Scope struct {
	Filters []string
	Exclude []string
}

// classify reports whether t is under the filters and, if so, whether an
// exclusion matches it.
func (s Scope) classify(t string) (in, excluded bool) {
	for _, f := range s.Filters {
		if topic.Match(f, t) {
			in = true
			break
		}
	}
	if !in {
		return false, false
	}
	for _, f := range s.Exclude {
		if topic.Match(f, t) {
			return true, true
		}
	}
	return true, false
}

// Status is what became of one topic.
type Status string

const (
	// Found: it holds a retained message that would be cleared (DryRun).
	Found Status = "found"
	// Excluded: it holds a retained message but matches an exclusion.
	Excluded Status = "excluded"
	// Cleared: the broker acknowledged the empty retained message (at QoS
	// 0: it was sent).
	Cleared Status = "cleared"
	// Rejected: the broker refused the clear (reason code >= 0x80).
	Rejected Status = "rejected"
	// StillRetained: it was cleared, and a later check found it retained
	// again.
	StillRetained Status = "still_retained"
	// Unconfirmed: the clear was sent but not acknowledged before the run
	// ended (timeout, interruption, connection lost).
	Unconfirmed Status = "unconfirmed"
	// Declined: found, but not cleared because Confirm said no.
	Declined Status = "declined"
)

// Outcome is the fate of one topic, reported once per status.
type Outcome struct {
	Topic  string
	Status Status
	Pass   int
	Err    *mqttc.RejectedError // why, for Rejected
}

// Phase is what a run is doing.
type Phase string

const (
	Collecting Phase = "collecting"
	Clearing   Phase = "clearing"
	Checking   Phase = "checking"
)

// Progress is where a run is; Done and Total count topics in this phase
// (Total is 0 while collecting).
type Progress struct {
	Phase       Phase
	Pass        int
	Done, Total int
}

// Confirmation is what Confirm is asked to approve: the topics about to be
// cleared by a pass (sorted).
type Confirmation struct {
	Pass     int
	Topics   []string
	Excluded int // topics left alone because of an exclusion, so far
}

// Options configure Run.
type Options struct {
	// Config is the connection; Run dials it once per phase, one
	// connection at a time, and sets its OnMessage.
	Config mqttc.Config
	Scope  Scope
	// Quiet ends a collection when no new retained topic has arrived for
	// this long after the SUBACK.
	Quiet time.Duration
	// QoS of the clearing publishes.
	QoS byte
	// DryRun collects once and clears nothing; each topic found is
	// reported as Found.
	DryRun bool
	// MaxPasses, if positive, is the most passes that clear. If the check
	// after the last one still finds topics not seen before (something
	// keeps retaining new ones), they are reported as Found and Run
	// returns a *PassLimitError: the run always ends.
	MaxPasses int
	// Confirm, if not nil, is asked before each pass clears; false stops
	// the run, its topics reported as Declined.
	Confirm func(context.Context, Confirmation) (bool, error)
	// OnOutcome, if not nil, receives each topic's outcome in order.
	OnOutcome func(Outcome)
	// OnProgress, if not nil, is called at each step; it must be quick.
	OnProgress func(Progress)
}

// Report counts what a run did, in topics.
type Report struct {
	Passes        int // passes that cleared (or, DryRun, found) something
	Found         int // holding a retained message in scope, all passes
	Excluded      int
	Cleared       int
	Rejected      int
	StillRetained int
	Unconfirmed   int
	Declined      int
	// FirstRejected is the first refusal, if any.
	FirstRejected *mqttc.RejectedError
	// Protocol is the MQTT version the clears were sent with (0: none
	// sent): with MQTT 3 an acknowledgement does not say a clear was
	// taken.
	Protocol int
	// Done is false if the run ended before its work was done (the error
	// says why).
	Done bool
}

type run struct {
	o   Options
	rep Report

	cleared  map[string]bool // acknowledged (or sent at QoS 0)
	rejected map[string]bool
	excluded map[string]bool
	again    map[string]bool // reported as retained again
}

// Run collects, clears and checks until a check finds nothing new. It
// returns what it did; an error means it stopped early (network, timeout,
// interruption, a refused subscription), and the report says how far it
// got.
func Run(ctx context.Context, o Options) (Report, error) {
	r := &run{o: o, cleared: map[string]bool{}, rejected: map[string]bool{}, excluded: map[string]bool{}, again: map[string]bool{}}
	err := r.passes(ctx)
	return r.rep, err
}

func (r *run) emit(oc Outcome) {
	if r.o.OnOutcome != nil {
		r.o.OnOutcome(oc)
	}
}

func (r *run) progress(p Progress) {
	if r.o.OnProgress != nil {
		r.o.OnProgress(p)
	}
}

func (r *run) passes(ctx context.Context) error {
	for pass := 1; ; pass++ {
		phase := Collecting
		if pass > 1 {
			phase = Checking
		}
		found, excluded, err := r.collect(ctx, pass, phase)
		if err != nil {
			return err
		}
		for _, t := range excluded {
			if !r.excluded[t] {
				r.excluded[t] = true
				r.rep.Excluded++
				r.emit(Outcome{Topic: t, Status: Excluded, Pass: pass})
			}
		}
		var fresh []string
		for _, t := range found {
			switch {
			case r.cleared[t]:
				if !r.again[t] {
					r.again[t] = true
					r.rep.StillRetained++
					r.emit(Outcome{Topic: t, Status: StillRetained, Pass: pass})
				}
			case r.rejected[t]:
				// Already reported; it would be refused again.
			default:
				fresh = append(fresh, t)
			}
		}
		if len(fresh) == 0 {
			r.rep.Done = true
			return nil
		}
		if r.o.MaxPasses > 0 && pass > r.o.MaxPasses {
			for _, t := range fresh {
				r.emit(Outcome{Topic: t, Status: Found, Pass: pass})
			}
			r.rep.Found += len(fresh)
			return &PassLimitError{Passes: r.o.MaxPasses, Left: len(fresh)}
		}
		r.rep.Passes = pass
		r.rep.Found += len(fresh)
		if r.o.DryRun {
			for _, t := range fresh {
				r.emit(Outcome{Topic: t, Status: Found, Pass: pass})
			}
			r.rep.Done = true
			return nil
		}
		if r.o.Confirm != nil {
			ok, err := r.o.Confirm(ctx, Confirmation{Pass: pass, Topics: fresh, Excluded: r.rep.Excluded})
			if err != nil {
				return err
			}
			if !ok {
				for _, t := range fresh {
					r.emit(Outcome{Topic: t, Status: Declined, Pass: pass})
				}
				r.rep.Declined += len(fresh)
				r.rep.Done = true
				return nil
			}
		}
		if err := r.clear(ctx, pass, fresh); err != nil {
			return err
		}
	}
}

// PassLimitError ends a run whose check still found new topics after
// Options.MaxPasses passes had cleared.
type PassLimitError struct {
	Passes int // the limit
	Left   int // topics the last check found, not cleared
}

func (e *PassLimitError) Error() string {
	return fmt.Sprintf("stopped after %d passes: each check found retained messages that were not there before, %d the last time (something keeps retaining new topics)", e.Passes, e.Left)
}

// barrierFilter is unsubscribed from after subscribing (see collect). It
// is never subscribed to.
const barrierFilter = "mqtk/retain-clear/barrier"

// collector gathers the topics of retained messages on one connection.
type collector struct {
	scope Scope

	mu       sync.Mutex
	topics   map[string]bool
	excluded map[string]bool
	n        int

	news     chan struct{} // has a value when a new topic arrived
	progress func(n int)
}

func (c *collector) onMessage(m *mqttc.Message) {
	if !m.Retain {
		return // live traffic
	}
	in, ex := c.scope.classify(m.Topic)
	if !in {
		return
	}
	c.mu.Lock()
	set := c.topics
	if ex {
		set = c.excluded
	}
	if set[m.Topic] {
		c.mu.Unlock()
		return
	}
	set[m.Topic] = true
	c.n++
	n := c.n
	c.mu.Unlock()
	if c.progress != nil {
		c.progress(n)
	}
	select {
	case c.news <- struct{}{}:
	default:
	}
}

// collect subscribes on a new connection and returns the retained topics
// in scope and those excluded, each sorted.
func (r *run) collect(ctx context.Context, pass int, phase Phase) (found, excluded []string, err error) {
	c := &collector{
		scope: r.o.Scope, topics: map[string]bool{}, excluded: map[string]bool{}, news: make(chan struct{}, 1),
		progress: func(n int) { r.progress(Progress{Phase: phase, Pass: pass, Done: n}) },
	}
	r.progress(Progress{Phase: phase, Pass: pass})
	cfg := r.o.Config
	cfg.OnMessage = c.onMessage
	client, err := mqttc.Dial(ctx, cfg)
	if err != nil {
		return nil, nil, causeOf(ctx, err)
	}
	defer disconnect(ctx, client, cfg)
	var subs []mqttc.Subscription
	for _, f := range r.o.Scope.Filters {
		// QoS 0: a broker delivers those as fast as it can, where QoS 1
		// deliveries wait in a capped queue behind the client's Receive
		// Maximum (mosquitto drops retained messages beyond it).
		subs = append(subs, mqttc.Subscription{Filter: f, QoS: 0, RetainHandling: 0})
	}
	if _, err := client.Subscribe(ctx, subs, mqttc.SubscribeOptions{}); err != nil {
		return nil, nil, causeOf(ctx, err)
	}
	// A broker handles one client's packets in order, and sends (or
	// queues) the retained messages of a subscription before it reads the
	// next packet, which may take seconds with many of them. The
	// UNSUBACK of a filter we never subscribed to is a barrier: once it
	// is back, the broker has let go of every retained message it will
	// send, and the quiet period can start.
	if err := client.Unsubscribe(ctx, barrierFilter); err != nil {
		var rej *mqttc.RejectedError
		if !errors.As(err, &rej) {
			return nil, nil, causeOf(ctx, err)
		}
	}
	t := time.NewTimer(r.o.Quiet)
	defer t.Stop()
wait:
	for {
		select {
		case <-c.news:
			t.Reset(r.o.Quiet)
		case <-t.C:
			break wait
		case <-ctx.Done():
			return nil, nil, context.Cause(ctx)
		case <-client.Done():
			return nil, nil, client.Err()
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return sortedKeys(c.topics), sortedKeys(c.excluded), nil
}

func sortedKeys(m map[string]bool) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// sent is a clear on its way: its topic and acknowledgement.
type sent struct {
	topic string
	p     mqttc.Pending
}

// clear publishes an empty retained message to each topic on a new
// connection, as many in flight as the broker's Receive Maximum allows,
// and checks each acknowledgement in order. After an interruption it sends
// no more but still collects the acknowledgements of what it sent, until
// the context's deadline if it has one.
func (r *run) clear(ctx context.Context, pass int, topics []string) error {
	r.progress(Progress{Phase: Clearing, Pass: pass, Total: len(topics)})
	cfg := r.o.Config
	cfg.OnMessage = nil
	client, err := mqttc.Dial(ctx, cfg)
	if err != nil {
		return causeOf(ctx, err)
	}
	defer disconnect(ctx, client, cfg)
	r.rep.Protocol = client.Server().ProtocolVersion

	waitCtx := context.WithoutCancel(ctx)
	if d, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		waitCtx, cancel = context.WithDeadline(waitCtx, d)
		defer cancel()
	}
	queue := make(chan sent, 1024)
	acked := make(chan error, 1) // the first error that is not a refusal
	failed := make(chan struct{})
	go func() {
		var fatal error
		done := 0
		for s := range queue {
			if fatal != nil {
				r.unconfirmed(s.topic, pass)
				continue
			}
			err := s.p.Wait(waitCtx)
			var rej *mqttc.RejectedError
			switch {
			case err == nil:
				r.cleared[s.topic] = true
				r.rep.Cleared++
				r.emit(Outcome{Topic: s.topic, Status: Cleared, Pass: pass})
			case errors.As(err, &rej):
				r.rejected[s.topic] = true
				r.rep.Rejected++
				if r.rep.FirstRejected == nil {
					r.rep.FirstRejected = rej
				}
				r.emit(Outcome{Topic: s.topic, Status: Rejected, Pass: pass, Err: rej})
			default:
				fatal = err
				close(failed)
				r.unconfirmed(s.topic, pass)
			}
			done++
			r.progress(Progress{Phase: Clearing, Pass: pass, Done: done, Total: len(topics)})
		}
		acked <- fatal
	}()

	var sendErr error
send:
	for _, t := range topics {
		select {
		case <-failed:
			break send // the acknowledgements stopped coming: send no more
		default:
		}
		if ctx.Err() != nil {
			sendErr = context.Cause(ctx)
			break
		}
		p, err := client.PublishAsync(ctx, &mqttc.Message{Topic: t, Payload: []byte{}, QoS: r.o.QoS, Retain: true})
		if err != nil {
			sendErr = causeOf(ctx, err)
			break
		}
		queue <- sent{t, p} // the reader drains the queue whatever happens
	}
	close(queue)
	ackErr := <-acked
	if ackErr != nil {
		return causeOf(ctx, ackErr)
	}
	return sendErr
}

func (r *run) unconfirmed(t string, pass int) {
	r.rep.Unconfirmed++
	r.emit(Outcome{Topic: t, Status: Unconfirmed, Pass: pass})
}

// causeOf prefers the reason the context ended (the caller's timeout or
// interruption) to the error of the operation it cut short.
func causeOf(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	return err
}

func disconnect(ctx context.Context, c mqttc.Client, cfg mqttc.Config) {
	d := cfg.ConnectTimeout
	if d <= 0 {
		d = 10 * time.Second
	}
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d)
	defer cancel()
	_ = c.Disconnect(dctx)
}
