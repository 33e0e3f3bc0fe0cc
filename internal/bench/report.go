package bench

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// jsonConfig is the {"type":"config"} NDJSON line; field order is the output order.
type jsonConfig struct {
	Type        string  `json:"type"`
	Broker      string  `json:"broker"`
	Embedded    bool    `json:"embedded"`
	Protocol    string  `json:"protocol"`
	QoS         []int   `json:"qos"`
	Publishers  int     `json:"publishers"`
	Subscribers int     `json:"subscribers"`
	Messages    int     `json:"messages"`
	DurationS   float64 `json:"duration_s"`
	Rate        float64 `json:"rate"`
	Size        int     `json:"size"`
	Inflight    int     `json:"inflight"`
	Topic       string  `json:"topic"`
	WarmupS     float64 `json:"warmup_s"`
	Retain      bool    `json:"retain"`
	Version     string  `json:"version"`
}

// jsonLatency is a latency summary in microseconds.
type jsonLatency struct {
	P50   float64 `json:"p50"`
	P90   float64 `json:"p90"`
	P99   float64 `json:"p99"`
	P999  float64 `json:"p999"`
	Max   float64 `json:"max"`
	Count int64   `json:"count"`
}

// jsonResult is the {"type":"result"} NDJSON line; field order is the output order.
type jsonResult struct {
	Type        string            `json:"type"`
	QoS         int               `json:"qos"`
	Publishers  int               `json:"publishers"`
	Subscribers int               `json:"subscribers"`
	Size        int               `json:"size"`
	Sent        uint64            `json:"sent"`
	Acked       uint64            `json:"acked"`
	Received    uint64            `json:"received"`
	Lost        uint64            `json:"lost"`
	Duplicates  uint64            `json:"duplicates"`
	OutOfOrder  uint64            `json:"out_of_order"`
	DurationS   float64           `json:"duration_s"`
	PublishRate float64           `json:"publish_rate"`
	ReceiveRate float64           `json:"receive_rate"`
	PublishMBs  float64           `json:"publish_mb_s"`
	ReceiveMBs  float64           `json:"receive_mb_s"`
	Ack         *jsonLatency      `json:"ack_latency_us,omitempty"`
	E2E         *jsonLatency      `json:"e2e_latency_us,omitempty"`
	Connect     jsonLatency       `json:"connect_latency_us"`
	Errors      map[string]uint64 `json:"errors"`
	Unsent      uint64            `json:"unsent"`
	Interrupted bool              `json:"interrupted,omitempty"`
}

// round returns x rounded to the given number of decimals; NaN and the
// infinities (a rate over a zero duration) become 0, which JSON can carry.
func round(x float64, decimals int) float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return 0
	}
	p := math.Pow10(decimals)
	return math.Round(x*p) / p
}

// Decimals of the figures in the JSON and CSV reports.
const (
	decSeconds = 3 // duration_s: milliseconds
	decRate    = 1 // messages per second
	decMBs     = 3 // MB per second
	decMicros  = 3 // latencies in µs: nanoseconds
)

func seconds(d time.Duration) float64 { return round(d.Seconds(), 9) }

func newJSONLatency(l Latency) jsonLatency {
	return jsonLatency{
		P50:   round(l.P50, decMicros),
		P90:   round(l.P90, decMicros),
		P99:   round(l.P99, decMicros),
		P999:  round(l.P999, decMicros),
		Max:   round(l.Max, decMicros),
		Count: l.Count,
	}
}

// writeJSONLine writes v as one line of JSON, HTML characters unescaped.
func writeJSONLine(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// WriteJSONConfig writes c as the {"type":"config",...} NDJSON line.
func WriteJSONConfig(w io.Writer, c Config) error {
	qos := make([]int, len(c.QoS))
	for i, q := range c.QoS {
		qos[i] = int(q)
	}
	return writeJSONLine(w, jsonConfig{
		Type:        "config",
		Broker:      c.Broker,
		Embedded:    c.Embedded,
		Protocol:    c.Protocol,
		QoS:         qos,
		Publishers:  c.Publishers,
		Subscribers: c.Subscribers,
		Messages:    c.Messages,
		DurationS:   seconds(c.Duration),
		Rate:        round(c.Rate, 3),
		Size:        c.Size,
		Inflight:    c.Inflight,
		Topic:       c.Topic,
		WarmupS:     seconds(c.Warmup),
		Retain:      c.Retain,
		Version:     c.Version,
	})
}

// WriteJSONResult writes r as one {"type":"result",...} NDJSON line.
func WriteJSONResult(w io.Writer, r Result) error {
	j := jsonResult{
		Type:        "result",
		QoS:         int(r.QoS),
		Publishers:  r.Publishers,
		Subscribers: r.Subscribers,
		Size:        r.Size,
		Sent:        r.Sent,
		Acked:       r.Acked,
		Received:    r.Received,
		Lost:        r.Lost,
		Duplicates:  r.Duplicates,
		OutOfOrder:  r.OutOfOrder,
		DurationS:   round(r.Duration.Seconds(), decSeconds),
		PublishRate: round(r.PublishRate, decRate),
		ReceiveRate: round(r.ReceiveRate, decRate),
		PublishMBs:  round(r.PublishMBs, decMBs),
		ReceiveMBs:  round(r.ReceiveMBs, decMBs),
		Connect:     newJSONLatency(r.Connect),
		Errors:      r.Errors,
		Unsent:      r.Unsent,
		Interrupted: r.Interrupted,
	}
	if r.Ack.Count > 0 {
		l := newJSONLatency(r.Ack)
		j.Ack = &l
	}
	if r.E2E.Count > 0 {
		l := newJSONLatency(r.E2E)
		j.E2E = &l
	}
	if j.Errors == nil {
		j.Errors = map[string]uint64{}
	}
	return writeJSONLine(w, j)
}

// csvHeader is the first row of WriteCSV.
var csvHeader = []string{
	"qos", "publishers", "subscribers", "size",
	"sent", "acked", "received", "lost", "duplicates", "out_of_order",
	"duration_s", "publish_rate", "receive_rate", "publish_mb_s", "receive_mb_s",
	"ack_p50_us", "ack_p90_us", "ack_p99_us", "ack_p999_us", "ack_max_us",
	"e2e_p50_us", "e2e_p90_us", "e2e_p99_us", "e2e_p999_us", "e2e_max_us",
	"connect_p50_us", "connect_p90_us", "connect_p99_us", "connect_p999_us", "connect_max_us",
	"errors", "interrupted", "unsent",
}

// WriteCSV writes a header row and one row per result.
func WriteCSV(w io.Writer, rs []Result) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(csvHeader); err != nil {
		return err
	}
	u := func(n uint64) string { return strconv.FormatUint(n, 10) }
	i := func(n int) string { return strconv.Itoa(n) }
	f := func(x float64, decimals int) string {
		return strconv.FormatFloat(round(x, decimals), 'f', -1, 64)
	}
	for _, r := range rs {
		row := []string{
			i(int(r.QoS)), i(r.Publishers), i(r.Subscribers), i(r.Size),
			u(r.Sent), u(r.Acked), u(r.Received), u(r.Lost), u(r.Duplicates), u(r.OutOfOrder),
			f(r.Duration.Seconds(), decSeconds),
			f(r.PublishRate, decRate), f(r.ReceiveRate, decRate),
			f(r.PublishMBs, decMBs), f(r.ReceiveMBs, decMBs),
		}
		for _, l := range []Latency{r.Ack, r.E2E, r.Connect} {
			if l.Count == 0 {
				row = append(row, "", "", "", "", "")
				continue
			}
			row = append(row, f(l.P50, decMicros), f(l.P90, decMicros), f(l.P99, decMicros),
				f(l.P999, decMicros), f(l.Max, decMicros))
		}
		row = append(row, u(errorTotal(r.Errors)), strconv.FormatBool(r.Interrupted), u(r.Unsent))
		if err := cw.Write(row); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// errorTotal is the sum of the error counts.
func errorTotal(errs map[string]uint64) uint64 {
	var n uint64
	for _, c := range errs {
		n += c
	}
	return n
}

// Explanations of the latency measurements, as the table prints them.
const (
	explainAck     = "ack: publish written to PUBACK (QoS 1) / PUBCOMP (QoS 2)"
	explainE2E     = "end-to-end: send time in the payload (with --rate, the scheduled one) to delivery at a subscriber"
	explainConnect = "connect: dial (TCP, TLS, WebSocket) to CONNACK, for every client"
)

// WriteTable writes rs as a table for people: one row of counts and rates
// per QoS level, then latency percentiles in human units, then errors.
func WriteTable(w io.Writer, rs []Result) error {
	if len(rs) == 0 {
		return nil
	}
	var b strings.Builder
	var tb bytes.Buffer
	tw := newTable(&tb)
	fmt.Fprint(tw, "QoS\ttime\tsent\tacked\treceived\tlost\tdup\tooo\tpub msg/s\tpub MB/s\trecv msg/s\trecv MB/s\t\n")
	interrupted := false
	for _, r := range rs {
		mark := ""
		if r.Interrupted {
			mark, interrupted = "*", true
		}
		fmt.Fprintf(tw, "%d%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n",
			r.QoS, mark, humanDuration(r.Duration),
			commas(r.Sent), commas(r.Acked), commas(r.Received),
			commas(r.Lost), commas(r.Duplicates), commas(r.OutOfOrder),
			rate(r.PublishRate), mbs(r.PublishMBs), rate(r.ReceiveRate), mbs(r.ReceiveMBs))
	}
	if err := flushTable(&b, tw, &tb); err != nil {
		return err
	}
	if interrupted {
		b.WriteString("* interrupted: the run was stopped before its end, figures are partial\n")
	}

	// Latency rows, labels padded by hand so that they read left-aligned in
	// the right-aligned table.
	type row struct {
		qos   byte
		label string
		l     Latency
	}
	var rows []row
	var hasAck, hasE2E, hasConnect bool
	for _, r := range rs {
		if r.Ack.Count > 0 {
			label := "ack (PUBACK)"
			if r.QoS == 2 {
				label = "ack (PUBCOMP)"
			}
			rows = append(rows, row{r.QoS, label, r.Ack})
			hasAck = true
		}
		if r.E2E.Count > 0 {
			rows = append(rows, row{r.QoS, "end-to-end", r.E2E})
			hasE2E = true
		}
		if r.Connect.Count > 0 {
			rows = append(rows, row{r.QoS, "connect", r.Connect})
			hasConnect = true
		}
	}
	if len(rows) > 0 {
		b.WriteString("\nlatency\n")
		for _, e := range []struct {
			has  bool
			text string
		}{{hasAck, explainAck}, {hasE2E, explainE2E}, {hasConnect, explainConnect}} {
			if e.has {
				b.WriteString("  " + e.text + "\n")
			}
		}
		b.WriteString("\n")
		width := len("measurement")
		for _, r := range rows {
			width = max(width, len(r.label))
		}
		tw = newTable(&tb)
		fmt.Fprintf(tw, "QoS\t%-*s\tp50\tp90\tp99\tp99.9\tmax\tsamples\t\n", width, "measurement")
		for _, r := range rows {
			fmt.Fprintf(tw, "%d\t%-*s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", r.qos, width, r.label,
				humanMicros(r.l.P50), humanMicros(r.l.P90), humanMicros(r.l.P99),
				humanMicros(r.l.P999), humanMicros(r.l.Max), commas(uint64(r.l.Count)))
		}
		if err := flushTable(&b, tw, &tb); err != nil {
			return err
		}
	}

	first := true
	for _, r := range rs {
		if len(r.Errors) == 0 && r.Unsent == 0 {
			continue
		}
		if first {
			b.WriteString("\n")
			first = false
		}
		if len(r.Errors) > 0 {
			fmt.Fprintf(&b, "errors (QoS %d): %s\n", r.QoS, errorList(r.Errors))
		}
		switch {
		case r.Unsent > 0 && r.Behind && len(r.Errors) == 0 && !r.Interrupted:
			fmt.Fprintf(&b, "unsent (QoS %d): %s planned messages not sent: the publishers were behind the --rate schedule when --duration ended (the broker or this machine did not keep up)\n", r.QoS, commas(r.Unsent))
		case r.Unsent > 0:
			fmt.Fprintf(&b, "unsent (QoS %d): %s planned messages never sent: the run was cut short\n", r.QoS, commas(r.Unsent))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// tablePadding is the space between the table's columns.
const tablePadding = 2

// newTable returns a tabwriter that right-aligns every cell (text cells are
// padded by hand to read left-aligned) into buf.
func newTable(buf *bytes.Buffer) *tabwriter.Writer {
	buf.Reset()
	return tabwriter.NewWriter(buf, 0, 0, tablePadding, ' ', tabwriter.AlignRight)
}

// flushTable flushes tw and copies its lines from buf to b without the
// padding right alignment puts before the first column.
func flushTable(b *strings.Builder, tw *tabwriter.Writer, buf *bytes.Buffer) error {
	if err := tw.Flush(); err != nil {
		return err
	}
	for line := range strings.Lines(buf.String()) {
		b.WriteString(strings.TrimPrefix(line, strings.Repeat(" ", tablePadding)))
	}
	return nil
}

// errorList renders errs as "kind count, kind count", kinds sorted.
func errorList(errs map[string]uint64) string {
	kinds := make([]string, 0, len(errs))
	for k := range errs {
		kinds = append(kinds, k)
	}
	slices.Sort(kinds)
	parts := make([]string, len(kinds))
	for i, k := range kinds {
		parts[i] = k + " " + commas(errs[k])
	}
	return strings.Join(parts, ", ")
}

// commas renders n with a comma every three digits: 1,204.
func commas(n uint64) string {
	s := strconv.FormatUint(n, 10)
	if len(s) <= 3 {
		return s
	}
	var b strings.Builder
	lead := len(s) % 3
	if lead > 0 {
		b.WriteString(s[:lead])
	}
	for i := lead; i < len(s); i += 3 {
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(s[i : i+3])
	}
	return b.String()
}

// rate renders messages per second as a whole number with commas.
func rate(x float64) string {
	x = round(x, 0)
	if x < 0 {
		return "-" + commas(uint64(-x))
	}
	return commas(uint64(x))
}

// mbs renders megabytes per second with two decimals.
func mbs(x float64) string {
	return strconv.FormatFloat(round(x, 2), 'f', 2, 64)
}

// humanDuration renders d in µs, ms or s with 3 significant digits.
func humanDuration(d time.Duration) string {
	return humanMicros(float64(d) / 1000)
}

// humanMicros renders a time in microseconds in µs below 1 ms, ms below 1 s
// and s from there, with 3 significant digits: 412µs, 4.10ms, 23.4ms, 1.20s.
func humanMicros(us float64) string {
	if math.IsNaN(us) || math.IsInf(us, 0) {
		return "-"
	}
	if us == 0 {
		return "0s"
	}
	v, unit := us, "µs"
	for _, next := range []string{"ms", "s"} {
		if sig3(v) < 1000 {
			break
		}
		v, unit = v/1000, next
	}
	v = sig3(v)
	decimals := 0
	switch {
	case v >= 100:
		decimals = 0
	case v >= 10:
		decimals = 1
	case v >= 1:
		decimals = 2
	default:
		// Below 1 µs: as many decimals as 3 significant digits need.
		return strconv.FormatFloat(v, 'f', -1, 64) + unit
	}
	return strconv.FormatFloat(v, 'f', decimals, 64) + unit
}

// sig3 rounds x to 3 significant digits.
func sig3(x float64) float64 {
	if x == 0 {
		return 0
	}
	mag := math.Floor(math.Log10(math.Abs(x)))
	p := math.Pow10(2 - int(mag))
	return math.Round(x*p) / p
}
