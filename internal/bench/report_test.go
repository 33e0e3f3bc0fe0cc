package bench

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"
)

// jsonKind names the JSON type of a decoded value.
func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "bool"
	case json.Number:
		return "number"
	case string:
		return "string"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return fmt.Sprintf("%T", v)
}

// decodeLine decodes one NDJSON line into its keys in order and values.
func decodeLine(t *testing.T, line string) ([]string, map[string]any) {
	t.Helper()
	if strings.Count(line, "\n") != 1 || !strings.HasSuffix(line, "\n") {
		t.Fatalf("not one line: %q", line)
	}
	dec := json.NewDecoder(strings.NewReader(line))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("decode %q: %v", line, err)
	}
	// The top-level keys, in order.
	dec = json.NewDecoder(strings.NewReader(line))
	var keys []string
	depth := 0
	expectKey := false
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			depth++
			expectKey = depth == 1
			continue
		case json.Delim('}'), json.Delim(']'):
			depth--
			expectKey = depth == 1
			continue
		}
		if depth == 1 {
			if expectKey {
				keys = append(keys, tok.(string))
			}
			expectKey = !expectKey
		}
	}
	return keys, m
}

type field struct{ key, kind string }

func checkSchema(t *testing.T, line string, want []field) map[string]any {
	t.Helper()
	keys, m := decodeLine(t, line)
	var wantKeys []string
	for _, f := range want {
		wantKeys = append(wantKeys, f.key)
	}
	if !reflect.DeepEqual(keys, wantKeys) {
		t.Errorf("keys\n%q\nwant\n%q", keys, wantKeys)
	}
	for _, f := range want {
		if got := jsonKind(m[f.key]); got != f.kind {
			t.Errorf("%s is %s, want %s", f.key, got, f.kind)
		}
	}
	return m
}

var configFields = []field{
	{"type", "string"}, {"broker", "string"}, {"embedded", "bool"}, {"protocol", "string"},
	{"qos", "array"}, {"publishers", "number"}, {"subscribers", "number"}, {"messages", "number"},
	{"duration_s", "number"}, {"rate", "number"}, {"size", "number"}, {"inflight", "number"},
	{"topic", "string"}, {"warmup_s", "number"}, {"retain", "bool"}, {"version", "string"},
}

func TestWriteJSONConfig(t *testing.T) {
	var b bytes.Buffer
	err := WriteJSONConfig(&b, Config{
		Broker: "mqtt://127.0.0.1:1883", Embedded: true, Protocol: "5", QoS: []byte{0, 1, 2},
		Publishers: 10, Subscribers: 1, Messages: 0, Duration: 10 * time.Second, Rate: 0,
		Size: 100, Inflight: 16, Topic: "bench/%i&<x>", Warmup: 1500 * time.Millisecond,
		Retain: false, Version: "v0.3.0",
	})
	if err != nil {
		t.Fatal(err)
	}
	line := b.String()
	m := checkSchema(t, line, configFields)
	want := `{"type":"config","broker":"mqtt://127.0.0.1:1883","embedded":true,"protocol":"5","qos":[0,1,2],` +
		`"publishers":10,"subscribers":1,"messages":0,"duration_s":10,"rate":0,"size":100,"inflight":16,` +
		`"topic":"bench/%i&<x>","warmup_s":1.5,"retain":false,"version":"v0.3.0"}` + "\n"
	if line != want {
		t.Errorf("WriteJSONConfig wrote\n%s\nwant\n%s", line, want)
	}
	if fmt.Sprint(m["qos"]) != "[0 1 2]" {
		t.Errorf("qos = %v", m["qos"])
	}

	b.Reset()
	if err := WriteJSONConfig(&b, Config{}); err != nil {
		t.Fatal(err)
	}
	m = checkSchema(t, b.String(), configFields)
	if q := m["qos"].([]any); len(q) != 0 {
		t.Errorf("empty config: qos = %v, want []", q)
	}
}

// sampleResult is a QoS 1 result with every figure set.
func sampleResult() Result {
	return Result{
		QoS: 1, Publishers: 10, Subscribers: 2, Size: 100,
		Sent: 100_000, Acked: 99_998, Received: 199_990, Lost: 10, Duplicates: 3, OutOfOrder: 4,
		Duration:    4211_765_432 * time.Nanosecond,
		PublishRate: 23742.9876, ReceiveRate: 47483.01, PublishMBs: 2.37429876, ReceiveMBs: 4.7483,
		Ack:     Latency{Count: 99_998, P50: 402.1754, P90: 712.19, P99: 1456.127, P999: 2961.4071, Max: 5402.6239},
		E2E:     Latency{Count: 199_990, P50: 430.079, P90: 760.319, P99: 1530.879, P999: 3082.239, Max: 5672.959},
		Connect: Latency{Count: 12, P50: 812.031, P90: 1402.879, P99: 1601.535, P999: 1601.535, Max: 1601.535},
		Errors:  map[string]uint64{"publish rejected: not authorized (0x87)": 3, "connection lost": 2},
		Unsent:  1234,
	}
}

var latencyFields = []field{{"p50", "number"}, {"p90", "number"}, {"p99", "number"}, {"p999", "number"}, {"max", "number"}, {"count", "number"}}

func resultFields(ack, e2e, interrupted bool) []field {
	f := []field{
		{"type", "string"}, {"qos", "number"}, {"publishers", "number"}, {"subscribers", "number"},
		{"size", "number"}, {"sent", "number"}, {"acked", "number"}, {"received", "number"},
		{"lost", "number"}, {"duplicates", "number"}, {"out_of_order", "number"},
		{"duration_s", "number"}, {"publish_rate", "number"}, {"receive_rate", "number"},
		{"publish_mb_s", "number"}, {"receive_mb_s", "number"},
	}
	if ack {
		f = append(f, field{"ack_latency_us", "object"})
	}
	if e2e {
		f = append(f, field{"e2e_latency_us", "object"})
	}
	f = append(f, field{"connect_latency_us", "object"}, field{"errors", "object"}, field{"unsent", "number"})
	if interrupted {
		f = append(f, field{"interrupted", "bool"})
	}
	return f
}

func TestWriteJSONResult(t *testing.T) {
	var b bytes.Buffer
	if err := WriteJSONResult(&b, sampleResult()); err != nil {
		t.Fatal(err)
	}
	line := b.String()
	checkSchema(t, line, resultFields(true, true, false))
	var raw map[string]json.RawMessage
	if err := json.Unmarshal([]byte(line), &raw); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"ack_latency_us", "e2e_latency_us", "connect_latency_us"} {
		checkSchema(t, string(raw[k])+"\n", latencyFields)
	}
	want := `{"type":"result","qos":1,"publishers":10,"subscribers":2,"size":100,` +
		`"sent":100000,"acked":99998,"received":199990,"lost":10,"duplicates":3,"out_of_order":4,` +
		`"duration_s":4.212,"publish_rate":23743,"receive_rate":47483,"publish_mb_s":2.374,"receive_mb_s":4.748,` +
		`"ack_latency_us":{"p50":402.175,"p90":712.19,"p99":1456.127,"p999":2961.407,"max":5402.624,"count":99998},` +
		`"e2e_latency_us":{"p50":430.079,"p90":760.319,"p99":1530.879,"p999":3082.239,"max":5672.959,"count":199990},` +
		`"connect_latency_us":{"p50":812.031,"p90":1402.879,"p99":1601.535,"p999":1601.535,"max":1601.535,"count":12},` +
		`"errors":{"connection lost":2,"publish rejected: not authorized (0x87)":3},"unsent":1234}` + "\n"
	if line != want {
		t.Errorf("WriteJSONResult wrote\n%s\nwant\n%s", line, want)
	}
}

func TestWriteJSONResultAbsent(t *testing.T) {
	// QoS 0 without subscribers, interrupted, no errors map, no samples of
	// anything, a zero duration.
	r := Result{QoS: 0, Publishers: 1, Sent: 5, Acked: 5, Interrupted: true,
		PublishRate: 0, Connect: Latency{}}
	var b bytes.Buffer
	if err := WriteJSONResult(&b, r); err != nil {
		t.Fatal(err)
	}
	m := checkSchema(t, b.String(), resultFields(false, false, true))
	if e := m["errors"].(map[string]any); len(e) != 0 {
		t.Errorf("errors = %v, want {}", e)
	}
	if !strings.Contains(b.String(), `"errors":{},"unsent":0,"interrupted":true}`) {
		t.Errorf("line = %s", b.String())
	}
	// Only ack absent at QoS 0 with subscribers.
	r.Interrupted = false
	r.E2E = Latency{Count: 1, P50: 1, P90: 1, P99: 1, P999: 1, Max: 1}
	r.Errors = map[string]uint64{}
	b.Reset()
	if err := WriteJSONResult(&b, r); err != nil {
		t.Fatal(err)
	}
	checkSchema(t, b.String(), resultFields(false, true, false))
}

func TestWriteJSONNonFinite(t *testing.T) {
	var b bytes.Buffer
	r := Result{PublishRate: nanValue(), ReceiveRate: infValue()}
	if err := WriteJSONResult(&b, r); err != nil {
		t.Fatalf("WriteJSONResult with NaN rates: %v", err)
	}
	if !strings.Contains(b.String(), `"publish_rate":0,"receive_rate":0`) {
		t.Errorf("line = %s", b.String())
	}
}

func nanValue() float64 { zero := 0.0; return zero / zero }
func infValue() float64 { zero := 0.0; return 1 / zero }

func TestWriteCSV(t *testing.T) {
	q0 := Result{QoS: 0, Publishers: 1, Subscribers: 0, Size: 29, Sent: 1000, Acked: 1000,
		Duration: 2 * time.Second, PublishRate: 500, PublishMBs: 0.0145,
		Connect: Latency{Count: 1, P50: 100, P90: 100, P99: 100, P999: 100, Max: 100}}
	var b bytes.Buffer
	if err := WriteCSV(&b, []Result{q0, sampleResult(), {QoS: 2, Interrupted: true}}); err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(&b).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 4 {
		t.Fatalf("%d rows, want 4", len(rows))
	}
	wantHeader := "qos,publishers,subscribers,size,sent,acked,received,lost,duplicates,out_of_order," +
		"duration_s,publish_rate,receive_rate,publish_mb_s,receive_mb_s," +
		"ack_p50_us,ack_p90_us,ack_p99_us,ack_p999_us,ack_max_us," +
		"e2e_p50_us,e2e_p90_us,e2e_p99_us,e2e_p999_us,e2e_max_us," +
		"connect_p50_us,connect_p90_us,connect_p99_us,connect_p999_us,connect_max_us,errors,interrupted,unsent"
	if got := strings.Join(rows[0], ","); got != wantHeader {
		t.Errorf("header\n%s\nwant\n%s", got, wantHeader)
	}
	want := []string{
		"0,1,0,29,1000,1000,0,0,0,0,2,500,0,0.015,0,,,,,,,,,,,100,100,100,100,100,0,false,0",
		"1,10,2,100,100000,99998,199990,10,3,4,4.212,23743,47483,2.374,4.748," +
			"402.175,712.19,1456.127,2961.407,5402.624,430.079,760.319,1530.879,3082.239,5672.959," +
			"812.031,1402.879,1601.535,1601.535,1601.535,5,false,1234",
		"2,0,0,0,0,0,0,0,0,0,0,0,0,0,0,,,,,,,,,,,,,,,,0,true,0",
	}
	for i, w := range want {
		if len(rows[i+1]) != len(rows[0]) {
			t.Errorf("row %d has %d cells, header %d", i+1, len(rows[i+1]), len(rows[0]))
		}
		if got := strings.Join(rows[i+1], ","); got != w {
			t.Errorf("row %d\n%s\nwant\n%s", i+1, got, w)
		}
	}

	b.Reset()
	if err := WriteCSV(&b, nil); err != nil {
		t.Fatal(err)
	}
	if b.String() != wantHeader+"\n" {
		t.Errorf("no results: %q", b.String())
	}
}

func TestWriteTable(t *testing.T) {
	q0 := Result{QoS: 0, Publishers: 10, Subscribers: 2, Size: 100,
		Sent: 1_204_000, Acked: 1_204_000, Received: 2_408_000,
		Duration: 10 * time.Second, PublishRate: 120_400, ReceiveRate: 240_800,
		PublishMBs: 12.04, ReceiveMBs: 24.08,
		E2E:     Latency{Count: 2_408_000, P50: 412.3, P90: 999.7, P99: 4100, P999: 23_400, Max: 1_234_567},
		Connect: Latency{Count: 12, P50: 0.5, P90: 12.34, P99: 99.99, P999: 100, Max: 100},
		Unsent:  5, Behind: true}
	q2 := sampleResult()
	q2.Behind = true // with errors, the unsent were cut off
	q2.QoS = 2
	q2.Interrupted = true
	var b bytes.Buffer
	if err := WriteTable(&b, []Result{q0, q2}); err != nil {
		t.Fatal(err)
	}
	want := `QoS   time       sent      acked   received  lost  dup  ooo  pub msg/s  pub MB/s  recv msg/s  recv MB/s
  0  10.0s  1,204,000  1,204,000  2,408,000     0    0    0    120,400     12.04     240,800      24.08
 2*  4.21s    100,000     99,998    199,990    10    3    4     23,743      2.37      47,483       4.75
* interrupted: the run was stopped before its end, figures are partial

latency
  ack: publish written to PUBACK (QoS 1) / PUBCOMP (QoS 2)
  end-to-end: send time in the payload (with --rate, the scheduled one) to delivery at a subscriber
  connect: dial (TCP, TLS, WebSocket) to CONNACK, for every client

QoS  measurement      p50     p90     p99   p99.9     max    samples
  0  end-to-end     412µs  1.00ms  4.10ms  23.4ms   1.23s  2,408,000
  0  connect        0.5µs  12.3µs   100µs   100µs   100µs         12
  2  ack (PUBCOMP)  402µs   712µs  1.46ms  2.96ms  5.40ms     99,998
  2  end-to-end     430µs   760µs  1.53ms  3.08ms  5.67ms    199,990
  2  connect        812µs  1.40ms  1.60ms  1.60ms  1.60ms         12

unsent (QoS 0): 5 planned messages not sent: the publishers were behind the --rate schedule when --duration ended (the broker or this machine did not keep up)
errors (QoS 2): connection lost 2, publish rejected: not authorized (0x87) 3
unsent (QoS 2): 1,234 planned messages never sent: the run was cut short
`
	if got := b.String(); got != want {
		t.Errorf("WriteTable wrote\n%s\nwant\n%s", got, want)
	}

	b.Reset()
	if err := WriteTable(&b, nil); err != nil || b.Len() != 0 {
		t.Errorf("no results: %q, %v", b.String(), err)
	}
}

func TestHumanMicros(t *testing.T) {
	tests := []struct {
		us   float64
		want string
	}{
		{0, "0s"},
		{0.001, "0.001µs"},
		{0.5, "0.5µs"},
		{1, "1.00µs"},
		{4.1, "4.10µs"},
		{41.23, "41.2µs"},
		{412.3, "412µs"},
		{999.4, "999µs"},
		{999.5, "1.00ms"},
		{1000, "1.00ms"},
		{23_400, "23.4ms"},
		{999_999, "1.00s"},
		{1_500_000, "1.50s"},
		{3_600_000_000, "3600s"},
	}
	for _, tt := range tests {
		if got := humanMicros(tt.us); got != tt.want {
			t.Errorf("humanMicros(%v) = %q, want %q", tt.us, got, tt.want)
		}
	}
}

func TestCommas(t *testing.T) {
	for n, want := range map[uint64]string{
		0: "0", 7: "7", 999: "999", 1000: "1,000", 1204: "1,204", 12345: "12,345",
		123456: "123,456", 1234567: "1,234,567", 1<<64 - 1: "18,446,744,073,709,551,615",
	} {
		if got := commas(n); got != want {
			t.Errorf("commas(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestWriteTableQoS1(t *testing.T) {
	r := sampleResult()
	r.Errors = nil
	var b bytes.Buffer
	if err := WriteTable(&b, []Result{r}); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, s := range []string{"\n  1  ack (PUBACK)  402µs", "ack: publish written to PUBACK (QoS 1) / PUBCOMP (QoS 2)"} {
		if !strings.Contains(out, s) {
			t.Errorf("table lacks %q:\n%s", s, out)
		}
	}
	for _, s := range []string{"PUBCOMP)  ", "interrupted", "*", "errors"} {
		if strings.Contains(out, s) {
			t.Errorf("table has %q:\n%s", s, out)
		}
	}
}
