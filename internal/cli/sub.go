package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"mqtk/internal/mqttc"
	"mqtk/internal/msgfmt"
	"mqtk/internal/topic"
)

type subOptions struct {
	conn connFlags

	topics         []string
	qos            []int
	filterOut      []string
	unsubscribe    []string
	exitOnSuback   bool
	noLocal        bool
	retainAsPub    bool
	retainHandling int
	subID          int
	properties     []string // -D COMMANDs (see applyProperties)

	count        int
	timeout      time.Duration
	idle         time.Duration
	noRetained   bool
	retainedOnly bool

	verbose bool
	noEOL   bool
	format  string
	json    bool
	pretty  bool

	reconnectDelay time.Duration
	noReconnect    bool
}

func newSubCmd(a *App) *cobra.Command {
	o := &subOptions{}
	cmd := &cobra.Command{
		Use:   "sub -t FILTER [-t FILTER...] [flags]",
		Short: "Subscribe and print messages",
		Long: `Subscribe to one or more topic filters and print each message, as
mosquitto_sub does: by default the payload on a line of its own (-v: the topic,
a space, the payload; -N: no newline; -F: mosquitto's format language, which
overrides -v; --json: one JSON object per line). Payload bytes are written
unchanged. An empty payload is an empty line (with -v, the topic and a
space), so each message is one line; mosquitto_sub prints no line for it,
or "(null)" after the topic with -v. On a terminal (colour), -v also shows
the QoS (q1, q2) and "retained" between the topic and the payload, and v5
properties after it; in a pipe the line is mosquitto_sub's.

mqtk sub stops at the first of these, and its exit code says which:
  -C N             after N printed messages (those after it are not
                   acknowledged: a -c session keeps them)            exit 0
  -W D             D after starting, the connect included            exit 27
  --idle D         when no message has arrived for D                 exit 0
  --retained-only  at the first live message, or when no retained
                   message has arrived for a quiet period (1s, or
                   --idle)                                           exit 0
  -E               once the subscriptions are acknowledged           exit 0
  Ctrl-C, SIGTERM  a clean DISCONNECT, everything received printed   exit 0
  output closed    its reader gone (mqtk sub | head -1), DISCONNECT  exit 0
  connection lost  with --no-reconnect (otherwise it reconnects)     exit 3
  taken over       by a client with the same -i (DISCONNECT 0x8e)    exit 3
A filter the broker refuses exits 5; an invalid filter exits 2 before
connecting.`,
		Example: `  mqtk sub -t 'sensors/#' -v
  mqtk sub -t cfg/device1 -C 1 -W 5          # one message, or exit 27 after 5s
  mqtk sub -t 'site/#' --retained-only -v    # what is retained under site/, then exit
  mqtk sub -t 'logs/#' | grep ERROR          # flushed per message in a pipe`,
		Args:    propertyArgs(&o.properties),
		PreRunE: propertiesThen(&o.properties, subProperties, o.conn.prepare(a)),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runSub(cmd.Context(), a, o)
		},
	}
	fs := cmd.Flags()
	fs.SortFlags = false
	fs.StringArrayVarP(&o.topics, "topic", "t", nil, "topic `FILTER` to subscribe to (repeatable)")
	fs.IntSliceVarP(&o.qos, "qos", "q", []int{0}, "`QOS`: one for all filters, or one per -t in order")
	fs.StringArrayVarP(&o.filterOut, "filter-out", "T", nil, "do not print messages whose topic matches `FILTER` (repeatable)")
	fs.StringArrayVarP(&o.unsubscribe, "unsubscribe", "U", nil, "unsubscribe from `FILTER` first (with -c, removes it from a persistent session)")
	fs.BoolVarP(&o.exitOnSuback, "exit-after-subscribe", "E", false, "exit once the subscriptions are acknowledged (with -c: create a durable session)")
	fs.BoolVar(&o.noLocal, "no-local", false, "v5: do not receive our own publishes")
	fs.BoolVar(&o.retainAsPub, "retain-as-published", false, "v5: keep the retain flag as the publisher set it")
	fs.IntVar(&o.retainHandling, "retain-handling", 0, "v5: retained messages on subscribe, `N`: 0 always, 1 only for a new subscription, 2 never")
	fs.IntVar(&o.subID, "subscription-identifier", 0, "v5: subscription identifier `N` (1 to 268435455)")
	addPropertyFlag(fs, &o.properties, subProperties)
	fs.IntVarP(&o.count, "count", "C", 0, "exit 0 after printing `N` messages (0: no limit)")
	secondsVarP(fs, &o.timeout, "timeout", "W", 0, "exit 27 after `D` (seconds or a duration like 1.5s)")
	secondsVar(fs, &o.idle, "idle", 0, "exit 0 when no message has arrived for `D`")
	fs.BoolVarP(&o.noRetained, "no-retained", "R", false, "do not print retained messages stored before we subscribed")
	fs.BoolVar(&o.retainedOnly, "retained-only", false, "print only retained messages, then exit 0")
	fs.BoolVarP(&o.verbose, "verbose", "v", false, "print the topic before each payload")
	fs.BoolVarP(&o.noEOL, "no-eol", "N", false, "do not add a newline after each payload")
	fs.StringVarP(&o.format, "format", "F", "", "print each message as `FORMAT`, mosquitto_sub's format language (mqtk help format)")
	fs.BoolVar(&o.json, "json", false, "print one JSON object per message, binary-safe (mqtk help json)")
	fs.BoolVar(&o.pretty, "pretty", false, "indent --json (and -F %j/%J) output")
	secondsVar(fs, &o.reconnectDelay, "reconnect-delay", time.Second, "first wait `D` before reconnecting after a lost connection; it doubles up to 30s")
	fs.BoolVar(&o.noReconnect, "no-reconnect", false, "exit 3 when the connection is lost instead of reconnecting")
	o.conn.addFlags(fs)
	markV5Only(fs, "no-local", "retain-as-published", "retain-handling", "subscription-identifier")
	return cmd
}

// subPlan is a validated subscription request.
type subPlan struct {
	subs        []mqttc.Subscription
	opts        mqttc.SubscribeOptions
	timeout     time.Duration
	idle        time.Duration
	reconnect   time.Duration
	render      func(dst []byte, m *mqttc.Message) []byte
	unsubscribe []string
}

func (o *subOptions) plan(a *App, urlTopic string) (*subPlan, error) {
	p := &subPlan{}
	filters := o.topics
	if len(filters) == 0 && urlTopic != "" {
		filters = []string{urlTopic}
	}
	if len(filters) == 0 && len(o.unsubscribe) == 0 {
		return nil, usageErrorf("no topic filter: give -t FILTER")
	}
	if len(o.qos) != 1 && len(o.qos) != len(filters) {
		return nil, usageErrorf("%d -q values for %d -t filters: give one for all, or one per filter", len(o.qos), len(filters))
	}
	if o.retainHandling < 0 || o.retainHandling > 2 {
		return nil, usageErrorf("--retain-handling %d: use 0, 1 or 2", o.retainHandling)
	}
	for i, f := range filters {
		if err := topic.ValidateFilter(f); err != nil {
			return nil, &UsageError{Err: err}
		}
		if o.noLocal && topic.Shared(f) {
			return nil, usageErrorf("--no-local with the shared subscription %q: MQTT 5 forbids it (a protocol error)", f)
		}
		q := o.qos[0]
		if len(o.qos) > 1 {
			q = o.qos[i]
		}
		if q < 0 || q > 2 {
			return nil, usageErrorf("-q/--qos %d: use 0, 1 or 2", q)
		}
		p.subs = append(p.subs, mqttc.Subscription{Filter: f, QoS: byte(q), NoLocal: o.noLocal,
			RetainAsPublished: o.retainAsPub, RetainHandling: byte(o.retainHandling)})
	}
	for _, f := range append(append([]string{}, o.filterOut...), o.unsubscribe...) {
		if err := topic.ValidateFilter(f); err != nil {
			return nil, &UsageError{Err: err}
		}
	}
	p.unsubscribe = o.unsubscribe
	if o.subID < 0 || o.subID > 268435455 {
		return nil, usageErrorf("--subscription-identifier %d: use 1 to 268435455", o.subID)
	}
	p.opts.SubscriptionID = o.subID
	if o.count < 0 {
		return nil, usageErrorf("-C/--count %d: use a positive count, or 0 for no limit", o.count)
	}
	if o.noRetained && o.retainedOnly {
		return nil, usageErrorf("-R/--no-retained and --retained-only conflict")
	}
	var err error
	p.timeout, p.idle = o.timeout, o.idle
	if o.retainedOnly && p.idle == 0 {
		p.idle = time.Second // the quiet period after the last retained message
	}
	if p.reconnect = o.reconnectDelay; p.reconnect <= 0 {
		return nil, usageErrorf("--reconnect-delay %s: use a positive duration", o.reconnectDelay)
	}
	if p.render, err = o.renderer(a); err != nil {
		return nil, err
	}
	return p, nil
}

// renderer picks how each message is printed: -F, --json, or payload lines
// (coloured on a terminal).
func (o *subOptions) renderer(a *App) (func([]byte, *mqttc.Message) []byte, error) {
	switch {
	case o.format != "" && o.json:
		return nil, usageErrorf("-F and --json conflict: choose one output format")
	case o.json && (o.verbose || o.noEOL):
		return nil, usageErrorf("--json and -v/-N conflict: --json prints one object per line")
	case o.pretty && !o.json && o.format == "":
		return nil, usageErrorf("--pretty goes with --json (or -F with %%j or %%J)")
	}
	noEOL := o.noEOL
	// -F overrides -v, and -N still applies, as in mosquitto_sub.
	if o.format != "" {
		f, err := msgfmt.ParseFormat(o.format)
		if err != nil {
			return nil, &UsageError{Err: fmt.Errorf("-F: %w", err)}
		}
		f.Pretty = o.pretty
		quiet, stderr := o.conn.quiet, a.IO.Err
		return func(dst []byte, m *mqttc.Message) []byte {
			dst, err := f.AppendErr(dst, m)
			if err != nil && !quiet {
				fmt.Fprintf(stderr, "mqtk: %v\n", err) // as mosquitto_sub: the line is still printed
			}
			if !noEOL {
				dst = append(dst, '\n')
			}
			return dst
		}, nil
	}
	if o.json {
		pretty := o.pretty
		return func(dst []byte, m *mqttc.Message) []byte {
			return append(msgfmt.AppendJSON(dst, m, pretty), '\n')
		}, nil
	}
	verbose, colorize := o.verbose, a.IO.ColorOut()
	return func(dst []byte, m *mqttc.Message) []byte {
		return msgfmt.Pretty(dst, m, verbose, noEOL, colorize)
	}, nil
}

// errStop ends a subscription normally (exit 0).
var errStop = errors.New("stop")

// subRun is one `mqtk sub` invocation: the printing side, shared by every
// connection when it reconnects.
type subRun struct {
	o    *subOptions
	plan *subPlan

	mu       sync.Mutex
	out      *bufio.Writer
	buf      []byte
	printed  int
	writeErr error
	stopped  bool

	stop     chan error    // the first reason to stop; nil error = exit 0
	activity chan struct{} // a message arrived (for --idle)
	flush    chan struct{} // output is waiting to be flushed
}

func (r *subRun) end(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.endLocked(err)
}

func (r *subRun) endLocked(err error) {
	if r.stopped {
		return
	}
	r.stopped = true
	r.stop <- err
}

// onMessage prints one message; it runs on the client's delivery goroutine,
// so the broker gets its acknowledgement only after the message is printed.
// onMessage prints m, or skips it as -R and -T say, and reports whether it
// was taken: one that arrives once the run is over (after -C's count, the
// live message that ends --retained-only, any with -E) is neither printed
// nor acknowledged, so that a persistent session keeps it for the next
// connection, as mosquitto_sub leaves it.
func (r *subRun) onMessage(m *mqttc.Message) bool {
	select {
	case r.activity <- struct{}{}:
	default:
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped || r.writeErr != nil || r.o.exitOnSuback {
		return false
	}
	if r.o.retainedOnly && !m.Retain {
		r.endLocked(nil)
		return false
	}
	if r.o.noRetained && m.Retain {
		return true
	}
	for _, f := range r.o.filterOut {
		if topic.Match(f, m.Topic) {
			return true
		}
	}
	r.buf = r.plan.render(r.buf[:0], m)
	if _, err := r.out.Write(r.buf); err != nil {
		r.writeErr = err
		r.endLocked(outputClosed(err))
		return false
	}
	r.printed++
	select {
	case r.flush <- struct{}{}:
	default:
	}
	if r.o.count > 0 && r.printed >= r.o.count {
		r.endLocked(nil)
	}
	return true
}

// flusher writes buffered output out as soon as it can: one write per
// message when they trickle in, fewer and larger writes when they pour in,
// so `mqtk sub | grep` shows each message at once without a syscall per
// message under load.
func (r *subRun) flusher(done <-chan struct{}) {
	for {
		select {
		case <-r.flush:
			r.mu.Lock()
			if err := r.out.Flush(); err != nil && r.writeErr == nil {
				r.writeErr = err
				r.endLocked(outputClosed(err))
			}
			r.mu.Unlock()
		case <-done:
			return
		}
	}
}

// idleWatch ends the run when no message has arrived for d.
func (r *subRun) idleWatch(d time.Duration, done <-chan struct{}) {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		select {
		case <-r.activity:
			t.Reset(d)
		case <-t.C:
			r.end(nil)
			return
		case <-done:
			return
		}
	}
}

func runSub(ctx context.Context, a *App, o *subOptions) error {
	conn, err := o.conn.resolve(a)
	if err != nil {
		return err
	}
	plan, err := o.plan(a, conn.urlTopic)
	if err != nil {
		return err
	}
	r := &subRun{
		o: o, plan: plan,
		out:      bufio.NewWriterSize(a.IO.Out, 64*1024),
		stop:     make(chan error, 1),
		activity: make(chan struct{}, 1),
		flush:    make(chan struct{}, 1),
	}
	done := make(chan struct{})
	defer close(done)
	go r.flusher(done)
	conn.cfg.OnMessageAck = r.onMessage

	err = r.session(ctx, a, conn.cfg, done)
	r.mu.Lock()
	defer r.mu.Unlock()
	if ferr := r.out.Flush(); err == nil && r.writeErr == nil {
		err = ferr
	}
	if err == nil {
		err = r.writeErr
	}
	return outputClosed(err)
}

// outputClosed is nil for the error of writing to a pipe whose reader has
// gone (mqtk sub | head -1): the subscription ends as it ends with -C, with
// DISCONNECT and exit 0, as mosquitto_sub's does. Other errors are kept.
func outputClosed(err error) error {
	if errors.Is(err, syscall.EPIPE) {
		return nil
	}
	return err
}

// session connects, subscribes and waits for a reason to stop, reconnecting
// after a lost connection unless told not to.
func (r *subRun) session(ctx context.Context, a *App, cfg mqttc.Config, done chan struct{}) error {
	plan := r.plan
	delay := plan.reconnect
	first := true
	if plan.timeout > 0 {
		// -W bounds the whole run, the connect included, as mosquitto_sub's
		// does: a broker that never answers costs D, not the connect timeout.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, plan.timeout, &timeoutExpired{plan.timeout})
		defer cancel()
	}
	connected := false // once: a later dial is a reconnection
	for {
		client, err := mqttc.Dial(ctx, cfg)
		if err != nil {
			if connected && ctx.Err() != nil {
				return stopCause(ctx) // not a failed reconnect: the run is over
			}
			if !connected || !retryable(err) || r.o.noReconnect {
				return err
			}
			if !r.o.conn.quiet {
				fmt.Fprintf(a.IO.Err, "mqtk: reconnect failed: %v; trying again in %s\n", withoutHint(err), delay)
			}
			if stopped, stopErr := r.wait(ctx, delay); stopped {
				return stopErr
			}
			delay = nextReconnectDelay(delay, plan.reconnect)
			continue
		}
		connected = true
		delay = plan.reconnect
		if err := r.subscribe(ctx, a, client, first); err != nil {
			disconnect(ctx, client, cfg)
			if ctx.Err() != nil {
				return stopCause(ctx)
			}
			if r.o.noReconnect || !retryable(err) {
				return err
			}
			// The connection was lost before the SUBACK (the broker
			// restarting, say): as any loss, and the next connection
			// subscribes again, as the first.
			if !r.o.conn.quiet {
				fmt.Fprintf(a.IO.Err, "mqtk: %v; reconnecting in %s\n", err, delay)
			}
			if stopped, stopErr := r.wait(ctx, delay); stopped {
				return stopErr
			}
			continue
		}
		if r.o.exitOnSuback || len(plan.subs) == 0 {
			disconnect(ctx, client, cfg)
			return nil
		}
		if first && plan.idle > 0 {
			go r.idleWatch(plan.idle, done)
		}
		first = false
		select {
		case err := <-r.stop:
			disconnect(ctx, client, cfg)
			return err
		case <-ctx.Done():
			disconnect(ctx, client, cfg)
			return stopCause(ctx)
		case <-client.Done():
		}
		lost := client.Err()
		if r.o.noReconnect || takenOver(lost) {
			return lost
		}
		if !r.o.conn.quiet {
			fmt.Fprintf(a.IO.Err, "mqtk: %v; reconnecting in %s\n", lost, delay)
		}
		if stopped, stopErr := r.wait(ctx, delay); stopped {
			return stopErr
		}
		cfg.CleanStart = !r.o.conn.noClean
	}
}

// subscribe unsubscribes (-U, first connection only) and subscribes, unless
// the broker resumed a session that already holds the subscriptions; if it
// had not kept the session -c asked for, it says so.
func (r *subRun) subscribe(ctx context.Context, a *App, c mqttc.Client, first bool) error {
	plan := r.plan
	if first && len(plan.unsubscribe) > 0 {
		if err := c.Unsubscribe(ctx, plan.unsubscribe...); err != nil {
			return err
		}
	}
	if len(plan.subs) == 0 || (!first && c.Server().SessionPresent) {
		return nil
	}
	if !first && r.o.conn.noClean && !r.o.conn.quiet {
		// -c asked the broker to keep the session while we were away; it
		// did not (restarted without persistence, or the session expired).
		fmt.Fprintf(a.IO.Err, "mqtk: the broker did not keep the session: messages published while disconnected may have been lost; subscribing again\n")
	}
	_, err := c.Subscribe(ctx, plan.subs, plan.opts)
	return err
}

// wait sleeps d before a reconnection, unless the run ends first.
func (r *subRun) wait(ctx context.Context, d time.Duration) (stopped bool, err error) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return false, nil
	case err := <-r.stop:
		return true, err
	case <-ctx.Done():
		return true, stopCause(ctx)
	}
}

// stopCause is what ends a run whose ctx is done: nothing for Ctrl-C or
// SIGTERM (how a subscription normally ends), otherwise the cause (-W's
// timeoutExpired).
func stopCause(ctx context.Context) error {
	if cause := context.Cause(ctx); !errors.Is(cause, errInterrupted) {
		return cause
	}
	return nil
}

func disconnect(ctx context.Context, c mqttc.Client, cfg mqttc.Config) {
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ConnectTimeout)
	defer cancel()
	_ = c.Disconnect(dctx)
}

// takenOver reports whether err is the broker's DISCONNECT "session taken
// over" (0x8e): another client with our ID has connected, and reconnecting
// would take the session back from it, and it from us in turn, for ever.
func takenOver(err error) bool {
	var de *mqttc.DisconnectError
	return errors.As(err, &de) && de.Code == 0x8E
}

// retryable reports whether reconnecting may help: the network failed, the
// broker went away, or it said it is busy or unavailable for now.
func retryable(err error) bool {
	var ne *mqttc.NetError
	var de *mqttc.DisconnectError
	var ce *mqttc.ConnectError
	switch {
	case takenOver(err):
		return false
	case errors.As(err, &ne), errors.As(err, &de):
		return true
	case errors.As(err, &ce):
		return ce.Temporary()
	}
	return false
}
