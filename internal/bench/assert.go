package bench

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
)

// Assertion is one --assert expression: [qosN.]METRIC OP VALUE.
type Assertion struct {
	Text string // as given

	qos      int    // the QoS level named by a qosN prefix; -1 for every result
	metric   string // canonical: "lost", "e2e.p99"...
	op       string // < <= > >= == !=
	value    float64
	valueRaw string // VALUE as written, for messages
}

// metricKind says what unit a metric is in and which values it takes.
type metricKind int

const (
	kindCount   metricKind = iota // a number of messages: k/M allowed
	kindRate                      // per second: k/M allowed
	kindSeconds                   // duration_s: a number of seconds or a duration with a unit
	kindLatency                   // µs; the value must have a unit
)

// plainMetrics are the metrics that are not latencies, in the order help
// lists them.
var plainMetrics = []struct {
	name string
	kind metricKind
	get  func(Result) float64
}{
	{"sent", kindCount, func(r Result) float64 { return float64(r.Sent) }},
	{"acked", kindCount, func(r Result) float64 { return float64(r.Acked) }},
	{"received", kindCount, func(r Result) float64 { return float64(r.Received) }},
	{"lost", kindCount, func(r Result) float64 { return float64(r.Lost) }},
	{"duplicates", kindCount, func(r Result) float64 { return float64(r.Duplicates) }},
	{"out_of_order", kindCount, func(r Result) float64 { return float64(r.OutOfOrder) }},
	{"unsent", kindCount, func(r Result) float64 { return float64(r.Unsent) }},
	{"errors", kindCount, func(r Result) float64 { return float64(errorTotal(r.Errors)) }},
	{"duration_s", kindSeconds, func(r Result) float64 { return r.Duration.Seconds() }},
	{"publish_rate", kindRate, func(r Result) float64 { return r.PublishRate }},
	{"receive_rate", kindRate, func(r Result) float64 { return r.ReceiveRate }},
	{"publish_mb_s", kindRate, func(r Result) float64 { return r.PublishMBs }},
	{"receive_mb_s", kindRate, func(r Result) float64 { return r.ReceiveMBs }},
}

// latencyMetrics are the latency summaries: METRIC is NAME.PERCENTILE.
var latencyMetrics = []struct {
	name string
	get  func(Result) Latency
	none string // why the summary can be empty
}{
	{"ack", func(r Result) Latency { return r.Ack }, "QoS 0 is not acknowledged"},
	{"e2e", func(r Result) Latency { return r.E2E }, "there were no subscribers or no deliveries"},
	{"connect", func(r Result) Latency { return r.Connect }, "no client connected"},
}

// percentiles are the fields of a latency summary, by the names --assert
// takes ("p99.9" is accepted as "p999").
var percentiles = []struct {
	name string
	get  func(Latency) float64
}{
	{"p50", func(l Latency) float64 { return l.P50 }},
	{"p90", func(l Latency) float64 { return l.P90 }},
	{"p99", func(l Latency) float64 { return l.P99 }},
	{"p999", func(l Latency) float64 { return l.P999 }},
	{"max", func(l Latency) float64 { return l.Max }},
}

const validMetrics = "sent, acked, received, lost, duplicates, out_of_order, unsent, errors, duration_s, " +
	"publish_rate, receive_rate, publish_mb_s, receive_mb_s, " +
	"and ack|e2e|connect.p50|p90|p99|p999|max"

// number is a VALUE's number: digits, underscores between digits, an
// optional fraction; then the suffix (unit).
var number = regexp.MustCompile(`^([0-9]+(?:_[0-9]+)*(?:\.[0-9]+(?:_[0-9]+)*)?)(.*)$`)

// durationUnits are the units of a latency VALUE, in µs.
var durationUnits = map[string]float64{
	"ns": 0.001,
	"us": 1,
	"µs": 1, // U+00B5 micro sign
	"μs": 1, // U+03BC Greek small mu
	"ms": 1000,
	"s":  1_000_000,
}

// ParseAssertion parses an --assert expression, [qosN.]METRIC OP VALUE, in
// which spaces are optional: lost==0, qos1.e2e.p99 < 20ms,
// qos0.receive_rate>50k.
func ParseAssertion(s string) (Assertion, error) {
	a := Assertion{Text: s, qos: -1}
	fail := func(format string, args ...any) (Assertion, error) {
		return Assertion{}, fmt.Errorf("--assert %q: %s", s, fmt.Sprintf(format, args...))
	}
	expr := strings.Join(strings.Fields(s), "")
	if expr == "" {
		return fail("empty; want [qosN.]METRIC OP VALUE, e.g. lost==0")
	}
	i := strings.IndexAny(expr, "<>=!")
	if i < 0 {
		return fail("no comparison; want [qosN.]METRIC OP VALUE with OP one of < <= > >= == !=")
	}
	left, rest := strings.ToLower(expr[:i]), expr[i:]
	switch {
	case strings.HasPrefix(rest, "<="), strings.HasPrefix(rest, ">="),
		strings.HasPrefix(rest, "=="), strings.HasPrefix(rest, "!="):
		a.op, rest = rest[:2], rest[2:]
	case rest[0] == '<' || rest[0] == '>':
		a.op, rest = rest[:1], rest[1:]
	default:
		return fail("bad operator %q; want one of < <= > >= == !=", rest[:1])
	}
	if left == "" {
		return fail("no metric before %s", a.op)
	}
	if rest == "" {
		return fail("no value after %s", a.op)
	}
	a.valueRaw = rest

	if name, ok := strings.CutPrefix(left, "qos"); ok {
		level, metric, found := strings.Cut(name, ".")
		if level != "0" && level != "1" && level != "2" {
			return fail("bad QoS %q; want qos0, qos1 or qos2", "qos"+level)
		}
		if !found || metric == "" {
			return fail("no metric after qos%s.", level)
		}
		a.qos = int(level[0] - '0')
		left = metric
	}

	kind, ok := kindCount, false
	for _, m := range plainMetrics {
		if m.name == left {
			kind, ok = m.kind, true
			break
		}
	}
	if !ok {
		name, p, _ := strings.Cut(left, ".")
		if p == "p99.9" {
			p = "p999"
		}
		if latencyMetric(name) && percentileIndex(p) >= 0 {
			kind, ok = kindLatency, true
			left = name + "." + p
		}
	}
	if !ok {
		return fail("unknown metric %q; want %s", left, validMetrics)
	}
	a.metric = left

	m := number.FindStringSubmatch(rest)
	if m == nil {
		return fail("bad value %q", rest)
	}
	v, err := strconv.ParseFloat(strings.ReplaceAll(m[1], "_", ""), 64)
	if err != nil || math.IsInf(v, 0) {
		return fail("bad value %q", rest)
	}
	suffix := m[2]
	switch kind {
	case kindLatency:
		if suffix == "" {
			return fail("%s is a latency: add a unit, e.g. %sms", left, m[1])
		}
		scale, ok := durationUnits[suffix]
		if !ok {
			return fail("bad value %q: unit %q; want ns, us, µs, ms or s", rest, suffix)
		}
		v *= scale
	case kindSeconds:
		if suffix != "" {
			scale, ok := durationUnits[suffix]
			if !ok {
				return fail("bad value %q: unit %q; want seconds, or ns, us, µs, ms or s", rest, suffix)
			}
			v = v * scale / 1e6
		}
	default:
		switch suffix {
		case "":
		case "k":
			v *= 1e3
		case "M":
			v *= 1e6
		default:
			return fail("bad value %q: suffix %q; want k (thousand) or M (million)", rest, suffix)
		}
	}
	a.value = v
	return a, nil
}

func latencyMetric(name string) bool {
	for _, m := range latencyMetrics {
		if m.name == name {
			return true
		}
	}
	return false
}

func percentileIndex(p string) int {
	for i, q := range percentiles {
		if q.name == p {
			return i
		}
	}
	return -1
}

// String returns the expression as given.
func (a Assertion) String() string { return a.Text }

// Check evaluates a against rs: the result of the QoS level its qosN prefix
// names, or every result without one. ok is true when the comparison holds
// for all of them. detail gives the actual values (on failure, those that
// failed): "qos1.e2e.p99 = 23.4ms, wanted < 20ms". err is set when a cannot
// be evaluated: the QoS level was not run, or a latency has no samples.
func (a Assertion) Check(rs []Result) (ok bool, detail string, err error) {
	if a.metric == "" {
		return false, "", errors.New("assertion not parsed: use ParseAssertion")
	}
	fail := func(format string, args ...any) (bool, string, error) {
		return false, "", fmt.Errorf("--assert %q: %s", a.Text, fmt.Sprintf(format, args...))
	}
	var checked []Result
	for _, r := range rs {
		if a.qos < 0 || int(r.QoS) == a.qos {
			checked = append(checked, r)
		}
	}
	if len(checked) == 0 {
		if a.qos >= 0 {
			return fail("qos%d was not run", a.qos)
		}
		return fail("no results")
	}

	var passed, failed []string
	for _, r := range checked {
		actual, text, reason := a.actual(r)
		if reason != "" {
			hint := ""
			if a.qos < 0 {
				for _, o := range checked {
					if _, _, none := a.actual(o); none == "" {
						hint = fmt.Sprintf("; name a level that has one, e.g. qos%d.%s", o.QoS, a.metric)
						break
					}
				}
			}
			return fail("qos%d has no %s latency: %s%s", r.QoS, strings.Split(a.metric, ".")[0], reason, hint)
		}
		part := fmt.Sprintf("qos%d.%s = %s", r.QoS, a.metric, text)
		if compare(actual, a.op, a.value) {
			passed = append(passed, part)
		} else {
			failed = append(failed, part+", wanted "+a.op+" "+a.valueRaw)
		}
	}
	if len(failed) > 0 {
		return false, strings.Join(failed, "; "), nil
	}
	return true, strings.Join(passed, "; "), nil
}

// actual returns the value of a's metric in r as the JSON report has it
// (rounded alike, so that a script checking the report reaches the same
// verdict), and how it reads; or why there is none.
func (a Assertion) actual(r Result) (v float64, text, none string) {
	for _, m := range plainMetrics {
		if m.name != a.metric {
			continue
		}
		v = m.get(r)
		switch m.kind {
		case kindCount:
		case kindSeconds:
			v = round(v, decSeconds)
		default:
			decimals := decRate
			if strings.HasSuffix(m.name, "_mb_s") {
				decimals = decMBs
			}
			v = round(v, decimals)
		}
		return v, strconv.FormatFloat(v, 'f', -1, 64), ""
	}
	name, p, _ := strings.Cut(a.metric, ".")
	for _, m := range latencyMetrics {
		if m.name != name {
			continue
		}
		l := m.get(r)
		if l.Count == 0 {
			return 0, "", m.none
		}
		v = round(percentiles[percentileIndex(p)].get(l), decMicros)
		text = humanMicros(v)
		if compare(sig3(v), a.op, a.value) != compare(v, a.op, a.value) {
			// The 3 digits shown would give the other verdict ("20.0ms,
			// wanted < 20ms"): the exact figure too.
			text += " (" + strconv.FormatFloat(v, 'f', -1, 64) + "µs)"
		}
		return v, text, ""
	}
	panic("bench: unknown metric " + a.metric) // ParseAssertion accepted it
}

func compare(x float64, op string, y float64) bool {
	switch op {
	case "<":
		return x < y
	case "<=":
		return x <= y
	case ">":
		return x > y
	case ">=":
		return x >= y
	case "==":
		return x == y
	case "!=":
		return x != y
	}
	return false
}
