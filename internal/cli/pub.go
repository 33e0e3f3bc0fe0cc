package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"mqtk/internal/mqttc"
	"mqtk/internal/topic"
)

type pubOptions struct {
	conn connFlags

	topic       string
	message     string
	file        string
	stdinFile   bool
	stdinLine   bool
	null        bool
	qos         int
	retain      bool
	maxInflight int
	repeat      int
	repeatDelay time.Duration
	timeout     time.Duration

	reconnectDelay time.Duration
	noReconnect    bool

	contentType     string
	responseTopic   string
	correlationData string
	messageExpiry   string
	userProps       []string
	payloadFormat   bool
	topicAlias      int
	properties      []string // -D COMMANDs (see applyProperties)
}

func newPubCmd(a *App) *cobra.Command {
	o := &pubOptions{}
	cmd := &cobra.Command{
		Use:   "pub -t TOPIC (-m MESSAGE | -f FILE | -s | -l | -n) [flags]",
		Short: "Publish messages",
		Long: `Publish a message from an argument, a file, all of stdin, or one message per
line of stdin, at any QoS, as mosquitto_pub does.

QoS 1 and 2 wait for the broker's PUBACK or PUBCOMP: a publish the broker
rejects (for example "not authorized") exits 5 with the reason. Topic, QoS,
payload sources and files are checked before connecting; a message larger
than the broker's Maximum Packet Size (learnt from CONNACK) is refused before
it is sent. All of these exit 2.

With -l each line of stdin is one message, sent in order on one connection;
the line ending (\n or \r\n) is removed and nothing else: an empty line is an
empty message and a last line without a newline is still sent. A line that
cannot be published (the broker rejects it, it is larger than the broker
takes, or it is not UTF-8 with --payload-format-indicator) is named on
stderr and skipped, as mosquitto_pub -l does; pub goes on with the next
line and at the end exits as the first such line would have (5 or 2). A run
that ends otherwise (a lost connection, Ctrl-C) keeps its own exit code, and
its error counts the lines skipped.

With -l a lost connection is replaced, as mosquitto_pub -l does: pub
reconnects after --reconnect-delay (doubling up to 30s while the broker
cannot be reached), then sends again, first and in order, the QoS 1 and 2
messages the broker had not acknowledged, so a message may arrive twice but
none is lost (a QoS 0 message already written to the lost connection is
gone, as QoS 0 allows). Lines are read meanwhile, up to 4096 of them, then
stdin waits. The new connection starts a clean session. pub stops
reconnecting (exit 3) when the broker's DISCONNECT blames what was sent
(not authorized, packet too large...) or says another client took the
session over, when the same line was sent on three connections that each
ended before it was acknowledged (an MQTT 3.1.1 broker refuses a publish by
closing the connection), and when the broker refuses the new connection
(exit 4). The error then counts the lines read and not acknowledged; so does
Ctrl-C while pub waits to reconnect. --no-reconnect makes a lost connection
end the run with exit 3. Without -l pub does not reconnect.

On Ctrl-C or SIGTERM what was read is still published (with -l, every
complete line already read), and mqtk waits up to 5 seconds for the
broker's acknowledgements, saying so, before it disconnects and exits 130;
a second Ctrl-C quits at once.

MQTT 3.1.1 and 3.1 (-V 311, -V 31, or without -V a broker that refuses
MQTT 5) have no reason codes on PUBACK and PUBCOMP: an acknowledgement says
the broker received the message, not that it accepted it. A broker that
denies a publish (by its ACL, say) either acknowledges it all the same and
drops it (mosquitto and mqtk's broker: exit 0) or closes the connection
(exit 3, and the error says so). When a refused publish must fail, use MQTT 5
(exit 5). The v5 properties (--content-type and the flags after it) need MQTT 5:
with -V 311 or 31 they are a usage error, and without -V they keep mqtk from
falling back to 3.1.1.`,
		Example: `  mqtk pub -t sensors/temp -m 21.5
  mqtk pub -h broker.example -t cfg/device1 -r -q 1 -f config.json
  tail -f app.log | mqtk pub -t logs/app -l
  mqtk pub -t cmd/reboot -n -r                  # clear a retained message
  mqtk pub -t req -m '{}' --response-topic resp --correlation-data 42 \
      --user-property origin=ci --user-property origin=nightly`,
		Args:    propertyArgs(&o.properties),
		PreRunE: propertiesThen(&o.properties, pubProperties, o.conn.prepare(a)),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runPub(cmd.Context(), a, o)
		},
	}
	fs := cmd.Flags()
	fs.SortFlags = false
	fs.StringVarP(&o.topic, "topic", "t", "", "`TOPIC` to publish to")
	fs.VarP(&onceString{p: &o.message}, "message", "m", "`MESSAGE` payload")
	fs.VarP(&onceString{p: &o.file}, "file", "f", "send the contents of `FILE` as the message (any bytes)")
	fs.BoolVarP(&o.stdinFile, "stdin-file", "s", false, "send all of stdin as one message")
	fs.BoolVarP(&o.stdinLine, "stdin-line", "l", false, "send each line of stdin as a message")
	fs.BoolVarP(&o.null, "null-message", "n", false, "send an empty (zero-length) message")
	fs.IntVarP(&o.qos, "qos", "q", 0, "quality of service `QOS`: 0, 1 or 2")
	fs.BoolVarP(&o.retain, "retain", "r", false, "ask the broker to retain the message")
	fs.IntVarP(&o.maxInflight, "max-inflight", "M", 0, "at most `N` QoS 1/2 messages awaiting their acknowledgement (default: the broker's Receive Maximum; MQTT 3.1.1/3.1 QoS 2: 20)")
	fs.IntVar(&o.repeat, "repeat", 1, "publish the message `N` times")
	secondsVar(fs, &o.repeatDelay, "repeat-delay", 0, "wait `D` between repeats (seconds, or a duration like 500ms)")
	secondsVarP(fs, &o.timeout, "timeout", "W", 0, "give up after `D` (seconds or a duration), acknowledgements included, and exit 27")
	secondsVar(fs, &o.reconnectDelay, "reconnect-delay", time.Second, "with -l, first wait `D` before reconnecting after a lost connection; it doubles up to 30s")
	fs.BoolVar(&o.noReconnect, "no-reconnect", false, "with -l, exit 3 when the connection is lost instead of reconnecting")
	fs.StringVar(&o.contentType, "content-type", "", "v5 content type `TYPE`")
	fs.StringVar(&o.responseTopic, "response-topic", "", "v5 response `TOPIC`")
	fs.StringVar(&o.correlationData, "correlation-data", "", "v5 correlation `DATA`")
	fs.StringVar(&o.messageExpiry, "message-expiry", "", "v5 message expiry interval `D` (seconds, or a duration like 1h)")
	fs.StringArrayVar(&o.userProps, "user-property", nil, "v5 user property `KEY=VALUE` (repeatable; order and repeated keys are kept)")
	fs.BoolVar(&o.payloadFormat, "payload-format-indicator", false, "v5 payload format indicator: the payload is UTF-8 text")
	fs.IntVar(&o.topicAlias, "topic-alias", 0, "v5 topic alias `N`: after the first publish, later ones send only the alias")
	addPropertyFlag(fs, &o.properties, pubProperties)
	o.conn.addFlags(fs)
	markV5Only(fs, "content-type", "response-topic", "correlation-data", "message-expiry", "user-property",
		"payload-format-indicator", "topic-alias")
	return cmd
}

// pubPlan is a validated publish: what to send and how.
type pubPlan struct {
	msg         mqttc.Message // template; Payload unset in line mode
	lines       bool
	repeat      int
	repeatDelay time.Duration
	timeout     time.Duration
	reconnect   time.Duration // -l: the first wait before reconnecting
}

// plan checks every input before anything is sent.
func (o *pubOptions) plan(a *App, urlTopic string, fs interface{ Changed(string) bool }) (*pubPlan, error) {
	p := &pubPlan{repeat: o.repeat, lines: o.stdinLine}
	t := o.topic
	if !fs.Changed("topic") {
		t = urlTopic
	}
	if t == "" && !fs.Changed("topic") {
		return nil, usageErrorf("no topic: give -t TOPIC")
	}
	if err := topic.ValidateName(t); err != nil {
		return nil, &UsageError{Err: err}
	}
	if o.qos < 0 || o.qos > 2 {
		return nil, usageErrorf("-q/--qos %d: use 0, 1 or 2", o.qos)
	}
	p.msg = mqttc.Message{Topic: t, QoS: byte(o.qos), Retain: o.retain}

	var sources []string
	for _, s := range []struct {
		name string
		set  bool
	}{{"-m", fs.Changed("message")}, {"-f", fs.Changed("file")}, {"-s", o.stdinFile}, {"-l", o.stdinLine}, {"-n", o.null}} {
		if s.set {
			sources = append(sources, s.name)
		}
	}
	switch len(sources) {
	case 0:
		return nil, usageErrorf("no message: give one of -m MESSAGE, -f FILE, -s, -l or -n")
	case 1:
	default:
		return nil, usageErrorf("%s conflict: give only one message source", strings.Join(sources, " and "))
	}
	switch {
	case fs.Changed("message"):
		p.msg.Payload = []byte(o.message)
	case fs.Changed("file"):
		b, err := os.ReadFile(o.file)
		if err != nil {
			return nil, usageErrorf("-f: %v", err)
		}
		p.msg.Payload = b
	case o.stdinFile:
		b, err := io.ReadAll(a.IO.In)
		if err != nil {
			return nil, usageErrorf("-s: read stdin: %v", err)
		}
		p.msg.Payload = b
	case o.null:
		p.msg.Payload = []byte{}
	}
	if o.repeat < 1 {
		return nil, usageErrorf("--repeat %d: must be at least 1", o.repeat)
	}
	if fs.Changed("max-inflight") && (o.maxInflight < 1 || o.maxInflight > 65535) {
		return nil, usageErrorf("-M/--max-inflight %d: from 1 to 65535", o.maxInflight)
	}
	if o.stdinLine && fs.Changed("repeat") {
		return nil, usageErrorf("--repeat does not apply to -l")
	}
	p.repeatDelay, p.timeout = o.repeatDelay, o.timeout
	for _, f := range []string{"reconnect-delay", "no-reconnect"} {
		if fs.Changed(f) && !o.stdinLine {
			return nil, usageErrorf("--%s applies only to -l (only -l reconnects)", f)
		}
	}
	if p.reconnect = o.reconnectDelay; p.reconnect <= 0 {
		return nil, usageErrorf("--reconnect-delay %s: use a positive duration", o.reconnectDelay)
	}

	props := &p.msg.Props
	props.ContentType = o.contentType
	props.ResponseTopic = o.responseTopic
	if fs.Changed("response-topic") {
		if err := topic.ValidateName(o.responseTopic); err != nil {
			return nil, usageErrorf("--response-topic: %v", err)
		}
	}
	if fs.Changed("correlation-data") {
		props.CorrelationData = []byte(o.correlationData)
	}
	if fs.Changed("message-expiry") {
		x, err := parseExpiry(o.messageExpiry, false)
		if err != nil {
			return nil, usageErrorf("--message-expiry: %v", err)
		}
		props.MessageExpiry = &x
	}
	for _, kv := range o.userProps {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, usageErrorf("--user-property %q: use KEY=VALUE", kv)
		}
		if !utf8.ValidString(kv) {
			return nil, usageErrorf("--user-property %q is not valid UTF-8", kv)
		}
		props.User = append(props.User, mqttc.UserProperty{Key: k, Value: v})
	}
	if o.payloadFormat {
		one := byte(1)
		props.PayloadFormat = &one
		if !o.stdinLine && !utf8.Valid(p.msg.Payload) {
			return nil, usageErrorf("--payload-format-indicator says the payload is UTF-8, but it is not")
		}
	}
	if fs.Changed("topic-alias") {
		if o.topicAlias < 1 || o.topicAlias > 65535 {
			return nil, usageErrorf("--topic-alias %d: use 1 to 65535", o.topicAlias)
		}
		props.TopicAlias = uint16(o.topicAlias)
	}
	return p, nil
}

func runPub(ctx context.Context, a *App, o *pubOptions) error {
	conn, err := o.conn.resolve(a)
	if err != nil {
		return err
	}
	plan, err := o.plan(a, conn.urlTopic, o.conn.fs)
	if err != nil {
		return err
	}
	// Acks are waited for even after Ctrl-C (with base), so that what was
	// read is not lost, for up to the grace (graceCtx) after it; a second
	// Ctrl-C quits at once. -W bounds both.
	graceCtx, endGrace := context.WithCancelCause(context.WithoutCancel(ctx))
	defer endGrace(nil)
	base := graceCtx
	if plan.timeout > 0 {
		expired := &timeoutExpired{plan.timeout}
		var cancel, cancelBase context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, plan.timeout, expired)
		defer cancel()
		base, cancelBase = context.WithTimeoutCause(base, plan.timeout, expired)
		defer cancelBase()
	}
	r := &pubRun{a: a, o: o, plan: plan, cfg: conn.cfg, base: base}
	r.cfg.MaxInflight = o.maxInflight
	if r.client, err = mqttc.Dial(ctx, r.cfg); err != nil {
		return err
	}
	r.q = newPubQueue(r.client, base, &r.unacked, r.refuser())
	// On interruption: the notice, and the end of the grace. Not once
	// runPub is over (its caller writes to stderr then).
	var interruptMu sync.Mutex
	over := false
	var graceTimer *time.Timer
	stop := context.AfterFunc(ctx, func() {
		interruptMu.Lock()
		defer interruptMu.Unlock()
		if over || !errors.Is(context.Cause(ctx), errInterrupted) {
			return
		}
		grace := a.InterruptGrace
		if grace == 0 {
			grace = defaultInterruptGrace
		}
		if n := r.unacked.Load(); n > 0 && !o.conn.quiet {
			fmt.Fprintf(a.IO.Err, "mqtk: interrupted: waiting up to %s for the broker to acknowledge %d sent %s (interrupt again to quit now)\n", grace, n, plural(int(n), "message", "messages"))
		}
		graceTimer = time.AfterFunc(grace, func() {
			n := int(r.unacked.Load())
			endGrace(fmt.Errorf("%w: %d sent %s not acknowledged within %s", errInterrupted, n, plural(n, "message", "messages"), grace))
		})
	})
	defer func() {
		stop()
		interruptMu.Lock()
		over = true
		if graceTimer != nil {
			graceTimer.Stop()
		}
		interruptMu.Unlock()
	}()
	if plan.lines {
		err = r.publishLines(ctx)
	} else {
		err = publishRepeated(ctx, r.q, plan)
		if _, werr := r.q.finish(); werr != nil {
			err = werr
		}
	}
	if cause := context.Cause(graceCtx); cause != nil && errors.Is(err, context.Canceled) {
		err = cause // the grace after an interruption ran out
	}
	if plan.lines {
		err = r.withRefused(err)
	}
	// DISCONNECT even when the grace ran out (or the will goes out), but
	// after an interruption within a second.
	dwait := r.cfg.ConnectTimeout
	if errors.Is(context.Cause(ctx), errInterrupted) {
		dwait = min(dwait, time.Second)
	}
	dctx, cancelD := context.WithTimeout(context.WithoutCancel(ctx), dwait)
	defer cancelD()
	_ = r.client.Disconnect(dctx)
	if err == nil && ctx.Err() != nil {
		err = context.Cause(ctx)
	}
	if err == nil {
		err = r.client.Err()
	}
	return err
}

// pubRun is one run of pub: its connection, which -l replaces when it is
// lost, and the queue of publishes awaiting their acks on it.
type pubRun struct {
	a    *App
	o    *pubOptions
	plan *pubPlan
	cfg  mqttc.Config
	base context.Context // publishes and their acks: outlives an interruption by the grace

	client  mqttc.Client
	q       *pubQueue
	unacked atomic.Int64 // sent, the wait for their acks not yet over (all queues)

	noteMu  sync.Mutex // notes come from the queue's goroutine too
	refused int        // -l: lines not published (see refuse)
	first   error      // the first of them (by line number), with its number
	firstN  int
}

func publishRepeated(ctx context.Context, q *pubQueue, plan *pubPlan) error {
	for i := 0; i < plan.repeat; i++ {
		if i > 0 && plan.repeatDelay > 0 {
			t := time.NewTimer(plan.repeatDelay)
			select {
			case <-ctx.Done():
				t.Stop()
				return context.Cause(ctx)
			case <-t.C:
			}
		}
		m := &outMsg{Message: plan.msg}
		if err := q.publish(ctx, m); err != nil {
			return err
		}
	}
	return nil
}

// lineReader reads stdin in the background and splits it into lines, so
// that on interruption every complete line already read can still be sent.
type lineReader struct {
	mu      sync.Mutex
	room    *sync.Cond // signalled when lines are taken
	lines   [][]byte
	partial []byte
	eof     bool
	err     error
	ready   chan struct{} // has a value when lines or EOF are waiting
}

const maxQueuedLines = 4096 // stop reading ahead of a slow broker

func newLineReader(in io.Reader) *lineReader {
	lr := &lineReader{ready: make(chan struct{}, 1)}
	lr.room = sync.NewCond(&lr.mu)
	go lr.run(in)
	return lr
}

func (lr *lineReader) run(in io.Reader) {
	buf := make([]byte, 64*1024)
	for {
		n, err := in.Read(buf)
		lr.mu.Lock()
		lr.partial = append(lr.partial, buf[:n]...)
		for {
			i := bytes.IndexByte(lr.partial, '\n')
			if i < 0 {
				break
			}
			line := bytes.TrimSuffix(lr.partial[:i], []byte{'\r'})
			lr.lines = append(lr.lines, bytes.Clone(line))
			lr.partial = lr.partial[i+1:]
		}
		if err != nil {
			if len(lr.partial) > 0 {
				lr.lines = append(lr.lines, lr.partial) // the last line needs no newline
				lr.partial = nil
			}
			lr.eof = true
			if err != io.EOF {
				lr.err = err
			}
		}
		lr.mu.Unlock()
		if n > 0 || err != nil {
			select {
			case lr.ready <- struct{}{}:
			default:
			}
		}
		if err != nil {
			return
		}
		// Only after saying the lines are there: the wait for room is a
		// wait for them to be taken.
		lr.mu.Lock()
		for len(lr.lines) >= maxQueuedLines {
			lr.room.Wait()
		}
		lr.mu.Unlock()
	}
}

// take returns the complete lines read so far and whether input has ended.
func (lr *lineReader) take() ([][]byte, bool, error) {
	lr.mu.Lock()
	defer lr.mu.Unlock()
	lines := lr.lines
	lr.lines = nil
	lr.room.Broadcast()
	return lines, lr.eof, lr.err
}

func (lr *lineReader) partialLen() int {
	lr.mu.Lock()
	defer lr.mu.Unlock()
	return len(lr.partial)
}

// outMsg is a message pub sends and, with -l, its line number (from 1),
// for errors.
type outMsg struct {
	mqttc.Message
	n     int
	sends int // how many connections it was sent on (-l: see maxSends)
}

// pubQueue sends publishes in order and collects their acks concurrently,
// so up to the broker's Receive Maximum are in flight at once. When the
// connection is lost it keeps, in order, the messages whose acks the loss
// cut off (and a QoS 0 one paho had not written yet), for -l to send again.
type pubQueue struct {
	client   mqttc.Client
	pending  chan queued
	done     chan struct{}
	failed   chan struct{} // closed at the first failed ack
	err      error         // the first failure
	fatal    error         // the first failure not of the connection
	lost     []*outMsg     // sent, unacknowledged when the connection was lost
	finished bool
	unacked  *atomic.Int64
	refuse   func(*outMsg, error) // see newPubQueue
}

type queued struct {
	p mqttc.Pending
	m *outMsg
}

// newPubQueue starts a queue on c. refuse, if not nil, takes the messages
// the broker rejects (a reason code >= 0x80), which then do not end the
// run (-l).
func newPubQueue(c mqttc.Client, waitCtx context.Context, unacked *atomic.Int64, refuse func(*outMsg, error)) *pubQueue {
	q := &pubQueue{client: c, pending: make(chan queued, 1024), done: make(chan struct{}), failed: make(chan struct{}), unacked: unacked, refuse: refuse}
	go func() {
		defer close(q.done)
		for s := range q.pending {
			if q.fatal == nil {
				q.wait(waitCtx, s)
			}
			q.unacked.Add(-1)
		}
	}()
	return q
}

func (q *pubQueue) wait(ctx context.Context, s queued) {
	err := s.p.Wait(ctx)
	if err == nil {
		return
	}
	var rejected *mqttc.RejectedError
	if q.refuse != nil && errors.As(err, &rejected) {
		q.refuse(s.m, err)
		return
	}
	if connectionLost(err) {
		q.lost = append(q.lost, s.m)
	} else {
		q.fatal = err
	}
	if q.err == nil {
		q.err = err
		close(q.failed)
	}
}

func (q *pubQueue) publish(ctx context.Context, m *outMsg) error {
	select {
	case <-q.failed:
		return errAlreadyFailed
	default:
	}
	q.unacked.Add(1) // before the broker can have it
	m.sends++
	p, err := q.client.PublishAsync(ctx, &m.Message)
	if err != nil {
		q.unacked.Add(-1)
		return err
	}
	q.pending <- queued{p, m}
	return nil
}

var errAlreadyFailed = errors.New("an earlier publish failed")

// finish waits for every ack. It returns the first failure and, if that was
// the loss of the connection, the messages it left unacknowledged.
func (q *pubQueue) finish() ([]*outMsg, error) {
	if !q.finished {
		q.finished = true
		close(q.pending)
	}
	<-q.done
	if q.fatal != nil {
		return nil, q.fatal
	}
	return q.lost, q.err
}

// connectionLost reports whether err is the end of the connection rather
// than an answer to a publish.
func connectionLost(err error) bool {
	var ne *mqttc.NetError
	var de *mqttc.DisconnectError
	return errors.As(err, &ne) || errors.As(err, &de)
}

// onceString is a string flag that may be given once: a second -m or -f
// would otherwise replace the first silently, a payload lost to a script's
// mistake (mosquitto_pub refuses it too).
type onceString struct {
	p   *string
	set bool
}

func (o *onceString) String() string {
	if o.p == nil {
		return ""
	}
	return *o.p
}

func (o *onceString) Set(v string) error {
	if o.set {
		return errors.New("given twice: give one message (-l sends one per line, --repeat the same one again)")
	}
	o.set, *o.p = true, v
	return nil
}

func (*onceString) Type() string { return "string" }
