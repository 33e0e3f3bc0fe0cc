package msgfmt

import (
	"bytes"
	"testing"

	"mqtk/internal/mqttc"
)

func TestPrettyPlain(t *testing.T) {
	full, bin, empty, jsonMsg := testMessages()
	for _, m := range []*mqttc.Message{full, bin, empty, jsonMsg} {
		for _, verbose := range []bool{false, true} {
			for _, noEOL := range []bool{false, true} {
				var plain bytes.Buffer
				if err := Plain(&plain, m, verbose, noEOL); err != nil {
					t.Fatal(err)
				}
				if got := Pretty(nil, m, verbose, noEOL, false); !bytes.Equal(got, plain.Bytes()) {
					t.Errorf("Pretty(%q, verbose %v, noEOL %v, no colour) = %q, Plain wrote %q", m.Topic, verbose, noEOL, got, plain.Bytes())
				}
				// Without verbose, colour changes nothing.
				if !verbose {
					if got := Pretty(nil, m, verbose, noEOL, true); !bytes.Equal(got, plain.Bytes()) {
						t.Errorf("Pretty(%q, noEOL %v, colour) = %q, Plain wrote %q", m.Topic, noEOL, got, plain.Bytes())
					}
				}
			}
		}
	}
}

func TestPrettyColor(t *testing.T) {
	const (
		cyan, yellow, magenta, faint = "\x1b[36m", "\x1b[33m", "\x1b[35m", "\x1b[2m"
		reset, unfaint               = "\x1b[0m", "\x1b[22m"
	)
	full, bin, empty, _ := testMessages()
	for _, tc := range []struct {
		m     *mqttc.Message
		noEOL bool
		want  string
	}{
		{full, false, cyan + "x/a" + reset + " " + yellow + "q1" + reset + " " + magenta + "retained" + reset + " hello world  " +
			faint + `content-type=text/plain response-topic=resp/t correlation-data="cd\"x" message-expiry=3600 ` +
			`payload-format=1 topic-alias=3 subscription-id=7 k=v k=w z=1` + unfaint + "\n"},
		{bin, true, cyan + "bin" + reset + " \x00\xff\x80a  " + faint + "correlation-data=0xff00" + unfaint},
		{empty, false, cyan + "e" + reset + " " + yellow + "q2" + reset + " " + faint + "(empty)" + unfaint + "\n"},
		{&mqttc.Message{Topic: "t", Payload: []byte("p"), Props: mqttc.Properties{
			SubscriptionIDs: []int{1, 2},
			User:            []mqttc.UserProperty{{Key: "a b", Value: ""}, {Key: "é", Value: "x=y"}, {Key: "tab", Value: "\t"}},
		}}, true, cyan + "t" + reset + " p  " + faint + `subscription-id=1,2 "a b"="" é="x=y" tab="\t"` + unfaint},
	} {
		if got := string(Pretty(nil, tc.m, true, tc.noEOL, true)); got != tc.want {
			t.Errorf("Pretty(%q):\n got %q\nwant %q", tc.m.Topic, got, tc.want)
		}
	}
}

func TestPrettyAllocs(t *testing.T) {
	full, _, _, _ := testMessages()
	buf := make([]byte, 0, 4096)
	for _, colorize := range []bool{false, true} {
		if n := testing.AllocsPerRun(100, func() { buf = Pretty(buf[:0], full, true, false, colorize) }); n != 0 {
			t.Errorf("colour %v: %v allocations per message, want 0", colorize, n)
		}
	}
}

func BenchmarkPretty(b *testing.B) {
	full, _, _, _ := testMessages()
	for _, colorize := range []bool{false, true} {
		name := "plain"
		if colorize {
			name = "colour"
		}
		b.Run(name, func(b *testing.B) {
			buf := make([]byte, 0, 4096)
			b.ReportAllocs()
			for b.Loop() {
				buf = Pretty(buf[:0], full, true, false, colorize)
			}
		})
	}
}
