package msgfmt

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"mqtk/internal/mqttc"
)

// This file compares Format with mosquitto_sub itself, when mosquitto,
// mosquitto_pub and mosquitto_sub are installed: each case publishes a
// message with mosquitto_pub, prints it with mosquitto_sub -F, builds the
// same message as mqtk would receive it, and checks that Append prints the
// same bytes.

// lookMosquitto finds mosquitto's programs; Debian puts the broker in /usr/sbin.
func lookMosquitto(t *testing.T, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if p := filepath.Join("/usr/sbin", name); fileExists(p) {
		return p
	}
	t.Skipf("%s is not installed", name)
	return ""
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// mosquitto is a broker started for one test.
type mosquitto struct {
	port     int
	pub, sub string

	mu      sync.Mutex
	log     []string
	changed chan struct{} // closed and replaced whenever a log line arrives
}

// startMosquitto starts mosquitto on a free 127.0.0.1 port with a config in
// t.TempDir(), logging everything to its stderr, which the test reads, and
// returns once it accepts connections.
func startMosquitto(t *testing.T) *mosquitto {
	t.Helper()
	bin := lookMosquitto(t, "mosquitto")
	mq := &mosquitto{
		pub:     lookMosquitto(t, "mosquitto_pub"),
		sub:     lookMosquitto(t, "mosquitto_sub"),
		changed: make(chan struct{}),
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mq.port = l.Addr().(*net.TCPAddr).Port
	l.Close()
	conf := filepath.Join(t.TempDir(), "mosquitto.conf")
	// "user root" only matters when the test runs as root: mosquitto would
	// otherwise switch to the user "mosquitto".
	c := fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\nuser root\npersistence false\n"+
		"log_dest stderr\nlog_type all\nlog_timestamp false\n", mq.port)
	if err := os.WriteFile(conf, []byte(c), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-c", conf)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	logDone := make(chan struct{})
	go func() {
		defer close(logDone)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			mq.mu.Lock()
			mq.log = append(mq.log, sc.Text())
			close(mq.changed)
			mq.changed = make(chan struct{})
			mq.mu.Unlock()
		}
	}()
	exited := make(chan struct{})
	var waitErr error
	go func() { <-logDone; waitErr = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	// Ready when it accepts a connection.
	deadline := time.Now().Add(10 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(mq.port)), time.Second)
		if err == nil {
			conn.Close()
			return mq
		}
		select {
		case <-exited:
			t.Fatalf("mosquitto exited: %v\n%s", waitErr, strings.Join(mq.log, "\n"))
		case <-time.After(20 * time.Millisecond): // poll interval while waiting for the port
		}
		if time.Now().After(deadline) {
			t.Fatalf("mosquitto did not listen on %d", mq.port)
		}
	}
}

// waitLog waits until the broker has logged a line containing s.
func (mq *mosquitto) waitLog(t *testing.T, s string) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		mq.mu.Lock()
		for _, l := range mq.log {
			if strings.Contains(l, s) {
				mq.mu.Unlock()
				return
			}
		}
		changed := mq.changed
		mq.mu.Unlock()
		select {
		case <-changed:
		case <-timeout:
			t.Fatalf("mosquitto did not log %q", s)
		}
	}
}

func (mq *mosquitto) run(t *testing.T, env []string, prog string, args ...string) (stdout, stderr []byte, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, prog, append([]string{"-h", "127.0.0.1", "-p", strconv.Itoa(mq.port)}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.Bytes(), e.Bytes(), err
}

// publish publishes payload with mosquitto_pub -V 5 and args (e.g. -r, -q,
// -D PUBLISH ...), from a file so that every byte goes through.
func (mq *mosquitto) publish(t *testing.T, topic string, payload []byte, args ...string) {
	t.Helper()
	a := append([]string{"-V", "5", "-t", topic}, args...)
	if len(payload) == 0 {
		a = append(a, "-n")
	} else {
		f := filepath.Join(t.TempDir(), "payload")
		if err := os.WriteFile(f, payload, 0o644); err != nil {
			t.Fatal(err)
		}
		a = append(a, "-f", f)
	}
	if out, errOut, err := mq.run(t, nil, mq.pub, a...); err != nil {
		t.Fatalf("mosquitto_pub %q: %v\n%s%s", a, err, out, errOut)
	}
}

// compatScenario is a message as mosquitto_pub publishes it, and as mqtk
// receives it.
type compatScenario struct {
	name    string
	payload []byte
	retain  bool     // published retained (else published once mosquitto_sub has subscribed)
	pubArgs []string // for mosquitto_pub, after -t and the payload
	subArgs []string // for mosquitto_sub, e.g. -q 1, -D subscribe subscription-identifier 7
	msg     mqttc.Message
}

func u32(v uint32) *uint32 { return &v }
func u8(v byte) *byte      { return &v }

var compatScenarios = []compatScenario{{
	name: "v5 properties", payload: []byte("hello world"), retain: true,
	pubArgs: []string{"-q", "1",
		// mqtk's (paho.golang's) order, which mosquitto keeps; it puts the
		// subscription identifier first and the expiry interval last.
		"-D", "PUBLISH", "payload-format-indicator", "1",
		"-D", "PUBLISH", "message-expiry-interval", "3600",
		"-D", "PUBLISH", "content-type", "text/plain; charset=utf-8",
		"-D", "PUBLISH", "response-topic", "resp/t",
		"-D", "PUBLISH", "correlation-data", `cd"x\y`,
		"-D", "PUBLISH", "user-property", "k", "v",
		"-D", "PUBLISH", "user-property", "é key", "ü/\"v\"",
		"-D", "PUBLISH", "user-property", "", "",
	},
	subArgs: []string{"-q", "1", "-D", "subscribe", "subscription-identifier", "7"},
	msg: mqttc.Message{QoS: 1, PacketID: 1, Props: mqttc.Properties{
		PayloadFormat: u8(1), ContentType: "text/plain; charset=utf-8", ResponseTopic: "resp/t",
		CorrelationData: []byte(`cd"x\y`), SubscriptionIDs: []int{7},
		User: []mqttc.UserProperty{{Key: "k", Value: "v"}, {Key: "é key", Value: `ü/"v"`}, {Key: "", Value: ""}},
	}},
}, {
	name: "binary payload", payload: []byte("\x01\xfe\xff\r\n\"\\abc\x7f\x00z"), retain: true,
	pubArgs: []string{"-q", "2"}, subArgs: []string{"-q", "2"},
	msg: mqttc.Message{QoS: 2, PacketID: 1},
}, {
	name: "MQTT 3.1.1 QoS 0", payload: []byte("plain \"text\"\t\\ payload é\x7f"), retain: true,
	pubArgs: []string{"-q", "0", "-D", "PUBLISH", "user-property", "dropped", "by v3"},
	subArgs: []string{"-V", "311"},
	msg:     mqttc.Message{},
}, {
	name: "not retained", payload: []byte("live payload 12345"),
	pubArgs: []string{"-q", "1", "-D", "PUBLISH", "content-type", "c/t"},
	subArgs: []string{"-q", "1"},
	msg:     mqttc.Message{QoS: 1, PacketID: 1, Props: mqttc.Properties{ContentType: "c/t"}},
}, {
	name: "empty payload",
	msg:  mqttc.Message{},
}, {
	name: "JSON payload", retain: true,
	payload: []byte(" {\"a\": [1, 2.50, -0, 1e3, 1.5e-7, 123456789012, 0.1, 1e400, 01, 1., -.5, 1E2, 3.14159265358979, " +
		"1111111111111111111111111111111111111111111111111111111111111111111111, 1e-400, 5e-324, 0.30000000000000004], " +
		"\"s\":\"x\\u00e9\\/\\ud83d\\ude00\\b\\f\\t\\n\\r\\\"\\\\\\u001f\traw\xff\", \"n\":null, \"t\":true, \"f\":false, " +
		"\"o\":{}, \"e\":[], \"deep\":[{\"x\":{\"y\":[[], {}]}}], \"dup\":1, \"dup\":2}\x01\n",
	),
}, {
	name: "JSON payload with BOM", retain: true, payload: []byte("\xef\xbb\xbf [true]"),
}, {
	name: "JSON scalar", retain: true, payload: []byte("\"a string\""),
}, {
	name: "not JSON", retain: true, payload: []byte(`{"a":1,}`),
}}

// compatTime says where in mosquitto's output the time it printed is, so
// that the test can give our message the same Received time. mosquitto
// reads the clock separately for each %I %j %J %U and once for all @
// conversions, so a case uses one of them only.
type compatTime int

const (
	timeNone  compatTime = iota
	timeAt               // the format starts with "@s.@N"
	timeU                // the format starts with "%U"
	timeI                // the first %I
	timeIHour            // %.13I: the date and the hour
	timeJ                // the first "tst"
)

var (
	reAt  = regexp.MustCompile(`^(-?\d+)\.(\d{9})`)
	reI   = regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4}`)
	reTst = regexp.MustCompile(`"tst":\t?"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6})Z([+-]\d{4})"`)
)

func (ct compatTime) parse(out []byte, loc *time.Location) (time.Time, error) {
	if len(out) == 0 { // e.g. a %J that failed: no time printed, none needed
		return time.Time{}, nil
	}
	switch ct {
	case timeAt, timeU:
		m := reAt.FindSubmatch(out)
		if m == nil {
			return time.Time{}, fmt.Errorf("no seconds.nanoseconds at the start")
		}
		s, _ := strconv.ParseInt(string(m[1]), 10, 64)
		ns, _ := strconv.ParseInt(string(m[2]), 10, 64)
		return time.Unix(s, ns), nil
	case timeI:
		m := reI.Find(out)
		if m == nil {
			return time.Time{}, fmt.Errorf("no ISO 8601 time")
		}
		return time.Parse("2006-01-02T15:04:05-0700", string(m))
	case timeIHour:
		return time.ParseInLocation("2006-01-02T15", string(out[:min(len(out), 13)]), loc)
	case timeJ:
		m := reTst.FindSubmatch(out)
		if m == nil {
			return time.Time{}, fmt.Errorf("no tst")
		}
		return time.Parse("2006-01-02T15:04:05.000000-0700", string(m[1])+string(m[2]))
	}
	return time.Time{}, nil
}

type compatCase struct {
	format string
	time   compatTime
	pretty bool
	// only and skip: the scenarios this case runs on (all when only is
	// empty) or not. Formats that mosquitto prints differently for some
	// messages, on purpose (see the package documentation), run only where
	// we agree.
	only, skip []string
}

// notUTF8 are the scenarios whose payload is not UTF-8, which %j prints
// differently from mosquitto on purpose.
var notUTF8 = []string{"binary payload", "JSON payload"}

var compatCases = []compatCase{
	{format: `%t|%p|%q|%r|%m|%l|%%|%D|%P`},
	{format: `%A|%C|%E|%F|%R|%S|%x|%X|@@`},
	{format: `%10t|%-10t|%.2t|%5.1t|%-5.1t|%08t|%-08.3t|%.t|%5q|%5r|%5%|%5P|%5D|%-5.2D`},
	{format: `%5l|%-5l|%05l|%-05l|%5m|%05m|%-5m|%0l|%1l`},
	{format: `%3p|%08p|%-08p|%018p|%-18p|%.3p|%2x|%4X|%-4x|%08x|%-08X|%010X|%4.1x`,
		only: []string{"v5 properties", "binary payload", "MQTT 3.1.1 QoS 0", "not retained"}},
	{format: `%20C|%-20C|%.4C|%3.2C|%20R|%-20R|%.3R|%5E|%05E|%-5E|%3F|%03F|%-3F|%03S|%-3S|%3S`,
		only: []string{"v5 properties"}},
	{format: `\\|\0|\a|\e|\n|\r|\t|\v|@@|\\@@`},
	{format: `%j`, time: timeJ, skip: notUTF8},
	{format: `%j`, time: timeJ, pretty: true, skip: notUTF8},
	{format: `%J`, time: timeJ, only: []string{"JSON payload", "JSON payload with BOM", "JSON scalar", "empty payload", "not JSON"}},
	{format: `%J`, time: timeJ, pretty: true, only: []string{"JSON payload", "JSON payload with BOM", "JSON scalar", "empty payload", "not JSON"}},
	{format: `%U`, time: timeU},
	{format: `%I|%t`, time: timeI},
	{format: `%30I|`, time: timeI},
	{format: `%-30I|`, time: timeI},
	{format: `%.13I|`, time: timeIHour},
	{format: `@s.@N|@Y-@m-@dT@H:@M:@S@z @Z|@a @A @b @B @c|@C @D @e @F @g @G @h @I @j @k @l @p @P|` +
		`@r @R @T @u @U @V @w @W @x @X @y|@%|@@|@n|@t|[%t]`, time: timeAt},
}

// TestMosquittoCompat prints each scenario's message with mosquitto_sub
// -F and with Format, in two time zones, and compares the bytes.
func TestMosquittoCompat(t *testing.T) {
	if testing.Short() {
		t.Skip("starts mosquitto")
	}
	mq := startMosquitto(t)
	zones := []string{"Asia/Kolkata", "America/St_Johns"}
	for si, sc := range compatScenarios {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			topic := fmt.Sprintf("msgfmt/%d/%s", si, strings.ReplaceAll(sc.name, " ", "_"))
			if sc.retain {
				mq.publish(t, topic, sc.payload, append([]string{"-r"}, sc.pubArgs...)...)
			}
			for ci, cc := range compatCases {
				if len(cc.only) > 0 && !contains(cc.only, sc.name) || contains(cc.skip, sc.name) {
					continue
				}
				for _, zone := range zones {
					if cc.time == timeNone && zone != zones[0] {
						continue
					}
					loc, err := time.LoadLocation(zone)
					if err != nil {
						t.Skipf("no time zone data: %v", err)
					}
					// The broker sends the expiry interval it has left; %E
					// before a separator says what it was.
					format := "%E\x1f" + cc.format
					args := append([]string{"-V", "5", "-t", topic, "-C", "1", "-N", "-W", "10", "-F", format}, sc.subArgs...)
					if cc.pretty {
						args = append(args, "--pretty")
					}
					var out, errOut []byte
					if sc.retain {
						out, errOut, err = mq.run(t, []string{"TZ=" + zone}, mq.sub, args...)
					} else {
						out, errOut, err = mq.subscribeThenPublish(t, zone, topic, ci, sc, args)
					}
					if err != nil {
						t.Fatalf("mosquitto_sub -F %q: %v\n%s", format, err, errOut)
					}
					expiry, out, ok := bytes.Cut(out, []byte{0x1f})
					if !ok {
						t.Fatalf("mosquitto_sub -F %q printed %q", format, out)
					}

					m := sc.msg
					m.Topic, m.Payload, m.Retain = topic, sc.payload, sc.retain
					if len(expiry) > 0 {
						e, err := strconv.ParseUint(string(expiry), 10, 32)
						if err != nil {
							t.Fatalf("%%E printed %q", expiry)
						}
						m.Props.MessageExpiry = u32(uint32(e))
					}
					if m.Received, err = cc.time.parse(out, loc); err != nil {
						t.Fatalf("-F %q printed %q: %v", cc.format, out, err)
					}
					f, err := ParseFormat(cc.format)
					if err != nil {
						t.Fatal(err)
					}
					f.Location, f.Pretty = loc, cc.pretty
					got, jerr := f.AppendErr(nil, &m)
					if !bytes.Equal(got, out) {
						t.Errorf("-F %q, TZ=%s:\nmosquitto_sub: %q\nmqtk:          %q", cc.format, zone, out, got)
					}
					wantErr := bytes.Contains(errOut, []byte("not valid JSON"))
					if (jerr != nil) != wantErr {
						t.Errorf("-F %q: AppendErr error %v; mosquitto_sub said %q", cc.format, jerr, errOut)
					}
				}
			}
		})
	}
}

// subscribeThenPublish runs mosquitto_sub, waits until the broker has sent
// it its SUBACK, publishes the scenario's message (not retained), and
// returns what mosquitto_sub printed.
func (mq *mosquitto) subscribeThenPublish(t *testing.T, zone, topic string, ci int, sc compatScenario, args []string) (out, errOut []byte, err error) {
	t.Helper()
	id := fmt.Sprintf("msgfmt-%s-%d-%s", strings.ReplaceAll(sc.name, " ", "_"), ci, strings.ReplaceAll(zone, "/", "_"))
	done := make(chan struct{})
	go func() {
		defer close(done)
		out, errOut, err = mq.run(t, []string{"TZ=" + zone}, mq.sub, append([]string{"-i", id}, args...)...)
	}()
	mq.waitLog(t, "Sending SUBACK to "+id)
	mq.publish(t, topic, sc.payload, sc.pubArgs...)
	<-done
	return out, errOut, err
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestMosquittoDifferences pins down what mosquitto_sub prints where we
// differ on purpose (see the package documentation), so that the
// documentation stays true, and what we print instead.
func TestMosquittoDifferences(t *testing.T) {
	if testing.Short() {
		t.Skip("starts mosquitto")
	}
	mq := startMosquitto(t)
	for i, tc := range []struct {
		name           string
		payload        []byte
		pubArgs        []string
		msg            mqttc.Message
		format         string
		mosquitto, our string
	}{
		{name: "%E above 2^31", payload: []byte("x"),
			pubArgs: []string{"-D", "PUBLISH", "message-expiry-interval", "4294967295"},
			msg:     mqttc.Message{Props: mqttc.Properties{MessageExpiry: u32(4294967295)}},
			format:  "%E|%012E", mosquitto: "-1|-00000000001", our: "4294967295|004294967295"},
		{name: "%x with a width", payload: []byte("hello"),
			format: "%10x|%-10X|%4x|%3x", mosquitto: "      6865|6865      |6865| 68", our: "68656c6c6f|68656C6C6F|6865| 68"},
		{name: "- without a width", payload: []byte("hello"),
			format: "%-p|%-x|", mosquitto: "hello     |68656c6c6f     |", our: "hello|68656c6c6f|"},
		{name: "absent properties with a width", payload: []byte("x"),
			format: "%05F|%-05A|%5R|%5C|%3E|%03S|", mosquitto: "00000|00000||     |   |000|", our: "     |     |     |     |   |   |"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			topic := fmt.Sprintf("msgfmt/diff/%d", i)
			mq.publish(t, topic, tc.payload, append([]string{"-r"}, tc.pubArgs...)...)
			out, errOut, err := mq.run(t, nil, mq.sub, "-V", "5", "-t", topic, "-C", "1", "-N", "-W", "10", "-F", tc.format)
			if err != nil {
				t.Fatalf("mosquitto_sub: %v\n%s", err, errOut)
			}
			if string(out) != tc.mosquitto {
				t.Errorf("mosquitto_sub -F %q printed %q, the documentation says %q", tc.format, out, tc.mosquitto)
			}
			m := tc.msg
			m.Topic, m.Payload, m.Retain = topic, tc.payload, true
			f, err := ParseFormat(tc.format)
			if err != nil {
				t.Fatal(err)
			}
			if got := f.Append(nil, &m); string(got) != tc.our {
				t.Errorf("-F %q = %q, want %q", tc.format, got, tc.our)
			}
		})
	}
}

// TestMosquittoNewline checks what the package documentation says about
// newlines: mosquitto_sub -F appends "\n" unless -N, also after a %J that
// failed.
func TestMosquittoNewline(t *testing.T) {
	if testing.Short() {
		t.Skip("starts mosquitto")
	}
	mq := startMosquitto(t)
	mq.publish(t, "msgfmt/nl", []byte("not json"), "-r")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-F", "%p"}, "not json\n"},
		{[]string{"-F", "%p", "-N"}, "not json"},
		{[]string{"-F", "%J"}, "\n"},
		{[]string{"-F", "<%J>", "-N"}, "<>"},
	} {
		out, errOut, err := mq.run(t, nil, mq.sub, append([]string{"-V", "5", "-t", "msgfmt/nl", "-C", "1", "-W", "10"}, tc.args...)...)
		if err != nil {
			t.Fatalf("mosquitto_sub %q: %v\n%s", tc.args, err, errOut)
		}
		if string(out) != tc.want {
			t.Errorf("mosquitto_sub %q printed %q, want %q", tc.args, out, tc.want)
		}
	}
}
