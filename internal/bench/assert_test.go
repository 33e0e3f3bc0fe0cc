package bench

import (
	"strings"
	"testing"
	"time"
)

func TestParseAssertion(t *testing.T) {
	tests := []struct {
		in     string
		qos    int
		metric string
		op     string
		value  float64
	}{
		{"lost==0", -1, "lost", "==", 0},
		{"qos1.e2e.p99<20ms", 1, "e2e.p99", "<", 20_000},
		{"qos0.receive_rate>50000", 0, "receive_rate", ">", 50_000},
		{" qos0 . receive_rate > 50_000 ", 0, "receive_rate", ">", 50_000},
		{"receive_rate>=50k", -1, "receive_rate", ">=", 50_000},
		{"publish_rate>1.5M", -1, "publish_rate", ">", 1_500_000},
		{"sent>=1_000_000", -1, "sent", ">=", 1e6},
		{"sent!=2k", -1, "sent", "!=", 2000},
		{"QoS2.Ack.Max <= 1.5ms", 2, "ack.max", "<=", 1500},
		{"ack.p999<250us", -1, "ack.p999", "<", 250},
		{"ack.p99.9<250µs", -1, "ack.p999", "<", 250},
		{"ack.p99.9<250μs", -1, "ack.p999", "<", 250}, // Greek mu
		{"connect.p50<500ns", -1, "connect.p50", "<", 0.5},
		{"e2e.p90<2s", -1, "e2e.p90", "<", 2e6},
		{"e2e.p50>0.5ms", -1, "e2e.p50", ">", 500},
		{"duration_s<=10", -1, "duration_s", "<=", 10},
		{"duration_s<=1500ms", -1, "duration_s", "<=", 1.5},
		{"publish_mb_s>2.5", -1, "publish_mb_s", ">", 2.5},
		{"receive_mb_s>2.5", -1, "receive_mb_s", ">", 2.5},
		{"errors==0", -1, "errors", "==", 0},
		{"duplicates<=3", -1, "duplicates", "<=", 3},
		{"out_of_order==0", -1, "out_of_order", "==", 0},
		{"acked>=100", -1, "acked", ">=", 100},
		{"received>=100", -1, "received", ">=", 100},
	}
	for _, tt := range tests {
		a, err := ParseAssertion(tt.in)
		if err != nil {
			t.Errorf("ParseAssertion(%q): %v", tt.in, err)
			continue
		}
		if a.Text != tt.in || a.qos != tt.qos || a.metric != tt.metric || a.op != tt.op || a.value != tt.value {
			t.Errorf("ParseAssertion(%q) = %+v; want qos %d, %s %s %v", tt.in, a, tt.qos, tt.metric, tt.op, tt.value)
		}
	}
}

func TestParseAssertionErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{"qos1.e2e.p99<<20", `--assert "qos1.e2e.p99<<20": bad value "<20"`},
		{"", `--assert "": empty; want [qosN.]METRIC OP VALUE, e.g. lost==0`},
		{"lost", `--assert "lost": no comparison; want [qosN.]METRIC OP VALUE with OP one of < <= > >= == !=`},
		{"lost=0", `--assert "lost=0": bad operator "="; want one of < <= > >= == !=`},
		{"lost!0", `--assert "lost!0": bad operator "!"; want one of < <= > >= == !=`},
		{"lost=>0", `--assert "lost=>0": bad operator "="; want one of < <= > >= == !=`},
		{"<5", `--assert "<5": no metric before <`},
		{"lost<", `--assert "lost<": no value after <`},
		{"lost<=", `--assert "lost<=": no value after <=`},
		{"qos3.lost==0", `--assert "qos3.lost==0": bad QoS "qos3"; want qos0, qos1 or qos2`},
		{"qos.lost==0", `--assert "qos.lost==0": bad QoS "qos"; want qos0, qos1 or qos2`},
		{"qos1==0", `--assert "qos1==0": no metric after qos1.`},
		{"qos1.==0", `--assert "qos1.==0": no metric after qos1.`},
		{"loss==0", `--assert "loss==0": unknown metric "loss"; want ` + validMetrics},
		{"e2e<5ms", `--assert "e2e<5ms": unknown metric "e2e"; want ` + validMetrics},
		{"e2e.p95<5ms", `--assert "e2e.p95<5ms": unknown metric "e2e.p95"; want ` + validMetrics},
		{"qos1.e2e.p99<20", `--assert "qos1.e2e.p99<20": e2e.p99 is a latency: add a unit, e.g. 20ms`},
		{"e2e.p99<20min", `--assert "e2e.p99<20min": bad value "20min": unit "min"; want ns, us, µs, ms or s`},
		{"e2e.p99<ms", `--assert "e2e.p99<ms": bad value "ms"`},
		{"lost<five", `--assert "lost<five": bad value "five"`},
		{"lost<-1", `--assert "lost<-1": bad value "-1"`},
		{"lost<1__0", `--assert "lost<1__0": bad value "1__0": suffix "__0"; want k (thousand) or M (million)`},
		{"lost<_10", `--assert "lost<_10": bad value "_10"`},
		{"lost<0x10", `--assert "lost<0x10": bad value "0x10": suffix "x10"; want k (thousand) or M (million)`},
		{"lost<1e3", `--assert "lost<1e3": bad value "1e3": suffix "e3"; want k (thousand) or M (million)`},
		{"sent>5m", `--assert "sent>5m": bad value "5m": suffix "m"; want k (thousand) or M (million)`},
		{"duration_s<5k", `--assert "duration_s<5k": bad value "5k": unit "k"; want seconds, or ns, us, µs, ms or s`},
		{"lost<inf", `--assert "lost<inf": bad value "inf"`},
	}
	for _, tt := range tests {
		_, err := ParseAssertion(tt.in)
		if err == nil {
			t.Errorf("ParseAssertion(%q) succeeded, want error %s", tt.in, tt.want)
			continue
		}
		if err.Error() != tt.want {
			t.Errorf("ParseAssertion(%q) error\n%s\nwant\n%s", tt.in, err, tt.want)
		}
		if strings.Contains(err.Error(), "\n") {
			t.Errorf("ParseAssertion(%q) error spans lines: %q", tt.in, err)
		}
	}
}

// assertResults is a QoS 0 run without subscribers' latency and a QoS 1 run.
func assertResults() []Result {
	q0 := Result{QoS: 0, Sent: 1000, Acked: 1000, Received: 1000, Duration: 2 * time.Second,
		PublishRate: 500, ReceiveRate: 60_000, PublishMBs: 0.05, ReceiveMBs: 6,
		E2E:     Latency{Count: 1000, P50: 1000, P90: 5000, P99: 12_000, P999: 15_000, Max: 16_000},
		Connect: Latency{Count: 2, P50: 300, P90: 300, P99: 300, P999: 300, Max: 300}}
	q1 := Result{QoS: 1, Sent: 1000, Acked: 1000, Received: 998, Lost: 2, Duplicates: 1,
		Duration: 1500 * time.Millisecond, PublishRate: 666.67, ReceiveRate: 40_000, PublishMBs: 0.0667, ReceiveMBs: 4,
		Ack:     Latency{Count: 1000, P50: 800, P90: 900, P99: 1000, P999: 1200, Max: 1500},
		E2E:     Latency{Count: 998, P50: 2000, P90: 8000, P99: 23_400, P999: 30_000, Max: 31_000},
		Connect: Latency{Count: 2, P50: 300, P90: 300, P99: 300, P999: 300, Max: 300},
		Errors:  map[string]uint64{"connection lost": 2, "publish timed out": 1}}
	return []Result{q0, q1}
}

func TestAssertionCheck(t *testing.T) {
	tests := []struct {
		in     string
		ok     bool
		detail string
	}{
		{"qos1.e2e.p99<20ms", false, "qos1.e2e.p99 = 23.4ms, wanted < 20ms"},
		{"qos1.e2e.p99 < 25ms", true, "qos1.e2e.p99 = 23.4ms"},
		{"qos0.e2e.p99<20ms", true, "qos0.e2e.p99 = 12.0ms"},
		{"e2e.p99<20ms", false, "qos1.e2e.p99 = 23.4ms, wanted < 20ms"},
		{"e2e.p99<=23.4ms", true, "qos0.e2e.p99 = 12.0ms; qos1.e2e.p99 = 23.4ms"},
		{"e2e.p99<23.4ms", false, "qos1.e2e.p99 = 23.4ms, wanted < 23.4ms"},
		{"e2e.p50>=1.5ms", false, "qos0.e2e.p50 = 1.00ms, wanted >= 1.5ms"},
		{"e2e.max<10ms", false, "qos0.e2e.max = 16.0ms, wanted < 10ms; qos1.e2e.max = 31.0ms, wanted < 10ms"},
		{"qos0.receive_rate>50000", true, "qos0.receive_rate = 60000"},
		{"receive_rate>50k", false, "qos1.receive_rate = 40000, wanted > 50k"},
		{"lost==0", false, "qos1.lost = 2, wanted == 0"},
		{"qos0.lost==0", true, "qos0.lost = 0"},
		{"lost!=0", false, "qos0.lost = 0, wanted != 0"},
		{"errors>2", false, "qos0.errors = 0, wanted > 2"},
		{"qos1.errors==3", true, "qos1.errors = 3"},
		{"duplicates<=1", true, "qos0.duplicates = 0; qos1.duplicates = 1"},
		{"out_of_order==0", true, "qos0.out_of_order = 0; qos1.out_of_order = 0"},
		{"sent==1k", true, "qos0.sent = 1000; qos1.sent = 1000"},
		{"received>=999", false, "qos1.received = 998, wanted >= 999"},
		{"qos1.acked>=1000", true, "qos1.acked = 1000"},
		{"duration_s<2", false, "qos0.duration_s = 2, wanted < 2"},
		{"qos1.duration_s<=1500ms", true, "qos1.duration_s = 1.5"},
		{"publish_rate>600", false, "qos0.publish_rate = 500, wanted > 600"},
		{"qos1.publish_rate>600", true, "qos1.publish_rate = 666.7"},
		{"qos1.publish_mb_s>0.06", true, "qos1.publish_mb_s = 0.067"},
		{"receive_mb_s>5", false, "qos1.receive_mb_s = 4, wanted > 5"},
		{"qos1.ack.p99<=1ms", true, "qos1.ack.p99 = 1.00ms"},
		{"qos1.ack.p99.9<1ms", false, "qos1.ack.p999 = 1.20ms, wanted < 1ms"},
		{"qos1.ack.p90<900us", false, "qos1.ack.p90 = 900µs, wanted < 900us"},
		{"connect.max<1ms", true, "qos0.connect.max = 300µs; qos1.connect.max = 300µs"},
	}
	rs := assertResults()
	for _, tt := range tests {
		a, err := ParseAssertion(tt.in)
		if err != nil {
			t.Errorf("ParseAssertion(%q): %v", tt.in, err)
			continue
		}
		ok, detail, err := a.Check(rs)
		if err != nil || ok != tt.ok || detail != tt.detail {
			t.Errorf("%q.Check() = %v, %q, %v\nwant %v, %q", tt.in, ok, detail, err, tt.ok, tt.detail)
		}
	}
}

// An assertion judges the figure as the report gives it, and shows the
// exact one where the 3 digits printed would give the other verdict.
func TestAssertionCheckAsReported(t *testing.T) {
	rs := []Result{{QoS: 2, Sent: 1, Duration: 2000400 * time.Microsecond,
		E2E: Latency{Count: 1, P50: 20004.8634, P90: 20004.8634, P99: 20004.8634, P999: 20004.8634, Max: 20004.8634}}}
	for _, tt := range []struct {
		in     string
		ok     bool
		detail string
	}{
		{"duration_s<=2", true, "qos2.duration_s = 2"}, // 2.0004s, reported as 2
		{"duration_s>2", false, "qos2.duration_s = 2, wanted > 2"},
		{"e2e.p99<=20ms", false, "qos2.e2e.p99 = 20.0ms (20004.863µs), wanted <= 20ms"},
		{"e2e.p99<20ms", false, "qos2.e2e.p99 = 20.0ms, wanted < 20ms"},
		{"e2e.p99<=20.1ms", true, "qos2.e2e.p99 = 20.0ms"},
	} {
		a, err := ParseAssertion(tt.in)
		if err != nil {
			t.Fatal(err)
		}
		ok, detail, err := a.Check(rs)
		if err != nil || ok != tt.ok || detail != tt.detail {
			t.Errorf("%q.Check() = %v, %q, %v\nwant %v, %q", tt.in, ok, detail, err, tt.ok, tt.detail)
		}
	}
}

func TestAssertionCheckErrors(t *testing.T) {
	rs := assertResults()
	noSubs := []Result{{QoS: 1, Ack: Latency{Count: 1, P50: 1}}}
	tests := []struct {
		in   string
		rs   []Result
		want string
	}{
		{"qos2.lost==0", rs, `--assert "qos2.lost==0": qos2 was not run`},
		{"lost==0", nil, `--assert "lost==0": no results`},
		{"ack.p99<5ms", rs, `--assert "ack.p99<5ms": qos0 has no ack latency: QoS 0 is not acknowledged; name a level that has one, e.g. qos1.ack.p99`},
		{"qos0.ack.p99<5ms", rs, `--assert "qos0.ack.p99<5ms": qos0 has no ack latency: QoS 0 is not acknowledged`},
		{"e2e.p99<5ms", noSubs, `--assert "e2e.p99<5ms": qos1 has no e2e latency: there were no subscribers or no deliveries`},
		{"qos1.connect.max<5ms", noSubs, `--assert "qos1.connect.max<5ms": qos1 has no connect latency: no client connected`},
	}
	for _, tt := range tests {
		a, err := ParseAssertion(tt.in)
		if err != nil {
			t.Errorf("ParseAssertion(%q): %v", tt.in, err)
			continue
		}
		ok, _, err := a.Check(tt.rs)
		if err == nil || ok || err.Error() != tt.want {
			t.Errorf("%q.Check() = %v, %v\nwant error %s", tt.in, ok, err, tt.want)
		}
	}
	if _, _, err := (Assertion{}).Check(rs); err == nil {
		t.Error("zero Assertion checked without error")
	}
}
