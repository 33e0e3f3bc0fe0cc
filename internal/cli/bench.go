package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"mqtk/internal/bench"
	"mqtk/internal/broker"
	"mqtk/internal/mqttc"
	"mqtk/internal/topic"
)

type benchOptions struct {
	conn connFlags

	qos         string
	publishers  int
	subscribers int
	messages    int
	duration    time.Duration
	rate        float64
	size        int
	inflight    int
	topic       string
	warmup      time.Duration
	retain      bool
	json        bool
	csv         string
	noProgress  bool
	asserts     []string
	embedded    bool
}

func newBenchCmd(a *App) *cobra.Command {
	o := &benchOptions{}
	cmd := &cobra.Command{
		Use:   "bench [flags]",
		Short: "Measure publish throughput and latency per QoS",
		Long: `Benchmark a broker: publishers send timestamped, numbered messages while
subscribers in the same process receive them, for each QoS level in turn.
Each level runs the same load through the phases connect, subscribe, warm-up
(not counted), measure and drain (a bounded wait for acknowledgements and
deliveries still on their way; what never arrives is lost).

Without --rate every publisher sends as fast as its window of --inflight
unacknowledged messages allows (closed loop). With --rate the messages leave
on a fixed schedule and latency is measured from the scheduled time, so a
stalled broker shows as latency instead of hiding it (open loop).

The report names what each figure measures: ack latency is from the publish
being written to its PUBACK (QoS 1) or PUBCOMP (QoS 2); end-to-end latency is
from the send time in the message to its delivery to a subscriber; connect
latency is from dialling to CONNACK. Percentiles come from HdrHistograms
merged across clients (3 significant digits), never from averages.
--json and --csv are described in 'mqtk help bench-output'.

A level whose run counted errors has failed: the report is printed in full,
then bench names the cause on stderr, runs no further level and exits 5 if
the broker rejected a publish, else 3 if a connection was lost or the broker
stalled (nothing moved for 10s, plus the gap between two messages of
--rate), else 27 if an acknowledgement was still missing after the drain.
Messages planned (--messages, or --rate over --duration) but never sent
because the run was cut short are reported as unsent; so are, with --rate,
those still due when --duration ends with the publishers more than 100ms
behind the schedule: the run does not go on to catch up.

--assert checks a figure for CI, e.g. --assert 'qos1.e2e.p99<20ms' or
--assert 'lost==0'; the report is printed either way and a failed assertion
exits 1 (a failed run's code comes first). Ctrl-C prints the partial report,
marked interrupted, and exits 130.`,
		Example: `  mqtk bench --embedded                         # our own broker, in-process
  mqtk bench -h broker.local --qos 1 --publishers 4 --inflight 32
  mqtk bench --qos 0 --rate 1000 --duration 30s --json > run.ndjson
  mqtk bench --qos 1 --assert 'qos1.e2e.p99<20ms' --assert 'lost==0'`,
		Args:    noArgs,
		PreRunE: o.conn.prepare(a),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runBench(cmd.Context(), a, o, cmd.Flags())
		},
	}
	fs := cmd.Flags()
	fs.SortFlags = false
	fs.StringVarP(&o.qos, "qos", "q", "0,1,2", "QoS `LIST`: one run per level, in order, with the same load")
	fs.IntVar(&o.publishers, "publishers", 10, "publishing clients `N`")
	fs.IntVar(&o.subscribers, "subscribers", 1, "subscribing clients `N`, each receiving every message (0: publish only)")
	fs.IntVar(&o.messages, "messages", 0, "measure `N` messages per publisher instead of a duration")
	secondsVar(fs, &o.duration, "duration", 3*time.Second, "measure for `D` per QoS level (seconds or a duration; publishes under way at D still finish)")
	fs.Float64Var(&o.rate, "rate", 0, "total messages per second `R` across publishers, on a fixed schedule (0: as fast as possible)")
	fs.IntVar(&o.size, "size", 100, fmt.Sprintf("payload `BYTES` (at least %d, the header each message carries)", bench.HeaderSize))
	fs.IntVar(&o.inflight, "inflight", 10, "QoS 1/2 messages in flight per publisher `N` (also capped by the broker's Receive Maximum; MQTT 3.1.1/3.1 QoS 2: by 20)")
	fs.StringVarP(&o.topic, "topic", "t", "mqtk/bench/%i", "topic `PATTERN`: %i is the publisher index, %c its client id")
	secondsVar(fs, &o.warmup, "warmup", 500*time.Millisecond, "publish for `D` before measuring (not counted)")
	fs.BoolVarP(&o.retain, "retain", "r", false, "publish retained messages (cleared after each level)")
	fs.BoolVar(&o.json, "json", false, "print NDJSON: a config line, then a result line per QoS level")
	fs.StringVar(&o.csv, "csv", "", "also write the results as CSV to `FILE`")
	fs.BoolVar(&o.noProgress, "no-progress", false, "no progress line on stderr")
	fs.StringArrayVar(&o.asserts, "assert", nil, "fail (exit 1) unless `EXPR` holds, e.g. 'qos1.e2e.p99<20ms' (repeatable)")
	fs.BoolVar(&o.embedded, "embedded", false, "benchmark mqtk's own broker, started in-process on a free loopback port (its warnings go to stderr)")
	o.conn.addFlags(fs)
	return cmd
}

// benchPlan is a validated benchmark.
type benchPlan struct {
	opts    bench.Options
	levels  []byte
	asserts []bench.Assertion
}

func (o *benchOptions) plan(a *App, fs interface{ Changed(string) bool }) (*benchPlan, error) {
	p := &benchPlan{}
	for _, f := range strings.Split(o.qos, ",") {
		q, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || q < 0 || q > 2 {
			return nil, usageErrorf("--qos %q: give a list of 0, 1 and 2, such as 0,1,2", o.qos)
		}
		if slices.Contains(p.levels, byte(q)) {
			// qosN in --assert and the report's rows name a level once.
			return nil, usageErrorf("--qos %q: QoS %d is listed twice; each level runs once", o.qos, q)
		}
		p.levels = append(p.levels, byte(q))
	}
	if o.publishers < 1 {
		return nil, usageErrorf("--publishers %d: at least 1", o.publishers)
	}
	if o.subscribers < 0 {
		return nil, usageErrorf("--subscribers %d: 0 or more", o.subscribers)
	}
	if o.size < bench.HeaderSize || o.size > 256<<20 {
		return nil, usageErrorf("--size %d: from %d (the header each message carries) to 268435456 bytes", o.size, bench.HeaderSize)
	}
	if o.inflight < 1 || o.inflight > 65535 {
		return nil, usageErrorf("--inflight %d: from 1 to 65535", o.inflight)
	}
	if o.rate < 0 || math.IsNaN(o.rate) || math.IsInf(o.rate, 0) {
		return nil, usageErrorf("--rate %g: messages per second, a finite number; 0 for as fast as possible", o.rate)
	}
	var dur time.Duration
	if fs.Changed("messages") {
		if fs.Changed("duration") {
			return nil, usageErrorf("--messages and --duration conflict: give one or the other")
		}
		if o.messages < 1 {
			return nil, usageErrorf("--messages %d: at least 1", o.messages)
		}
	} else {
		if o.duration <= 0 {
			return nil, usageErrorf("--duration %s: give a positive number of seconds or a duration like 10s", o.duration)
		}
		dur = o.duration
	}
	t, err := bench.Topic(o.topic, 0, "x")
	if err != nil {
		return nil, &UsageError{Err: err}
	}
	if err := topic.ValidateName(t); err != nil {
		return nil, usageErrorf("--topic %q: %v", o.topic, err)
	}
	for _, s := range o.asserts {
		as, err := bench.ParseAssertion(s)
		if err != nil {
			return nil, &UsageError{Err: err}
		}
		// Check it against the shape of the results it will see.
		var shape []bench.Result
		for _, q := range p.levels {
			r := bench.Result{QoS: q}
			if q > 0 {
				r.Ack.Count = 1
			}
			if o.subscribers > 0 {
				r.E2E.Count = 1
			}
			r.Connect.Count = 1
			shape = append(shape, r)
		}
		if _, _, err := as.Check(shape); err != nil {
			return nil, &UsageError{Err: err} // it names the --assert
		}
		p.asserts = append(p.asserts, as)
	}

	// The connection: the embedded broker's, or the flags'.
	if o.embedded {
		for _, f := range append([]string{"host", "port", "url", "unix", "proxy", "ws-header"}, tlsFlagNames...) {
			// From MQTK_* variables only the broker's address conflicts;
			// the rest serve other brokers and are ignored (runBench).
			if o.conn.fs.Changed(f) || (f == "host" || f == "port" || f == "url") && o.conn.given(f) {
				return nil, usageErrorf("--embedded and --%s conflict: the embedded broker is on a free loopback port", f)
			}
		}
	}
	if o.conn.given("disable-clean-session") || o.conn.given("session-expiry") {
		return nil, usageErrorf("bench clients use clean sessions: drop -c/--disable-clean-session and -x/--session-expiry")
	}
	conn, err := o.conn.resolve(a)
	if err != nil {
		return nil, err
	}
	base := "mqtk-bench-" + randomID(6)
	switch {
	case o.conn.given("id"):
		base = o.conn.id
	case o.conn.given("id-prefix"):
		base = fmt.Sprintf("%s%d", o.conn.idPrefix, os.Getpid())
	}
	p.opts = bench.Options{
		Config: bench.Config{
			Embedded: o.embedded, Protocol: mqttc.VersionName(conn.cfg.ProtocolVersion), QoS: p.levels,
			Publishers: o.publishers, Subscribers: o.subscribers, Messages: o.messages, Duration: dur,
			Rate: o.rate, Size: o.size, Inflight: o.inflight, Topic: o.topic, Warmup: o.warmup,
			Retain: o.retain, Version: versionString(),
		},
		Base:     conn.cfg,
		ClientID: base,
	}
	return p, nil
}

func runBench(ctx context.Context, a *App, o *benchOptions, fs interface{ Changed(string) bool }) error {
	p, err := o.plan(a, fs)
	if err != nil {
		return err
	}
	var csvFile *os.File
	if o.csv != "" {
		if csvFile, err = os.Create(o.csv); err != nil {
			return usageErrorf("--csv: %v", err)
		}
		defer csvFile.Close()
	}
	prog := newProgressLine(a.IO.Err, a.IO.ErrTTY && !o.noProgress && !o.conn.quiet)
	if o.embedded {
		// Its warnings (messages dropped for a slow subscriber, no file
		// descriptors left) explain what the report shows: on stderr, each
		// on a line of its own, above the progress line.
		log := slog.New(slog.NewTextHandler(&prog.statusLine, &slog.HandlerOptions{Level: slog.LevelWarn})).With("from", "embedded broker")
		b, err := broker.Start(broker.Config{Listen: []string{"127.0.0.1:0"}, Logger: log})
		if err != nil {
			return fmt.Errorf("start the embedded broker: %w", err)
		}
		defer b.Close()
		u, err := mqttc.ParseURL(b.URLs()[0])
		if err != nil {
			return err
		}
		p.opts.Base.Endpoint = u.Endpoint
		p.opts.Base.TLS = nil
		p.opts.Base.Transport = mqttc.Transport{} // a proxy or headers from MQTK_* are for other brokers
	}
	p.opts.Broker = p.opts.Base.Endpoint.String()
	if p.opts.Base.Fallback != nil && !o.embedded {
		// Without -V, one connection first finds the version the broker
		// speaks: the config line then says which one ran, and no client's
		// connect latency includes a refused MQTT 5 attempt.
		v, err := probeVersion(ctx, p.opts.Base, p.opts.ClientID+"-probe")
		if err != nil {
			return err
		}
		p.opts.Config.Protocol = mqttc.VersionName(v)
	}

	if o.json {
		if err := bench.WriteJSONConfig(a.IO.Out, p.opts.Config); err != nil {
			return err
		}
	}
	// The load generator's heap is small (histograms, bitsets, a window of
	// payloads); collecting less often leaves more CPU for the broker.
	if _, set := a.LookupEnv("GOGC"); !set {
		defer debug.SetGCPercent(debug.SetGCPercent(400))
	}
	var results []bench.Result
	var runErr error
	for _, q := range p.levels {
		opts := p.opts
		opts.QoS = q
		opts.Progress = prog.show
		res, err := bench.Run(ctx, opts)
		prog.clear()
		if err != nil {
			if ctx.Err() != nil {
				res.Interrupted = true
			} else {
				runErr = err
				break
			}
		}
		results = append(results, res)
		if o.json {
			if err := bench.WriteJSONResult(a.IO.Out, res); err != nil {
				return err
			}
		}
		if res.Interrupted || len(res.Failures) > 0 {
			break // a broker that lost or refused one level would fail the next
		}
	}
	if !o.json && len(results) > 0 {
		if err := bench.WriteTable(a.IO.Out, results); err != nil {
			return err
		}
	}
	if csvFile != nil {
		if err := bench.WriteCSV(csvFile, results); err != nil {
			return fmt.Errorf("--csv: %w", err)
		}
		if err := csvFile.Close(); err != nil {
			return fmt.Errorf("--csv: %w", err)
		}
	}
	if runErr != nil {
		return runErr
	}
	if ctx.Err() != nil {
		return errInterrupted
	}
	if err := benchFailed(results); err != nil {
		return err
	}
	failed := 0
	for _, as := range p.asserts {
		ok, detail, err := as.Check(results)
		if err != nil {
			detail, ok = err.Error(), false
		}
		if !ok {
			failed++
			if !o.conn.quiet {
				fmt.Fprintf(a.IO.Err, "mqtk: assertion failed: %s\n", detail)
			}
		}
	}
	if failed > 0 {
		return &assertError{failed: failed, total: len(p.asserts)}
	}
	return nil
}

// probeVersion connects once with cfg and returns the protocol version the
// broker accepted; with cfg.Fallback, later connections use it directly.
func probeVersion(ctx context.Context, cfg mqttc.Config, clientID string) (int, error) {
	cfg.ClientID, cfg.CleanStart, cfg.OnMessage = clientID, true, nil
	c, err := mqttc.Dial(ctx, cfg)
	if err != nil {
		return 0, err
	}
	disconnect(ctx, c, cfg)
	return c.Server().ProtocolVersion, nil
}

// benchFailure is a QoS level's run that counted errors: the report is
// printed, then this is the one line that says why bench exits non-zero.
// It wraps the cause, which gives the exit code.
type benchFailure struct {
	qos    byte
	cause  error  // the first error of the kind that decides the exit code
	count  uint64 // how many of that kind
	others int    // other kinds of error in the level
	unsent uint64
}

func (e *benchFailure) Error() string {
	s := fmt.Sprintf("QoS %d run failed: %v", e.qos, e.cause)
	var more []string
	if e.count > 1 {
		more = append(more, groupDigits(e.count)+" times")
	}
	if e.others > 0 {
		kinds := "kinds"
		if e.others == 1 {
			kinds = "kind"
		}
		more = append(more, fmt.Sprintf("%d other %s of error in the report", e.others, kinds))
	}
	if e.unsent > 0 {
		more = append(more, fmt.Sprintf("%s planned messages never sent", groupDigits(e.unsent)))
	}
	if len(more) > 0 {
		s += " (" + strings.Join(more, "; ") + ")"
	}
	return s
}

func (e *benchFailure) Unwrap() error { return e.cause }

// benchFailureRank orders the exit codes of a failed run's errors: a
// broker's rejection first (it is usually why the rest happened, and is
// fixed in its configuration), then a lost connection or a stall, then a
// missing acknowledgement, then anything else.
func benchFailureRank(code int) int {
	switch code {
	case ExitRejected:
		return 0
	case ExitNetwork:
		return 1
	case ExitTimeout:
		return 2
	}
	return 3
}

// benchFailed is the failure of the runs, if any counted errors: the error
// of the first rank (benchFailureRank) in the first level that has one.
func benchFailed(results []bench.Result) error {
	var best *benchFailure
	bestRank := 0
	for _, r := range results {
		kinds := make([]string, 0, len(r.Errors))
		for k := range r.Errors {
			kinds = append(kinds, k)
		}
		slices.Sort(kinds) // the order of r.Failures
		for i, cause := range r.Failures {
			rank := benchFailureRank(exitCode(cause))
			if best != nil && rank >= bestRank {
				continue
			}
			best, bestRank = &benchFailure{qos: r.QoS, cause: cause, others: len(r.Failures) - 1, unsent: r.Unsent}, rank
			if i < len(kinds) {
				best.count = r.Errors[kinds[i]]
			}
		}
	}
	if best == nil {
		return nil
	}
	return best
}

// assertError is a benchmark whose --assert did not hold: exit 1.
type assertError struct{ failed, total int }

func (e *assertError) Error() string {
	return fmt.Sprintf("%d of %d assertions failed", e.failed, e.total)
}

// progressLine is bench's progress on a terminal's stderr.
type progressLine struct{ statusLine }

func newProgressLine(w io.Writer, on bool) *progressLine {
	return &progressLine{statusLine{w: w, on: on}}
}

func (l *progressLine) show(p bench.Progress) {
	line := fmt.Sprintf("qos %d  %-9s", p.QoS, p.Phase)
	if p.Phase != bench.PhaseConnect && p.Phase != bench.PhaseSubscribe {
		line += fmt.Sprintf("  sent %s  received %s  %s msg/s", groupDigits(p.Sent), groupDigits(p.Received), groupDigits(uint64(p.Rate)))
	}
	l.draw(line)
}

// groupDigits writes n with thousands separators: 1,204.
func groupDigits(n uint64) string {
	s := strconv.FormatUint(n, 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
