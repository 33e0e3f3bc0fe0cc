package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"mqtk/internal/mqttc"
	"mqtk/internal/retain"
	"mqtk/internal/topic"
)

type retainClearOptions struct {
	conn connFlags

	topics      []string
	exclude     []string
	dryRun      bool
	yes         bool
	quietPeriod time.Duration
	timeout     time.Duration
	maxPasses   int
	qos         int
	json        bool
}

func newRetainClearCmd(a *App) *cobra.Command {
	o := &retainClearOptions{}
	cmd := &cobra.Command{
		Use:   "retain-clear [-t FILTER...] [-T FILTER...] [--dry-run | --yes] [flags]",
		Short: "Clear the retained messages under topic filters",
		Long: `Remove the retained messages under one or more topic filters (default #),
completely, and say what was done.

Collect: retain-clear subscribes to the filters and notes each topic whose
retained message the broker sends, until --quiet-period passes without a new
one. Messages published meanwhile arrive without the retain flag and are not
collected (the check below finds them if they were retained).

Confirm: on a terminal it shows how many topics under which filters and asks;
without a terminal --yes is required (exit 2 otherwise, nothing cleared).
--dry-run never asks: it lists the topics, one per line on stdout, and
changes nothing.

Clear: an empty retained message to each topic, as many in flight as the
broker's Receive Maximum allows, every acknowledgement checked. A topic the
broker refuses (e.g. not authorized) is named on stderr; the others are still
cleared. --qos 1 (the default) or 2 makes the broker confirm each clear; at
--qos 0 nothing is confirmed, and a clear the broker drops shows only in the
check, as still retained.

Check: it subscribes again and collects the same way. A topic it cleared that
holds a retained message again was re-published meanwhile: it is reported
("still retained") and left alone. Topics it had not seen (a broker may cap
the retained messages it sends for one subscription, or they were retained
since) are cleared in a further pass, after asking again on a terminal, until
a check finds nothing new. So that the run always ends, even while something
keeps retaining new topics, at most --max-passes passes clear (20; raise it
for a broker that sends only part of its retained messages per
subscription): what the check after the last finds is reported as found and
left, exit 1. --timeout bounds the whole run in time.

With MQTT 3.1.1 and 3.1 an acknowledgement has no reason code: a clear the
broker denies is either acknowledged all the same, and the check then reports
the topic as still retained (exit 1), or ends the connection (exit 3).

It never clears a topic outside the filters or matching an --exclude filter,
whatever the broker sends. Topics starting with $ (such as $SYS/...) are only
touched when a filter names them: '#' and '+/...' do not match them.

The report goes to stderr: "cleared 1,204 retained messages under 'site/#'
(excluded 3)". --json prints on stdout one JSON object per line: one per
topic, as its outcome is known, then a summary:

  {"type":"topic","topic":"site/a","status":"cleared","pass":1}
  {"type":"topic","topic":"site/lock","status":"rejected","pass":1,"reason_code":135,"reason":"not authorized"}
  {"type":"summary","filters":["site/#"],"exclude":[],"dry_run":false,"qos":1,"passes":1,"found":2,"excluded":0,"cleared":1,"rejected":1,"still_retained":0,"unconfirmed":0,"declined":0,"complete":true}

status is one of found (--dry-run: would be cleared; or found by the check
after the last of --max-passes, and left), excluded, cleared,
rejected (with reason_code, reason and the broker's reason_string if it sent
one), still_retained, unconfirmed (sent, but the run ended before the
acknowledgement) or declined (found, not confirmed). Counts are in topics;
complete is false when the run stopped early.

Exit codes:
  0    everything found was cleared and nothing was retained again (also when
       nothing was found, and after --dry-run)
  1    a cleared topic was retained again meanwhile, the answer was no, or new
       retained topics were still appearing after --max-passes passes
  2    usage error, or no terminal to confirm on and no --yes
  5    the broker refused a subscription (nothing cleared) or some clears
  27   --timeout expired (nothing cleared if it expired while collecting)
  130  interrupted (the clears already sent are confirmed first)`,
		Example: `  mqtk retain-clear -t 'site/#' --dry-run          # what would be cleared
  mqtk retain-clear -t 'site/#' -T 'site/config/#' # asks first on a terminal
  mqtk retain-clear -h broker.local -t 'test/#' --yes --json > cleared.ndjson
  mqtk retain-clear -t 'devices/+/state' -t 'devices/+/config' --yes -W 30s
  mqtk retain-clear -t '$internal/#' --yes         # $ topics only when named`,
		Args:    noArgs,
		PreRunE: o.conn.prepare(a),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runRetainClear(cmd.Context(), a, o)
		},
	}
	fs := cmd.Flags()
	fs.SortFlags = false
	fs.StringArrayVarP(&o.topics, "topic", "t", nil, "clear retained messages under `FILTER` (repeatable; default #)")
	fs.StringArrayVarP(&o.exclude, "exclude", "T", nil, "leave topics matching `FILTER` alone (repeatable)")
	fs.BoolVar(&o.dryRun, "dry-run", false, "list the topics holding retained messages on stdout; change nothing")
	fs.BoolVarP(&o.yes, "yes", "y", false, "clear without asking (required without a terminal)")
	secondsVar(fs, &o.quietPeriod, "quiet-period", time.Second, "stop collecting after `D` without a new retained message (seconds or a duration)")
	secondsVarP(fs, &o.timeout, "timeout", "W", 0, "give up after `D` (seconds or a duration) and exit 27")
	fs.IntVar(&o.maxPasses, "max-passes", 20, "clear in at most `N` passes, then stop (exit 1) if the check still finds new retained topics")
	fs.IntVarP(&o.qos, "qos", "q", 1, "`QOS` of the clearing publishes: 1 or 2 confirm each clear, 0 does not")
	fs.BoolVar(&o.json, "json", false, "print one JSON object per topic and a summary on stdout")
	o.conn.addFlags(fs)
	return cmd
}

// retainClearPlan is a validated retain-clear.
type retainClearPlan struct {
	scope     retain.Scope
	quiet     time.Duration
	timeout   time.Duration
	maxPasses int
	qos       byte
	ask       bool // confirm on the terminal
}

func (o *retainClearOptions) plan(a *App, urlTopic string) (*retainClearPlan, error) {
	p := &retainClearPlan{}
	filters := o.topics
	switch {
	case len(filters) == 0 && urlTopic != "":
		filters = []string{urlTopic}
	case len(filters) == 0:
		filters = []string{"#"}
	}
	for _, f := range filters {
		if err := topic.ValidateFilter(f); err != nil {
			return nil, usageErrorf("-t: %v", err)
		}
	}
	for _, f := range o.exclude {
		if err := topic.ValidateFilter(f); err != nil {
			return nil, usageErrorf("-T/--exclude: %v", err)
		}
	}
	p.scope = retain.Scope{Filters: filters, Exclude: o.exclude}
	if o.qos < 0 || o.qos > 2 {
		return nil, usageErrorf("-q/--qos %d: use 0, 1 or 2", o.qos)
	}
	p.qos = byte(o.qos)
	if p.quiet = o.quietPeriod; p.quiet <= 0 {
		return nil, usageErrorf("--quiet-period %s: use a positive number of seconds or a duration like 500ms", o.quietPeriod)
	}
	p.timeout = o.timeout
	if p.maxPasses = o.maxPasses; p.maxPasses < 1 {
		return nil, usageErrorf("--max-passes %d: use 1 or more", o.maxPasses)
	}
	if o.conn.given("disable-clean-session") || o.conn.given("session-expiry") {
		return nil, usageErrorf("retain-clear uses clean sessions: drop -c/--disable-clean-session and -x/--session-expiry")
	}
	if !o.dryRun && !o.yes {
		if !a.IO.InTTY || !a.IO.ErrTTY {
			return nil, usageErrorf("no terminal to confirm on: add --yes to clear without asking, or --dry-run to list")
		}
		p.ask = true
	}
	return p, nil
}

// retainClearError ends a run that did not do all its work: the message
// says what was done, the cause sets the exit code (none: exit 1).
type retainClearError struct {
	msg   string
	cause error
}

func (e *retainClearError) Error() string { return e.msg }
func (e *retainClearError) Unwrap() error { return e.cause }

func runRetainClear(ctx context.Context, a *App, o *retainClearOptions) error {
	conn, err := o.conn.resolve(a)
	if err != nil {
		return err
	}
	plan, err := o.plan(a, conn.urlTopic)
	if err != nil {
		return err
	}
	if plan.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, plan.timeout, &timeoutExpired{plan.timeout})
		defer cancel()
	}
	under := "under " + quoteList(plan.scope.Filters)
	out := bufio.NewWriterSize(a.IO.Out, 64*1024)
	prog := newRetainProgress(a.IO.Err, a.IO.ErrTTY && !o.conn.quiet, under)
	defer prog.stop()
	notice := func(format string, args ...any) {
		if !o.conn.quiet {
			prog.println(fmt.Sprintf(format, args...))
		}
	}
	if fb := conn.cfg.Fallback; fb != nil {
		fb.Notify = func(from, to int) { notice("%s", fallbackNotice(from, to)) }
	}
	var writeErr error
	enc := json.NewEncoder(out)
	enc.SetEscapeHTML(false)
	emit := func(v any) {
		if writeErr == nil {
			writeErr = enc.Encode(v)
		}
	}
	in := bufio.NewReader(a.IO.In)

	opts := retain.Options{
		Config:    conn.cfg,
		Scope:     plan.scope,
		Quiet:     plan.quiet,
		QoS:       plan.qos,
		DryRun:    o.dryRun,
		MaxPasses: plan.maxPasses,
		OnOutcome: func(oc retain.Outcome) {
			switch {
			case o.json:
				emit(topicJSON(oc))
			case oc.Status == retain.Found:
				if _, err := fmt.Fprintln(out, oc.Topic); err != nil && writeErr == nil {
					writeErr = err
				}
			}
			switch oc.Status {
			case retain.Rejected:
				notice("mqtk: not cleared: %s: %s", oc.Topic, reasonText(oc.Err.Code, oc.Err.Reason))
			case retain.StillRetained:
				notice("mqtk: still retained: %s", oc.Topic)
			}
		},
		OnProgress: prog.set,
		Confirm: func(ctx context.Context, c retain.Confirmation) (bool, error) {
			if !plan.ask {
				if c.Pass > 1 {
					notice("mqtk: the check found %s more %s %s (not sent by the broker at first, or retained since); clearing them too",
						groupDigits(uint64(len(c.Topics))), plural(len(c.Topics), "retained message", "retained messages"), under)
				}
				return true, nil
			}
			return confirmClear(ctx, a, in, prog, c, under, plan.scope.Exclude)
		},
	}
	rep, runErr := retain.Run(ctx, opts)
	prog.stop()

	if o.json {
		emit(summaryJSON(o, plan, rep, runErr == nil))
	}
	if err := out.Flush(); err != nil && writeErr == nil {
		writeErr = err
	}
	if err := retainClearOutcome(rep, runErr, o.dryRun, under); err != nil {
		return err
	}
	if writeErr != nil {
		return writeErr
	}
	if !o.conn.quiet {
		fmt.Fprintln(a.IO.Err, retainClearReport(rep, o.dryRun, under))
	}
	return nil
}

// retainClearReport is the line printed on stderr after a run that did
// all its work.
func retainClearReport(rep retain.Report, dryRun bool, under string) string {
	var s string
	switch {
	case dryRun && rep.Found > 0:
		s = fmt.Sprintf("found %s %s %s", groupDigits(uint64(rep.Found)), plural(rep.Found, "retained message", "retained messages"), under)
	case rep.Found == 0:
		s = "no retained messages " + under
	default:
		s = fmt.Sprintf("cleared %s %s %s", groupDigits(uint64(rep.Cleared)), plural(rep.Cleared, "retained message", "retained messages"), under)
		if rep.Passes > 1 {
			s += fmt.Sprintf(" in %d passes", rep.Passes)
		}
	}
	if rep.Excluded > 0 {
		s += fmt.Sprintf(" (excluded %s)", groupDigits(uint64(rep.Excluded)))
	}
	if dryRun && rep.Found > 0 {
		s += "; nothing cleared (--dry-run)"
	}
	return s
}

// retainClearOutcome is the error for a run that stopped early or left
// retained messages behind, saying what was done; nil if it did all its
// work.
func retainClearOutcome(rep retain.Report, runErr error, dryRun bool, under string) error {
	var done []string
	switch {
	case rep.Cleared == 0 && rep.Rejected == 0 && rep.Unconfirmed == 0:
		if !dryRun {
			done = append(done, "nothing cleared")
		}
	case rep.Cleared == rep.Found:
		done = append(done, fmt.Sprintf("cleared %s %s %s", groupDigits(uint64(rep.Cleared)),
			plural(rep.Cleared, "retained message", "retained messages"), under))
	default:
		done = append(done, fmt.Sprintf("cleared %s of %s retained messages %s", groupDigits(uint64(rep.Cleared)),
			groupDigits(uint64(rep.Found)), under))
	}
	if rep.Rejected > 0 {
		done = append(done, fmt.Sprintf("the broker refused %s", groupDigits(uint64(rep.Rejected))))
	}
	if rep.Unconfirmed > 0 {
		done = append(done, fmt.Sprintf("%s sent but not confirmed", groupDigits(uint64(rep.Unconfirmed))))
	}
	switch {
	case rep.StillRetained > 0 && rep.Protocol > 0 && rep.Protocol < mqttc.V5:
		// An MQTT 3 PUBACK confirms receipt only: mosquitto and mqtk's
		// broker acknowledge a clear their ACL denies, and drop it.
		done = append(done, fmt.Sprintf("%s still retained after %s acknowledged (with MQTT %s the broker may have dropped the %s, as for a topic its ACL does not let us write, or a publisher retained %s again)",
			groupDigits(uint64(rep.StillRetained)), plural(rep.StillRetained, "its clear was", "their clears were"),
			mqttc.VersionName(rep.Protocol), plural(rep.StillRetained, "clear", "clears"), plural(rep.StillRetained, "it", "them")))
	case rep.StillRetained > 0:
		done = append(done, fmt.Sprintf("%s retained again after %s cleared", groupDigits(uint64(rep.StillRetained)),
			plural(rep.StillRetained, "it was", "they were")))
	}
	if runErr != nil && rep.Found > 0 && rep.Cleared == rep.Found {
		done = append(done, "the check afterwards did not finish")
	}
	if rep.Declined > 0 && rep.Cleared+rep.Rejected > 0 {
		done = append(done, fmt.Sprintf("%s more found afterwards left as %s", groupDigits(uint64(rep.Declined)),
			plural(rep.Declined, "it was", "they were")))
	}
	summary := strings.Join(done, "; ")
	switch {
	case runErr != nil:
		if summary == "" {
			return runErr
		}
		cause := runErr
		if _, limit := errors.AsType[*retain.PassLimitError](runErr); limit && rep.FirstRejected != nil {
			cause = rep.FirstRejected // the refused clears decide the code (5), as in a run that ends
		}
		return &retainClearError{msg: runErr.Error() + "; " + summary, cause: cause}
	case rep.Rejected > 0:
		return &retainClearError{msg: summary, cause: rep.FirstRejected}
	case rep.StillRetained > 0 || rep.Declined > 0:
		return &retainClearError{msg: summary}
	}
	return nil
}

// confirmClear asks on the terminal whether to clear a pass's topics.
func confirmClear(ctx context.Context, a *App, in *bufio.Reader, prog *retainProgress, c retain.Confirmation, under string, exclude []string) (bool, error) {
	prog.pause()
	defer prog.resume()
	var b strings.Builder
	const preview = 5
	for i, t := range c.Topics {
		if i == preview {
			fmt.Fprintf(&b, "  ... and %s more\n", groupDigits(uint64(len(c.Topics)-preview)))
			break
		}
		fmt.Fprintf(&b, "  %s\n", t)
	}
	n := groupDigits(uint64(len(c.Topics)))
	msgs := plural(len(c.Topics), "retained message", "retained messages")
	if c.Pass == 1 {
		fmt.Fprintf(&b, "clear %s %s %s", n, msgs, under)
		if len(exclude) > 0 {
			fmt.Fprintf(&b, " (excluding %s)", quoteList(exclude))
		}
		b.WriteString("? [y/N] ")
	} else {
		fmt.Fprintf(&b, "the check found %s more %s %s (not sent by the broker at first, or retained since); clear them too? [y/N] ", n, msgs, under)
	}
	fmt.Fprint(a.IO.Err, b.String())
	answer := make(chan string, 1)
	go func() {
		line, _ := in.ReadString('\n')
		answer <- line
	}()
	select {
	case line := <-answer:
		switch strings.ToLower(strings.TrimSpace(line)) {
		case "y", "yes":
			return true, nil
		}
		if !strings.HasSuffix(line, "\n") {
			fmt.Fprintln(a.IO.Err)
		}
		return false, nil
	case <-ctx.Done():
		fmt.Fprintln(a.IO.Err)
		return false, context.Cause(ctx)
	}
}

// topicLine is a --json line for one topic.
type topicLine struct {
	Type         string `json:"type"`
	Topic        string `json:"topic"`
	Status       string `json:"status"`
	Pass         int    `json:"pass"`
	ReasonCode   *byte  `json:"reason_code,omitempty"`
	Reason       string `json:"reason,omitempty"`
	ReasonString string `json:"reason_string,omitempty"`
}

func topicJSON(oc retain.Outcome) topicLine {
	l := topicLine{Type: "topic", Topic: oc.Topic, Status: string(oc.Status), Pass: oc.Pass}
	if oc.Err != nil {
		code := oc.Err.Code
		l.ReasonCode, l.Reason = &code, mqttc.ReasonName(code)
		if !strings.EqualFold(oc.Err.Reason, l.Reason) {
			l.ReasonString = oc.Err.Reason
		}
	}
	return l
}

// summaryLine is the last --json line.
type summaryLine struct {
	Type          string   `json:"type"`
	Filters       []string `json:"filters"`
	Exclude       []string `json:"exclude"`
	DryRun        bool     `json:"dry_run"`
	QoS           byte     `json:"qos"`
	Passes        int      `json:"passes"`
	Found         int      `json:"found"`
	Excluded      int      `json:"excluded"`
	Cleared       int      `json:"cleared"`
	Rejected      int      `json:"rejected"`
	StillRetained int      `json:"still_retained"`
	Unconfirmed   int      `json:"unconfirmed"`
	Declined      int      `json:"declined"`
	Complete      bool     `json:"complete"`
}

func summaryJSON(o *retainClearOptions, p *retainClearPlan, rep retain.Report, complete bool) summaryLine {
	exclude := p.scope.Exclude
	if exclude == nil {
		exclude = []string{}
	}
	return summaryLine{
		Type: "summary", Filters: p.scope.Filters, Exclude: exclude, DryRun: o.dryRun, QoS: p.qos,
		Passes: rep.Passes, Found: rep.Found, Excluded: rep.Excluded, Cleared: rep.Cleared, Rejected: rep.Rejected,
		StillRetained: rep.StillRetained, Unconfirmed: rep.Unconfirmed, Declined: rep.Declined,
		Complete: complete && rep.Done,
	}
}

// reasonText names a reason code as mosquitto does, with the broker's
// reason string when it says more: "not authorized (0x87)".
func reasonText(code byte, reason string) string {
	s := fmt.Sprintf("%s (0x%02x)", mqttc.ReasonName(code), code)
	if reason != "" && !strings.EqualFold(reason, mqttc.ReasonName(code)) {
		s += ": " + reason
	}
	return s
}

// quoteList writes filters as 'a', 'b' and 'c'.
func quoteList(filters []string) string {
	q := make([]string, len(filters))
	for i, f := range filters {
		q[i] = "'" + f + "'"
	}
	if len(q) == 1 {
		return q[0]
	}
	return strings.Join(q[:len(q)-1], ", ") + " and " + q[len(q)-1]
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// retainProgress keeps one updating line on a terminal's stderr, redrawn
// at most 10 times a second, once a run has lasted half a second.
type retainProgress struct {
	mu     sync.Mutex
	line   statusLine
	on     bool
	under  string
	cur    retain.Progress
	paused bool
	start  time.Time
	done   chan struct{}
	once   sync.Once
}

func newRetainProgress(w io.Writer, on bool, under string) *retainProgress {
	p := &retainProgress{line: statusLine{w: w, on: true}, on: on, under: under, start: time.Now(), done: make(chan struct{})}
	if on {
		go p.loop()
	}
	return p
}

func (p *retainProgress) loop() {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			p.draw()
		case <-p.done:
			return
		}
	}
}

func (p *retainProgress) set(pr retain.Progress) {
	p.mu.Lock()
	p.cur = pr
	p.mu.Unlock()
}

func (p *retainProgress) draw() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.on || p.paused || time.Since(p.start) < 500*time.Millisecond {
		return
	}
	var line string
	switch c := p.cur; c.Phase {
	case retain.Collecting:
		line = fmt.Sprintf("collecting retained messages %s: %s found", p.under, groupDigits(uint64(c.Done)))
	case retain.Checking:
		line = fmt.Sprintf("pass %d: checking %s: %s retained", c.Pass, p.under, groupDigits(uint64(c.Done)))
	case retain.Clearing:
		line = fmt.Sprintf("pass %d: clearing %s of %s", c.Pass, groupDigits(uint64(c.Done)), groupDigits(uint64(c.Total)))
	default:
		return
	}
	p.line.draw(line)
}

// println prints a line of its own, clearing the progress line first.
func (p *retainProgress) println(s string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.line.println(s)
}

func (p *retainProgress) pause() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.line.clear()
	p.paused = true
}

func (p *retainProgress) resume() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.paused = false
}

// stop ends the drawing and clears the line; it may be called twice.
func (p *retainProgress) stop() {
	p.once.Do(func() { close(p.done) })
	p.mu.Lock()
	defer p.mu.Unlock()
	p.paused = true
	p.line.clear()
}
