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
	repeat      int
	repeatDelay time.Duration
	timeout     time.Duration

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
empty message and a last line without a newline is still sent.

pub does not reconnect: a lost connection ends it with exit 3, also with -l
(mosquitto_pub -l reconnects).

On Ctrl-C or SIGTERM what was read is still published (with -l, every
complete line already read), and mqtk waits up to 5 seconds for the
broker's acknowledgements, saying so, before it disconnects and exits 130;
a second Ctrl-C quits at once.

MQTT 3.1.1 and 3.1 (-V 311, -V 31, or without -V a broker that refuses
MQTT 5) have no reason codes on PUBACK and PUBCOMP: an acknowledgement says
the broker received the message, not that it accepted it. A broker that
denies a publish (by its ACL, say) either acknowledges it all the same and
drops it (mosquitto: exit 0) or closes the connection (mqtk's broker: exit 3,
and the error says so). When a refused publish must fail, use MQTT 5 (exit
5). The v5 properties (--content-type and the flags after it) need MQTT 5:
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
	fs.StringVarP(&o.message, "message", "m", "", "`MESSAGE` payload")
	fs.StringVarP(&o.file, "file", "f", "", "send the contents of `FILE` as the message (any bytes)")
	fs.BoolVarP(&o.stdinFile, "stdin-file", "s", false, "send all of stdin as one message")
	fs.BoolVarP(&o.stdinLine, "stdin-line", "l", false, "send each line of stdin as a message")
	fs.BoolVarP(&o.null, "null-message", "n", false, "send an empty (zero-length) message")
	fs.IntVarP(&o.qos, "qos", "q", 0, "quality of service `QOS`: 0, 1 or 2")
	fs.BoolVarP(&o.retain, "retain", "r", false, "ask the broker to retain the message")
	fs.IntVar(&o.repeat, "repeat", 1, "publish the message `N` times")
	secondsVar(fs, &o.repeatDelay, "repeat-delay", 0, "wait `D` between repeats (seconds, or a duration like 500ms)")
	secondsVarP(fs, &o.timeout, "timeout", "W", 0, "give up after `D` (seconds or a duration), acknowledgements included, and exit 27")
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
	if o.stdinLine && fs.Changed("repeat") {
		return nil, usageErrorf("--repeat does not apply to -l")
	}
	p.repeatDelay, p.timeout = o.repeatDelay, o.timeout

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
	client, err := mqttc.Dial(ctx, conn.cfg)
	if err != nil {
		return err
	}
	q := newPubQueue(client, base)
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
		if n := q.unacked.Load(); n > 0 && !o.conn.quiet {
			fmt.Fprintf(a.IO.Err, "mqtk: interrupted: waiting up to %s for the broker to acknowledge %d sent %s (interrupt again to quit now)\n", grace, n, plural(int(n), "message", "messages"))
		}
		graceTimer = time.AfterFunc(grace, func() {
			n := int(q.unacked.Load())
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
		err = publishLines(ctx, base, a, q, plan)
	} else {
		err = publishRepeated(ctx, q, plan)
	}
	if werr := q.finish(); werr != nil {
		err = werr
		if cause := context.Cause(graceCtx); cause != nil && errors.Is(werr, context.Canceled) {
			err = cause // the grace after an interruption ran out
		}
	}
	// DISCONNECT even when the grace ran out (or the will goes out), but
	// after an interruption within a second.
	dwait := conn.cfg.ConnectTimeout
	if errors.Is(context.Cause(ctx), errInterrupted) {
		dwait = min(dwait, time.Second)
	}
	dctx, cancelD := context.WithTimeout(context.WithoutCancel(ctx), dwait)
	defer cancelD()
	_ = client.Disconnect(dctx)
	if err == nil && ctx.Err() != nil {
		err = context.Cause(ctx)
	}
	if err == nil {
		err = client.Err()
	}
	return err
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
		m := plan.msg
		if err := q.publish(ctx, &m); err != nil {
			return err
		}
	}
	return nil
}

// publishLines sends each line of stdin as a message, in order. On
// interruption it still publishes every complete line already read, and says
// so if an incomplete last line had to be dropped.
func publishLines(ctx, base context.Context, a *App, q *pubQueue, plan *pubPlan) error {
	lr := newLineReader(a.IO.In)
	send := func(lines [][]byte) error {
		for _, line := range lines {
			m := plan.msg
			m.Payload = line
			if m.Props.PayloadFormat != nil && !utf8.Valid(line) {
				return usageErrorf("--payload-format-indicator: line %q is not UTF-8", line)
			}
			if err := q.publish(base, &m); err != nil {
				return err
			}
		}
		return nil
	}
	for {
		select {
		case <-lr.ready:
			lines, eof, err := lr.take()
			if err := send(lines); err != nil {
				return err
			}
			if err != nil {
				return fmt.Errorf("-l: read stdin: %w", err)
			}
			if eof {
				return nil
			}
		case <-q.failed:
			return nil // q.finish reports the error
		case <-ctx.Done():
			lines, _, _ := lr.take()
			if err := send(lines); err != nil {
				return err
			}
			if n := lr.partialLen(); n > 0 {
				return fmt.Errorf("%w: an incomplete last line of %d bytes was not sent", context.Cause(ctx), n)
			}
			return context.Cause(ctx)
		}
	}
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

// pubQueue sends publishes in order and collects their acks concurrently,
// so up to the broker's Receive Maximum are in flight at once.
type pubQueue struct {
	client  mqttc.Client
	pending chan mqttc.Pending
	done    chan struct{}
	failed  chan struct{} // closed at the first failed ack
	err     error
	sent    int
	unacked atomic.Int64 // sent, the wait for their acks not yet over
}

func newPubQueue(c mqttc.Client, waitCtx context.Context) *pubQueue {
	q := &pubQueue{client: c, pending: make(chan mqttc.Pending, 1024), done: make(chan struct{}), failed: make(chan struct{})}
	go func() {
		defer close(q.done)
		for p := range q.pending {
			if q.err == nil {
				if err := p.Wait(waitCtx); err != nil {
					q.err = err
					close(q.failed)
				}
			}
			q.unacked.Add(-1)
		}
	}()
	return q
}

func (q *pubQueue) publish(ctx context.Context, m *mqttc.Message) error {
	select {
	case <-q.failed:
		return errAlreadyFailed
	default:
	}
	q.unacked.Add(1) // before the broker can have it
	p, err := q.client.PublishAsync(ctx, m)
	if err != nil {
		q.unacked.Add(-1)
		return err
	}
	q.sent++
	q.pending <- p
	return nil
}

var errAlreadyFailed = errors.New("an earlier publish failed")

// finish waits for every ack and returns the first failure.
func (q *pubQueue) finish() error {
	close(q.pending)
	<-q.done
	return q.err
}
