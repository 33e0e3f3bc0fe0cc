package msgfmt

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"mqtk/internal/mqttc"
)

// ist is the zone of the test messages' times: not UTC, and with an offset
// that is not whole hours.
var ist = time.FixedZone("IST", 5*3600+1800)

// recv is 2026-11-22 10:48:30.448217123 +0530, a Sunday.
var recv = time.Date(2026, 11, 22, 5, 18, 30, 448217123, time.UTC)

func testMessages() (full, bin, empty, jsonMsg *mqttc.Message) {
	full = &mqttc.Message{
		Topic: "x/a", Payload: []byte("hello world"), QoS: 1, Retain: true, PacketID: 7, Received: recv,
		Props: mqttc.Properties{
			ContentType: "text/plain", ResponseTopic: "resp/t", CorrelationData: []byte(`cd"x`),
			MessageExpiry: u32(3600), PayloadFormat: u8(1), TopicAlias: 3, SubscriptionIDs: []int{7},
			User: []mqttc.UserProperty{{Key: "k", Value: "v"}, {Key: "k", Value: "w"}, {Key: "z", Value: "1"}},
		},
	}
	bin = &mqttc.Message{
		Topic: "bin", Payload: []byte("\x00\xff\x80a"), Received: recv,
		Props: mqttc.Properties{CorrelationData: []byte("\xff\x00")},
	}
	empty = &mqttc.Message{Topic: "e", QoS: 2, PacketID: 65535, Received: recv}
	jsonMsg = &mqttc.Message{
		Topic: "j", Payload: []byte(" {\"a\": [1, 2.50, -0, 1e3, 1.5e-7, 01, 1., -.5], \"s\": \"\\u00e9\\/\\ud83d\\ude00\\n\\u0000x\", \"o\": {}, \"e\": []}\n"),
		Received: recv,
	}
	return
}

func render(t *testing.T, format string, m *mqttc.Message, pretty bool) (string, error) {
	t.Helper()
	f, err := ParseFormat(format)
	if err != nil {
		t.Fatalf("ParseFormat(%q): %v", format, err)
	}
	f.Location, f.Pretty = ist, pretty
	b, err := f.AppendErr([]byte("prefix:"), m)
	if !strings.HasPrefix(string(b), "prefix:") {
		t.Fatalf("-F %q overwrote dst: %q", format, b)
	}
	return strings.TrimPrefix(string(b), "prefix:"), err
}

func TestFormat(t *testing.T) {
	full, bin, empty, _ := testMessages()
	for _, tc := range []struct {
		format string
		m      *mqttc.Message
		want   string
	}{
		// Message fields.
		{"%t|%p|%q|%r|%m|%l|%%", full, "x/a|hello world|1|1|7|11|%"},
		{"%t|%p|%q|%r|%m|%l", bin, "bin|\x00\xff\x80a|0|0|0|4"},
		{"%t|%p|%q|%r|%m|%l|", empty, "e||2|0|65535|0|"},
		{"%x|%X", full, "68656c6c6f20776f726c64|68656C6C6F20776F726C64"},
		{"%x|%X", bin, "00ff8061|00FF8061"},
		{"%x|%X|", empty, "||"},
		// v5 properties, present and absent.
		{"%A|%C|%D|%E|%F|%P|%R|%S", full, `3|text/plain|cd"x|3600|1|k:v k:w z:1|resp/t|7`},
		{"%A|%C|%D|%E|%F|%P|%R|%S|", empty, "||||||||"},
		{"%D", bin, "\xff\x00"},
		{"%S", &mqttc.Message{Props: mqttc.Properties{SubscriptionIDs: []int{3, 9}}}, "3,9"},
		{"%6S|%-6S|%06S", &mqttc.Message{Props: mqttc.Properties{SubscriptionIDs: []int{3, 9}}}, "   3,9|3,9   |0003,9"},
		{"%E", &mqttc.Message{Props: mqttc.Properties{MessageExpiry: u32(4294967295)}}, "4294967295"},
		{"%F", &mqttc.Message{Props: mqttc.Properties{PayloadFormat: u8(0)}}, "0"},
		// Integer widths and flags.
		{"%5A|%-5A|%05A|%-05A|%0A|%1A", full, "    3|3    |00003|3    |3|3"},
		{"%6E|%06E|%-6E|%.1E", full, "  3600|003600|3600  |3600"},
		{"%3F|%03F|%-3F", full, "  1|001|1  "},
		{"%4l|%04l|%-4l|%1l", full, "  11|0011|11  |11"},
		{"%4m|%04m|%-4m", full, "   7|0007|7   "},
		{"%3S|%03S|%-3S", full, "  7|007|7  "},
		// Absent properties print width spaces, whatever the flags.
		{"%3A|%03A|%-03A|%3C|%3E|%03E|%3F|%03F|%3R|%-3R|%3S|%03S", empty, "   |   |   |   |   |   |   |   |   |   |   |   "},
		// String widths and precisions (bytes).
		{"%5t|%-5t|%05t|%.1t|%5.1t|%-5.1t|%.t|%.9t", full, "  x/a|x/a  |  x/a|x|    x|x    ||x/a"},
		{"%12C|%-12C|%.4C|%6.4C|%-6.4C", full, "  text/plain|text/plain  |text|  text|text  "},
		{"%8R|%-8R|%.3R", full, "  resp/t|resp/t  |res"},
		{"%.1t", &mqttc.Message{Topic: "éa"}, "\xc3"},
		// %p: the width is the minimum and the maximum.
		{"%5p|%15p|%015p|%-15p|%-015p|%.3p|%11p", full, "hello|    hello world|0000hello world|hello world    |hello world    |hello world|hello world"},
		{"%3p|%-p", bin, "\x00\xff\x80|\x00\xff\x80a"},
		{"%3p|%-3p|%03p", empty, "   |   |000"},
		// %x %X: the width counts hex digits, whole bytes only.
		{"%4x|%5x|%05x|%-5x|%30x", full, "6865| 6865|06865|6865 |        68656c6c6f20776f726c64"},
		{"%1x|%2X|%3x|%9X|%-9x|", bin, " |00| 00| 00FF8061|00ff8061 |"},
		{"%4x|%-4X", empty, "    |    "},
		// Flags and widths that do not apply are accepted and ignored.
		{"%5q|%-5r|%05D|%5P|%5%|%-5.2j", empty, `2|0|||%|{"tst":"2026-11-22T10:48:30.448217Z+0530","topic":"e","qos":2,"retain":0,"payloadlen":0,"mid":65535,"payload":null}`},
		// Escapes.
		{`\\|\0|\a|\e|\n|\r|\t|\v`, empty, "\\|\x00|\a|\x1b|\n|\r|\t|\v"},
		{`a\\tb`, empty, `a\tb`},
		// Literals, including bytes that are not UTF-8 and NUL.
		{"é\xff\x00 %t", empty, "é\xff\x00 e"},
		{"", full, ""},
		// Time, from Received in Location.
		{"%I|%U", full, "2026-11-22T10:48:30+0530|1795324710.448217123"},
		{"%26I|%-26I|%.10I|%12.10I", full, "  2026-11-22T10:48:30+0530|2026-11-22T10:48:30+0530  |2026-11-22|  2026-11-22"},
		{"%U", &mqttc.Message{Received: time.Unix(-2, 500000000)}, "-2.500000000"},
		{"@@|@%|@n|@t|@N|@s", full, "@|%|\n|\t|448217123|1795324710"},
		// glibc's strftime in the C locale (checked against it).
		{"@a|@A|@b|@B|@c|@C|@d|@D|@e|@F|@g|@G|@h|@H|@I|@j|@k|@l|@m|@M|@p|@P|@r|@R|@S|@T|@u|@U|@V|@w|@W|@x|@X|@y|@Y|@z|@Z", full,
			"Sun|Sunday|Nov|November|Sun Nov 22 10:48:30 2026|20|22|11/22/26|22|2026-11-22|26|2026|Nov|10|10|326|10|10|11|48|AM|am|10:48:30 AM|10:48|30|10:48:30|7|47|47|0|46|11/22/26|10:48:30|26|2026|+0530|IST"},
		{"@a|@A|@b|@B|@c|@C|@d|@D|@e|@F|@g|@G|@h|@H|@I|@j|@k|@l|@m|@M|@p|@P|@r|@R|@S|@T|@u|@U|@V|@w|@W|@x|@X|@y|@Y|@z|@Z",
			&mqttc.Message{Received: time.Unix(1767517445, 0)},
			"Sun|Sunday|Jan|January|Sun Jan  4 14:34:05 2026|20|04|01/04/26| 4|2026-01-04|26|2026|Jan|14|02|004|14| 2|01|34|PM|pm|02:34:05 PM|14:34|05|14:34:05|7|01|01|0|00|01/04/26|14:34:05|26|2026|+0530|IST"},
		{"@a|@c|@e|@g|@G|@I|@j|@k|@l|@p|@r|@u|@U|@V|@w|@W|@y|@Y",
			&mqttc.Message{Received: time.Unix(1798743600, 0)},
			"Fri|Fri Jan  1 00:30:00 2027| 1|26|2026|12|001| 0|12|AM|12:30:00 AM|5|00|53|5|00|27|2027"},
		{"@Y|@F|@C|@y", &mqttc.Message{Received: time.Date(5, 3, 1, 0, 0, 0, 0, ist)}, "5|5-03-01|0|05"},
	} {
		got, err := render(t, tc.format, tc.m, false)
		if err != nil {
			t.Errorf("-F %q: %v", tc.format, err)
		}
		if got != tc.want {
			t.Errorf("-F %q on %q:\n got %q\nwant %q", tc.format, tc.m.Topic, got, tc.want)
		}
	}
}

func TestFormatZone(t *testing.T) {
	full, _, _, _ := testMessages()
	for _, tc := range []struct {
		zone string
		want string
	}{
		{"UTC", "2026-11-22T05:18:30+0000 UTC|Sun Nov 22 05:18:30 2026"},
		{"America/St_Johns", "2026-11-22T01:48:30-0330 NST|Sun Nov 22 01:48:30 2026"},
		{"Europe/Paris", "2026-11-22T06:18:30+0100 CET|Sun Nov 22 06:18:30 2026"},
	} {
		loc, err := time.LoadLocation(tc.zone)
		if err != nil {
			t.Skipf("no time zone data: %v", err)
		}
		f, err := ParseFormat("%I @Z|@c")
		if err != nil {
			t.Fatal(err)
		}
		f.Location = loc
		if got := string(f.Append(nil, full)); got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.zone, got, tc.want)
		}
	}
	// No Location: local time, as mosquitto_sub.
	f, err := ParseFormat("%I")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(f.Append(nil, full)), recv.In(time.Local).Format("2006-01-02T15:04:05-0700"); got != want {
		t.Errorf("without Location: got %q, want %q", got, want)
	}
}

func TestFormatJSON(t *testing.T) {
	full, bin, empty, jsonMsg := testMessages()
	const tst = `"tst":"2026-11-22T10:48:30.448217Z+0530"`
	for _, tc := range []struct {
		format string
		m      *mqttc.Message
		pretty bool
		want   string
		err    bool
	}{
		{format: "%j", m: full, want: `{` + tst + `,"topic":"x/a","qos":1,"retain":1,"payloadlen":11,"mid":7,` +
			`"properties":{"subscription-identifier":7,"payload-format-indicator":1,"content-type":"text/plain",` +
			`"response-topic":"resp/t","correlation-data":"cd\"x","topic-alias":3,"user-properties":{"k":["v","w"],"z":"1"},` +
			`"message-expiry-interval":3600},"payload":"hello world"}`},
		// Not UTF-8: arrays of byte values, never lost.
		{format: "%j", m: bin, want: `{` + tst + `,"topic":"bin","qos":0,"retain":0,"payloadlen":4,` +
			`"properties":{"correlation-data":[255,0]},"payload":[0,255,128,97]}`},
		{format: "%j", m: empty, want: `{` + tst + `,"topic":"e","qos":2,"retain":0,"payloadlen":0,"mid":65535,"payload":null}`},
		{format: "%J", m: empty, want: `{` + tst + `,"topic":"e","qos":2,"retain":0,"payloadlen":0,"mid":65535,"payload":null}`},
		// cJSON's escapes: only " \ and control characters; NUL kept.
		{format: "%j", m: &mqttc.Message{Topic: "t\"\\\x01/é", Payload: []byte("a\x00\b\f\n\r\t\x1f\x7fé\"\\/"), Received: recv},
			want: `{` + tst + `,"topic":"t\"\\\u0001/é","qos":0,"retain":0,"payloadlen":14,"payload":"a\u0000\b\f\n\r\t\u001f` + "\x7f" + `é\"\\/"}`},
		{format: "%J", m: jsonMsg, want: `{` + tst + `,"topic":"j","qos":0,"retain":0,"payloadlen":104,` +
			`"payload":{"a":[1,2.5,-0,1000,1.5e-07,1,1,-0.5],"s":"é/😀\n\u0000x","o":{},"e":[]}}`},
		{format: "%J|", m: full, want: "|", err: true},
		{format: "%J", m: &mqttc.Message{Payload: []byte(`"\u00zz"`)}, want: "", err: true},
		// Pretty: cJSON_Print.
		{format: "%j", m: full, pretty: true, want: "{\n\t\"tst\":\t\"2026-11-22T10:48:30.448217Z+0530\",\n\t\"topic\":\t\"x/a\",\n" +
			"\t\"qos\":\t1,\n\t\"retain\":\t1,\n\t\"payloadlen\":\t11,\n\t\"mid\":\t7,\n\t\"properties\":\t{\n" +
			"\t\t\"subscription-identifier\":\t7,\n\t\t\"payload-format-indicator\":\t1,\n\t\t\"content-type\":\t\"text/plain\",\n" +
			"\t\t\"response-topic\":\t\"resp/t\",\n\t\t\"correlation-data\":\t\"cd\\\"x\",\n\t\t\"topic-alias\":\t3,\n" +
			"\t\t\"user-properties\":\t{\n\t\t\t\"k\":\t[\"v\", \"w\"],\n\t\t\t\"z\":\t\"1\"\n\t\t},\n" +
			"\t\t\"message-expiry-interval\":\t3600\n\t},\n\t\"payload\":\t\"hello world\"\n}"},
		{format: "%j", m: bin, pretty: true, want: "{\n\t\"tst\":\t\"2026-11-22T10:48:30.448217Z+0530\",\n\t\"topic\":\t\"bin\",\n" +
			"\t\"qos\":\t0,\n\t\"retain\":\t0,\n\t\"payloadlen\":\t4,\n\t\"properties\":\t{\n\t\t\"correlation-data\":\t[255, 0]\n\t},\n" +
			"\t\"payload\":\t[0, 255, 128, 97]\n}"},
		{format: "%J", m: jsonMsg, pretty: true, want: "{\n\t\"tst\":\t\"2026-11-22T10:48:30.448217Z+0530\",\n\t\"topic\":\t\"j\",\n" +
			"\t\"qos\":\t0,\n\t\"retain\":\t0,\n\t\"payloadlen\":\t104,\n\t\"payload\":\t{\n" +
			"\t\t\"a\":\t[1, 2.5, -0, 1000, 1.5e-07, 1, 1, -0.5],\n\t\t\"s\":\t\"é/😀\\n\\u0000x\",\n\t\t\"o\":\t{\n\t\t},\n\t\t\"e\":\t[]\n\t}\n}"},
		// As mosquitto_sub --pretty printed it.
		{format: "%J", m: &mqttc.Message{Payload: []byte(`[{"a":[{}]}]`), Received: recv}, pretty: true,
			want: "{\n\t\"tst\":\t\"2026-11-22T10:48:30.448217Z+0530\",\n\t\"topic\":\t\"\",\n\t\"qos\":\t0,\n\t\"retain\":\t0,\n\t\"payloadlen\":\t12,\n" +
				"\t\"payload\":\t[{\n\t\t\t\"a\":\t[{\n\t\t\t\t}]\n\t\t}]\n}"},
	} {
		got, err := render(t, tc.format, tc.m, tc.pretty)
		if got != tc.want {
			t.Errorf("-F %q (pretty %v) on %q:\n got %s\nwant %s", tc.format, tc.pretty, tc.m.Topic, got, tc.want)
		}
		var nj *NotJSONError
		if tc.err != errors.As(err, &nj) {
			t.Errorf("-F %q on %q: error %v, want a *NotJSONError: %v", tc.format, tc.m.Topic, err, tc.err)
		}
		// What %j prints for UTF-8 is JSON; repeated keys become arrays.
		if tc.format == "%j" && tc.m == full && !json.Valid([]byte(got)) {
			t.Errorf("-F %%j printed invalid JSON: %s", got)
		}
	}
	var nj *NotJSONError
	if _, err := render(t, "%J", full, false); !errors.As(err, &nj) || nj.Error() != "message payload is not valid JSON on topic x/a" {
		t.Errorf("%%J error = %v", err)
	}
}

// TestFormatJSONPayload checks %J's reading of cJSON's grammar.
func TestFormatJSONPayload(t *testing.T) {
	for _, tc := range []struct {
		payload, want string // want "" means not JSON
	}{
		{"null", "null"}, {"true", "true"}, {"false", "false"},
		{"nul", ""}, {"nullx", ""}, {"truefalse", ""}, {"[null ]", "[null]"},
		{"0", "0"}, {"-0", "-0"}, {"01", "1"}, {"1.", "1"}, {"-.5", "-0.5"}, {"1.e2", "100"}, {"1E2", "100"},
		{"+1", ""}, {".5", ""}, {"-", ""}, {"--1", ""}, {"1e", ""}, {"1e+", ""}, {"1.2.3", ""}, {"0x10", ""}, {"1-2", ""},
		{"1e400", "null"}, {"-1e400", "null"}, {"1e-400", "0"}, {"5e-324", "4.94065645841247e-324"},
		{"123456789012", "123456789012"}, {"0.1", "0.1"}, {"0.30000000000000004", "0.3"}, {"1e21", "1e+21"},
		{"1.7976931348623157e308", "1.79769313486232e+308"}, {"1111111111111111111111", "1.1111111111111111e+21"},
		{`""`, `""`}, {`"\/\b\f\n\r\t\"\\"`, `"/\b\f\n\r\t\"\\"`}, {`"\u0041\u00e9\u20AC\ud83d\ude00"`, `"Aé€😀"`},
		{`"\u001f\u0000"`, `"\u001f\u0000"`}, {"\"raw\ttab\x01\"", `"raw\ttab\u0001"`}, {"\"\xff\"", "\"\xff\""},
		{`"\ud800"`, ""}, {`"\udc00"`, ""}, {`"\ud83d\u0041"`, ""}, {`"\u12"`, ""}, {`"\u00zz"`, ""}, {`"\x"`, ""},
		{`"abc`, ""}, {`"\"`, ""}, {`"a\`, ""},
		{"[]", "[]"}, {"{}", "{}"}, {"[1,]", ""}, {"[,1]", ""}, {`{"a":1,}`, ""}, {"[1 2]", ""}, {`{"a" 1}`, ""},
		{`{1:2}`, ""}, {`{"a"}`, ""}, {`{"a":}`, ""}, {"[", ""}, {"{", ""}, {"]", ""},
		{`{"a":1,"a":2}`, `{"a":1,"a":2}`},
		{" \x01\t\r\n[ 1 ,\x02 2 ]\x7f", ""}, {" \x01\t\r\n[ 1 ,\x02 2 ] \x20", "[1,2]"},
		{"\xef\xbb\xbf 1", "1"}, {" \xef\xbb\xbf1", ""}, {"1\x00", ""}, {"\x00", ""}, {" ", ""},
		{strings.Repeat("[", 1000) + strings.Repeat("]", 1000), strings.Repeat("[", 1000) + strings.Repeat("]", 1000)},
		{strings.Repeat("[", 1001) + strings.Repeat("]", 1001), ""},
		{strings.Repeat(`{"a":`, 1000) + "1" + strings.Repeat("}", 1000), strings.Repeat(`{"a":`, 1000) + "1" + strings.Repeat("}", 1000)},
		{strings.Repeat(`{"a":`, 1001) + "1" + strings.Repeat("}", 1001), ""},
	} {
		m := &mqttc.Message{Topic: "t", Payload: []byte(tc.payload), Received: recv}
		got, err := render(t, "%J", m, false)
		if tc.want == "" {
			if err == nil || got != "" {
				t.Errorf("%%J of %q = %q, %v; want nothing and an error", tc.payload, got, err)
			}
			continue
		}
		prefix := `{"tst":"2026-11-22T10:48:30.448217Z+0530","topic":"t","qos":0,"retain":0,"payloadlen":` +
			itoa(len(tc.payload)) + `,"payload":`
		if err != nil || got != prefix+tc.want+"}" {
			t.Errorf("%%J of %q = %q, %v; want payload %q", tc.payload, got, err, tc.want)
		}
	}
}

func itoa(n int) string { return string(appendZeroPad(nil, uint64(n), 1)) }

func TestParseFormatErrors(t *testing.T) {
	for _, tc := range []struct {
		format, seq string
		offset      int
		reason      string
	}{
		{"%", "%", 0, "incomplete specifier"},
		{"ab%-05", "%-05", 2, "incomplete specifier"},
		{"%5.", "%5.", 0, "incomplete specifier"},
		{"%k", "%k", 0, "unknown specifier"},
		{"x %-08.3Z", "%-08.3Z", 2, "unknown specifier"},
		{"%é", "%é", 0, "unknown specifier"},
		{"%\xff", "%\xff", 0, "unknown specifier"},
		{"x%5.3.2t", "%5.3.", 1, "malformed flags, width or precision in"},
		{"%0-5t", "%0-", 0, "malformed flags, width or precision in"},
		{"%--5t", "%--", 0, "malformed flags, width or precision in"},
		{"%65536t", "%65536", 0, "width above 65535 in"},
		{"%.65536t", "%.65536", 0, "precision above 65535 in"},
		{"@", "@", 0, "incomplete time conversion"},
		{"ok @f", "@f", 3, "unknown time conversion"},
		{"@5", "@5", 0, "unknown time conversion"},
		{"@E", "@E", 0, "unknown time conversion"},
		{"@ü", "@ü", 0, "unknown time conversion"},
		{`\`, `\`, 0, "incomplete escape"},
		{`%t\q`, `\q`, 2, "unknown escape"},
		{`\x41`, `\x`, 0, "unknown escape"},
	} {
		f, err := ParseFormat(tc.format)
		var fe *FormatError
		if !errors.As(err, &fe) {
			t.Errorf("ParseFormat(%q) = %v, %v; want a *FormatError", tc.format, f, err)
			continue
		}
		if fe.Seq != tc.seq || fe.Offset != tc.offset || fe.Reason != tc.reason || fe.Format != tc.format {
			t.Errorf("ParseFormat(%q): %+v, want Seq %q Offset %d Reason %q", tc.format, *fe, tc.seq, tc.offset, tc.reason)
		}
		if !strings.Contains(err.Error(), strings.ToValidUTF8(tc.seq, "\ufffd")[:1]) {
			t.Errorf("error %q does not name %q", err, tc.seq)
		}
	}
	_, err := ParseFormat("a %k")
	if got, want := err.Error(), `format "a %k": unknown specifier "%k" at offset 2`; got != want {
		t.Errorf("error = %q, want %q", got, want)
	}
	// Everything mosquitto_sub accepts and knows is accepted.
	ok := "%% %A %C %D %E %F %I %j %J %l %m %P %p %q %R %r %S %t %U %x %X %-05.3t %.t %-t %0t %-0t %00005t " +
		`@@ @N @% @n @t \\ \0 \a \e \n \r \t \v`
	for _, v := range "aAbBcCdDeFgGhHIjklmMpPrRsSTuUVwWxXyYzZ" {
		ok += " @" + string(v)
	}
	if _, err := ParseFormat(ok); err != nil {
		t.Error(err)
	}
	if f, _ := ParseFormat(ok); f.String() != ok {
		t.Errorf("String() = %q", f.String())
	}
}

// TestAppendAllocs: rendering into a buffer with room does not allocate.
func TestAppendAllocs(t *testing.T) {
	full, _, _, jsonMsg := testMessages()
	for _, tc := range []struct {
		format string
		m      *mqttc.Message
	}{
		{"%t %p", full},
		{"%I %U @Y-@m-@dT@H:@M:@S.@N@z @c @Z %-20t %05l %x %X %P %C %R %D %E %F %S %A\\n", full},
		{"%j", full},
		{"%J", jsonMsg},
	} {
		f, err := ParseFormat(tc.format)
		if err != nil {
			t.Fatal(err)
		}
		f.Location, f.Pretty = ist, true
		buf := make([]byte, 0, 4096)
		if n := testing.AllocsPerRun(100, func() { buf = f.Append(buf[:0], tc.m) }); n != 0 {
			t.Errorf("-F %q: %v allocations per message, want 0", tc.format, n)
		}
	}
}

func FuzzParseFormat(f *testing.F) {
	for _, s := range []string{
		"", "%t %p", "%j", "%J", "%-08.3t|%010x|%-5X|%05E|%3S", "%I %U @Y-@m-@d @H:@M:@S.@N @z @Z @c @s",
		`\\\0\a\e\n\r\t\v`, "%", "%-", "%5.", "@", `\`, "%k", "@f", `\q`, "%99999t", "%é", "@@%%",
	} {
		f.Add(s)
	}
	full, bin, empty, jsonMsg := testMessages()
	msgs := []*mqttc.Message{full, bin, empty, jsonMsg, {}}
	f.Fuzz(func(t *testing.T, s string) {
		fm, err := ParseFormat(s)
		if err != nil {
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("ParseFormat(%q): %T %v", s, err, err)
			}
			if fe.Offset < 0 || fe.Offset >= len(s) || !strings.HasPrefix(s[fe.Offset:], fe.Seq) || fe.Seq == "" {
				t.Fatalf("ParseFormat(%q): bad error %+v", s, *fe)
			}
			return
		}
		if fm.String() != s {
			t.Fatalf("String() = %q, want %q", fm.String(), s)
		}
		for _, pretty := range []bool{false, true} {
			fm.Location, fm.Pretty = ist, pretty
			for _, m := range msgs {
				out := fm.Append(nil, m)
				// A format without sequences prints itself.
				if !strings.ContainsAny(s, `%@\`) && string(out) != s {
					t.Fatalf("-F %q printed %q", s, out)
				}
				if !utf8.ValidString(s) {
					continue
				}
				// Widths never produce more than the format asks for.
				if len(out) > len(s)*65535+1<<20 {
					t.Fatalf("-F %q printed %d bytes", s, len(out))
				}
			}
		}
	})
}

// FuzzFormatJSONPayload: %J never panics, and whatever it accepts from a
// UTF-8 payload it prints as valid JSON.
func FuzzFormatJSONPayload(f *testing.F) {
	for _, s := range []string{`{"a":[1,2.5,-0,1e3]}`, `"\ud83d\ude00"`, "01", "-.5", " \x01[]", `{"a":{"b":[{}]}}`, "1e999", `"\u0000"`} {
		f.Add([]byte(s), false)
	}
	fj, err := ParseFormat("%J")
	if err != nil {
		f.Fatal(err)
	}
	fj.Location = ist
	f.Fuzz(func(t *testing.T, payload []byte, pretty bool) {
		fm := *fj
		fm.Pretty = pretty
		m := &mqttc.Message{Topic: "t", Payload: payload, Received: recv}
		out, err := fm.AppendErr(nil, m)
		if err != nil {
			if len(out) != 0 {
				t.Fatalf("%%J of %q failed but printed %q", payload, out)
			}
			return
		}
		if utf8.Valid(payload) && !json.Valid(out) {
			t.Fatalf("%%J of %q printed invalid JSON %q", payload, out)
		}
	})
}

func BenchmarkFormat(b *testing.B) {
	full, _, _, jsonMsg := testMessages()
	for _, bc := range []struct {
		name, format string
		m            *mqttc.Message
	}{
		{"topic+payload", "%t %p", full},
		{"time", "@Y-@m-@dT@H:@M:@S.@N@z %t %p", full},
		{"widths+hex", "%-20t %05l %q %r %x", full},
		{"properties", "%C %R %D %E %F %S %A %P", full},
		{"j", "%j", full},
		{"J", "%J", jsonMsg},
	} {
		f, err := ParseFormat(bc.format)
		if err != nil {
			b.Fatal(err)
		}
		f.Location = ist
		b.Run(bc.name, func(b *testing.B) {
			buf := make([]byte, 0, 4096)
			b.ReportAllocs()
			for b.Loop() {
				buf = f.Append(buf[:0], bc.m)
			}
		})
	}
}

func BenchmarkParseFormat(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseFormat("@Y-@m-@dT@H:@M:@S.@N@z %-20t %05l %q %r %x\\n"); err != nil {
			b.Fatal(err)
		}
	}
}
