package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"mqtk/internal/broker"
	"mqtk/internal/brokertest"
	"mqtk/internal/mqttc"
	"mqtk/internal/proxytest"
	"mqtk/internal/term"
)

func testApp(in string, env map[string]string) (*App, *bytes.Buffer, *bytes.Buffer) {
	io, out, errb := term.Test(in)
	return &App{IO: io, LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok }}, out, errb
}

// resolveArgs parses connection flags and the environment as a command would.
func resolveArgs(t *testing.T, env map[string]string, args ...string) (*connection, error) {
	t.Helper()
	a, _, _ := testApp("", env)
	return resolveWith(t, a, args...)
}

// resolveWith is resolveArgs with a given App.
func resolveWith(t *testing.T, a *App, args ...string) (*connection, error) {
	t.Helper()
	var f connFlags
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	f.addFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatalf("parse %v: %v", args, err)
	}
	if err := f.applyEnv(a); err != nil {
		return nil, err
	}
	return f.resolve(a)
}

func TestFlagAndEnvironmentPrecedence(t *testing.T) {
	for _, tc := range []struct {
		name  string
		env   map[string]string
		args  []string
		check func(*connection) string
	}{
		{"defaults", nil, nil, func(c *connection) string {
			return fmt.Sprintf("%s keepalive=%d clean=%v", c.cfg.Endpoint, c.cfg.KeepAlive, c.cfg.CleanStart)
		}},
		{"env host", map[string]string{"MQTK_HOST": "envhost", "MQTK_PORT": "1999"}, nil, func(c *connection) string { return c.cfg.Endpoint.String() }},
		{"flag beats env", map[string]string{"MQTK_HOST": "envhost"}, []string{"-h", "flaghost"}, func(c *connection) string { return c.cfg.Endpoint.String() }},
		{"env url", map[string]string{"MQTK_URL": "mqtts://u:p@h:1234/t"}, nil, func(c *connection) string {
			return fmt.Sprintf("%s %s %s %s", c.cfg.Endpoint, c.cfg.Username, c.cfg.Password, c.urlTopic)
		}},
		{"host flag beats env url", map[string]string{"MQTK_URL": "mqtt://envhost:1234"}, []string{"-h", "flaghost"}, func(c *connection) string { return c.cfg.Endpoint.String() }},
		{"password from env", map[string]string{"MQTK_PASSWORD": "s3cret"}, []string{"-u", "me"}, func(c *connection) string { return c.cfg.Username + ":" + c.cfg.Password }},
		{"password flag beats env", map[string]string{"MQTK_PASSWORD": "s3cret"}, []string{"-u", "me", "-P", "flagpw"}, func(c *connection) string { return c.cfg.Password }},
		{"cafile turns tls on", nil, []string{"--capath", ".", "--insecure"}, func(c *connection) string { return c.cfg.Endpoint.String() }},
		{"ipv6 host", nil, []string{"-h", "::1"}, func(c *connection) string { return c.cfg.Endpoint.String() }},
		{"bracketed ipv6 host", nil, []string{"-h", "[::1]", "-p", "1884"}, func(c *connection) string { return c.cfg.Endpoint.String() }},
		{"ipv6 host with a zone", nil, []string{"-h", "[fe80::1%lo]"}, func(c *connection) string { return c.cfg.Endpoint.String() }},
		{"disable clean session", nil, []string{"-c", "-i", "me"}, func(c *connection) string {
			return fmt.Sprintf("clean=%v expiry=%d", c.cfg.CleanStart, *c.cfg.SessionExpiry)
		}},
		{"session expiry duration", nil, []string{"-x", "1h"}, func(c *connection) string { return fmt.Sprint(*c.cfg.SessionExpiry) }},
		{"id prefix", nil, []string{"-I", "job-"}, func(c *connection) string { return c.cfg.ClientID[:4] }},
		{"password flag beats env file", map[string]string{"MQTK_PASSWORD_FILE": "/nonexistent"}, []string{"-u", "me", "-P", "flagpw"}, func(c *connection) string { return c.cfg.Password }},
		{"id flag beats env prefix", map[string]string{"MQTK_ID_PREFIX": "env-"}, []string{"-i", "mine"}, func(c *connection) string { return c.cfg.ClientID }},
		{"env bool", map[string]string{"MQTK_DEBUG": "true"}, nil, func(c *connection) string { return fmt.Sprint(c.cfg.Trace != nil) }},
		// Bare seconds, as -W takes them (pflag's duration flags refused them).
		{"connect timeout in seconds", map[string]string{"MQTK_CONNECT_TIMEOUT": "2.5"}, nil, func(c *connection) string { return c.cfg.ConnectTimeout.String() }},
		{"connect timeout flag", nil, []string{"--connect-timeout", "3"}, func(c *connection) string { return c.cfg.ConnectTimeout.String() }},
		{"will", nil, []string{"--will-topic", "w/t", "--will-payload", "gone", "--will-qos", "1", "--will-retain"}, func(c *connection) string {
			w := c.cfg.Will
			return fmt.Sprintf("%s %s q%d r%v", w.Topic, w.Payload, w.QoS, w.Retain)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := resolveArgs(t, tc.env, tc.args...)
			if err != nil {
				t.Fatal(err)
			}
			got := tc.check(c)
			want := map[string]string{
				"defaults":                     "mqtt://localhost:1883 keepalive=60 clean=true",
				"env host":                     "mqtt://envhost:1999",
				"flag beats env":               "mqtt://flaghost:1883",
				"env url":                      "mqtts://h:1234 u p t",
				"host flag beats env url":      "mqtt://flaghost:1883",
				"password from env":            "me:s3cret",
				"password flag beats env":      "flagpw",
				"cafile turns tls on":          "mqtts://localhost:8883",
				"ipv6 host":                    "mqtt://[::1]:1883",
				"bracketed ipv6 host":          "mqtt://[::1]:1884",
				"ipv6 host with a zone":        "mqtt://[fe80::1%lo]:1883",
				"disable clean session":        "clean=false expiry=4294967295",
				"session expiry duration":      "3600",
				"id prefix":                    "job-",
				"env bool":                     "true",
				"password flag beats env file": "flagpw",
				"id flag beats env prefix":     "mine",
				"will":                         "w/t gone q1 rtrue",
				"connect timeout in seconds":   "2.5s",
				"connect timeout flag":         "3s",
			}[tc.name]
			if got != want {
				t.Errorf("got %q, want %q", got, want)
			}
		})
	}
}

func TestEnvironmentErrors(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		args []string
		want string
	}{
		{map[string]string{"MQTK_PORT": "many"}, nil, `MQTK_PORT="many": not a number`},
		{map[string]string{"MQTK_INSECURE": "maybe"}, nil, `MQTK_INSECURE="maybe": not true or false`},
		{map[string]string{"MQTK_URL": "mqtt://a", "MQTK_HOST": "b"}, []string{"-L", "mqtt://c", "-p", "1"}, "conflict"},
		{nil, []string{"--color", "sometimes"}, "--color"},
		{nil, []string{"-k", "70000"}, "keepalive"},
		{nil, []string{"-p", "70000"}, "port"},
		{nil, []string{"-h", "broker.example:1884"}, `-h/--host "broker.example:1884" holds a port: use -h broker.example -p 1884, or -L mqtt://broker.example:1884`},
		{nil, []string{"-h", "[::1]:1884"}, `-h/--host "[::1]:1884" holds a port: use -h ::1 -p 1884, or -L mqtt://[::1]:1884`},
		{nil, []string{"-h", "mqtt://broker.example"}, `-h/--host "mqtt://broker.example" is not a host name or address (for a URL use -L)`},
		{map[string]string{"MQTK_HOST": "b:1"}, nil, `MQTK_HOST "b:1" holds a port: use MQTK_HOST=b MQTK_PORT=1`},
		{nil, []string{"-h", "[127.0.0.1]"}, `-h/--host "[127.0.0.1]": brackets are for IPv6 addresses; use 127.0.0.1`},
		{map[string]string{"MQTK_CONNECT_TIMEOUT": "1e10"}, nil, `MQTK_CONNECT_TIMEOUT="1e10": "1e10" is too long`},
		{nil, []string{"-i", "a", "-I", "b"}, "conflict"},
		{nil, []string{"--will-payload", "x"}, "need --will-topic"},
		{nil, []string{"--will-topic", "a/#"}, "wildcard"},
		{nil, []string{"--tls-version", "1.0", "--cafile", "/dev/null"}, "tlsv1.2 or tlsv1.3"},
		{nil, []string{"--insecure"}, "not mqtts://"},
		{nil, []string{"-P", "x", "--pw-file", "y", "-u", "u"}, "-P/--pw and --pw-file conflict"},
		{map[string]string{"MQTK_ID": "a", "MQTK_ID_PREFIX": "b"}, nil, "MQTK_ID and MQTK_ID_PREFIX conflict"},
	} {
		_, err := resolveArgs(t, tc.env, tc.args...)
		var ue *UsageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("env %v args %v: error %v, want a usage error containing %q", tc.env, tc.args, err, tc.want)
		}
	}
}

func TestExitCodes(t *testing.T) {
	wrap := func(err error) error { return fmt.Errorf("context: %w", err) }
	for _, tc := range []struct {
		err  error
		want int
	}{
		{nil, 0},
		{errors.New("boom"), 1},
		{usageErrorf("bad"), 2},
		{wrap(&UsageError{Err: errors.New("x")}), 2},
		{fmt.Errorf("x: %w", mqttc.ErrInvalid), 2},
		{wrap(&mqttc.NetError{Op: "connect", Err: errors.New("refused")}), 3},
		{&mqttc.DisconnectError{Code: 0x8b}, 3},
		{wrap(&mqttc.ConnectError{Code: 0x86}), 4},
		{wrap(&mqttc.RejectedError{Op: "publish", Code: 0x87}), 5},
		{&mqttc.TimeoutError{Op: "publish"}, 27},
		{context.DeadlineExceeded, 27},
		{errInterrupted, 130},
		{fmt.Errorf("%w: partial line", errInterrupted), 130},
	} {
		if got := exitCode(tc.err); got != tc.want {
			t.Errorf("exitCode(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
	seen := map[int]bool{}
	for _, e := range exitCodes {
		if seen[e.Code] {
			t.Errorf("exit code %d documented twice", e.Code)
		}
		seen[e.Code] = true
	}
}

// TestNoShortHelp checks that -h is never help: it is the host wherever a
// command has connection flags.
func TestNoShortHelp(t *testing.T) {
	a, _, _ := testApp("", nil)
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		c.InitDefaultHelpFlag()
		if f := c.Flags().Lookup("help"); f != nil && f.Shorthand != "" {
			t.Errorf("%s: --help has shorthand -%s", c.CommandPath(), f.Shorthand)
		}
		if f := c.Flags().ShorthandLookup("h"); f != nil && f.Name != "host" {
			t.Errorf("%s: -h is --%s, want --host", c.CommandPath(), f.Name)
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(NewRootCmd(a))
}

// subscriber connects a test client that collects messages on filter.
func subscriber(t *testing.T, b *brokertest.Broker, filter string) <-chan *mqttc.Message {
	t.Helper()
	ch := make(chan *mqttc.Message, 100)
	c, err := mqttc.Dial(context.Background(), mqttc.Config{
		Endpoint: mqttc.Endpoint{Scheme: "mqtt", Host: b.Host, Port: b.Port}, ClientID: "test-sub", CleanStart: true,
		OnMessage: func(m *mqttc.Message) { ch <- m },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Disconnect(context.Background()) })
	if _, err := c.Subscribe(context.Background(), []mqttc.Subscription{{Filter: filter, QoS: 2}}, mqttc.SubscribeOptions{}); err != nil {
		t.Fatal(err)
	}
	return ch
}

func receive(t *testing.T, ch <-chan *mqttc.Message) *mqttc.Message {
	t.Helper()
	select {
	case m := <-ch:
		return m
	case <-time.After(30 * time.Second): // a bound against hangs, not a synchronisation
		t.Fatal("no message arrived")
		return nil
	}
}

// TestPubProperties publishes with every v5 property and checks what a
// subscriber receives.
func TestPubProperties(t *testing.T) {
	b := brokertest.Start(t, broker.Config{})
	ch := subscriber(t, b, "props/#")
	a, _, stderr := testApp("", nil)
	code := a.Run(context.Background(), []string{"pub", "-p", fmt.Sprint(b.Port), "-t", "props/x", "-m", "{\"v\":1}", "-q", "1",
		"--content-type", "application/json", "--response-topic", "props/reply", "--correlation-data", "req-42",
		"--message-expiry", "1h", "--payload-format-indicator",
		"--user-property", "origin=ci", "--user-property", "k=v=w", "--user-property", "origin=nightly"})
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	m := receive(t, ch)
	p := m.Props
	if m.Topic != "props/x" || string(m.Payload) != `{"v":1}` || m.QoS != 1 {
		t.Errorf("message %q %q q%d", m.Topic, m.Payload, m.QoS)
	}
	if p.ContentType != "application/json" || p.ResponseTopic != "props/reply" || string(p.CorrelationData) != "req-42" {
		t.Errorf("properties %+v", p)
	}
	if p.MessageExpiry == nil || *p.MessageExpiry > 3600 || *p.MessageExpiry < 3500 {
		t.Errorf("message expiry %v, want about 3600", p.MessageExpiry)
	}
	if p.PayloadFormat == nil || *p.PayloadFormat != 1 {
		t.Errorf("payload format %v, want 1", p.PayloadFormat)
	}
	wantUser := []mqttc.UserProperty{{Key: "origin", Value: "ci"}, {Key: "k", Value: "v=w"}, {Key: "origin", Value: "nightly"}}
	if fmt.Sprint(p.User) != fmt.Sprint(wantUser) {
		t.Errorf("user properties %v, want %v", p.User, wantUser)
	}
}

// TestSecretsStayOut checks that a password, the broker's or a proxy's,
// appears neither in the packet trace nor in errors.
func TestSecretsStayOut(t *testing.T) {
	b := brokertest.Start(t, broker.Config{Users: map[string]string{"alice": "hunter2"}})
	socks := proxytest.Start(t, proxytest.Options{Kind: "socks5", User: "bob", Password: "hunter5"})
	httpProxy := proxytest.Start(t, proxytest.Options{Kind: "http", User: "bob", Password: "hunter5"})
	for _, tc := range []struct {
		args []string
		code int
	}{
		{[]string{"-u", "alice", "-P", "hunter2"}, 0},
		{[]string{"-u", "alice", "-P", "hunter3"}, 4},
		{[]string{"-L", fmt.Sprintf("mqtt://alice:hunter3@127.0.0.1:%d/t", b.Port)}, 4},
		{[]string{"-u", "alice", "-P", "hunter2", "--proxy", "socks5://bob:hunter5@" + socks.Addr}, 0},
		{[]string{"-u", "alice", "-P", "hunter2", "--proxy", "http://bob:hunter5@" + httpProxy.Addr}, 0},
		{[]string{"-u", "alice", "-P", "hunter3", "--proxy", "http://bob:hunter5@" + httpProxy.Addr}, 4},
		{[]string{"-u", "alice", "-P", "hunter2", "--proxy", "socks5://bob:hunter6@" + socks.Addr}, 3},
		{[]string{"-u", "alice", "-P", "hunter2", "--proxy", "http://bob:hunter6@" + httpProxy.Addr}, 3},
		{[]string{"-u", "alice", "-P", "hunter2", "--proxy", "http://bob:hunter6@127.0.0.1:x"}, 2},
	} {
		a, _, stderr := testApp("", nil)
		args := append([]string{"pub", "-d", "-h", "127.0.0.1", "-t", "t", "-m", "x", "-q", "1"}, tc.args...)
		if tc.args[0] == "-L" {
			args = append([]string{"pub", "-d", "-m", "x", "-q", "1"}, tc.args...)
		} else {
			args = append(args, "-p", fmt.Sprint(b.Port))
		}
		code := a.Run(context.Background(), args)
		if code != tc.code {
			t.Errorf("%v: exit %d, want %d: %s", tc.args, code, tc.code, stderr)
		}
		if (tc.code == 0 || tc.code == 4) && !strings.Contains(stderr.String(), "sending CONNECT") {
			t.Errorf("%v: no packet trace: %s", tc.args, stderr)
		}
		if tc.code == 3 && !strings.Contains(stderr.String(), "check the user name and password in --proxy") {
			t.Errorf("%v: want the proxy's refusal: %s", tc.args, stderr)
		}
		if strings.Contains(stderr.String(), "hunter") {
			t.Errorf("%v: password in output: %s", tc.args, stderr)
		}
		if tc.code == 4 && !strings.Contains(stderr.String(), "bad user name or password") {
			t.Errorf("%v: want the reason by name: %s", tc.args, stderr)
		}
	}
}

// blockingInput yields data once, then blocks until closed; reading enters
// its second Read only after the first chunk was fully taken in.
type blockingInput struct {
	data     []byte
	second   chan struct{} // closed when the second Read starts
	release  chan struct{}
	once     sync.Once
	consumed bool
}

func (r *blockingInput) Read(p []byte) (int, error) {
	if !r.consumed {
		r.consumed = true
		return copy(p, r.data), nil
	}
	r.once.Do(func() { close(r.second) })
	<-r.release
	return 0, io.EOF
}

// TestPubLinesInterrupted interrupts `pub -l` after it has read lines that
// it has not yet published: they are all published, the partial last line is
// reported, and the exit code is 130.
func TestPubLinesInterrupted(t *testing.T) {
	b := brokertest.Start(t, broker.Config{})
	ch := subscriber(t, b, "lines")
	in := &blockingInput{data: []byte("one\ntwo\nthree\npart"), second: make(chan struct{}), release: make(chan struct{})}
	defer close(in.release)
	a, _, stderr := testApp("", nil)
	a.IO.In = in
	ctx, cancel := context.WithCancelCause(context.Background())
	codec := make(chan int, 1)
	go func() {
		codec <- a.Run(ctx, []string{"pub", "-p", fmt.Sprint(b.Port), "-t", "lines", "-l", "-q", "1"})
	}()
	<-in.second
	cancel(errInterrupted)
	if code := <-codec; code != ExitInterrupted {
		t.Errorf("exit %d, want %d", code, ExitInterrupted)
	}
	for _, want := range []string{"one", "two", "three"} {
		if m := receive(t, ch); string(m.Payload) != want {
			t.Errorf("got %q, want %q", m.Payload, want)
		}
	}
	if !strings.Contains(stderr.String(), "interrupted: an incomplete last line of 4 bytes was not sent") {
		t.Errorf("stderr: %s", stderr)
	}
}

// TestPasswordPrompt: --pw-prompt reads the password without echo from a
// terminal, and the password is never printed.
func TestPasswordPrompt(t *testing.T) {
	b := brokertest.Start(t, broker.Config{Users: map[string]string{"alice": "hunter2"}})
	a, _, stderr := testApp("", nil)
	prompted := false
	a.IO.SetTTY(true, func() ([]byte, error) { prompted = true; return []byte("hunter2"), nil })
	code := a.Run(context.Background(), []string{"pub", "-p", fmt.Sprint(b.Port), "-t", "t", "-m", "x", "-q", "1", "-u", "alice", "--pw-prompt"})
	if code != 0 || !prompted {
		t.Fatalf("exit %d, prompted %v: %s", code, prompted, stderr)
	}
	if !strings.HasPrefix(stderr.String(), "Password: ") || strings.Contains(stderr.String(), "hunter2") {
		t.Errorf("stderr %q", stderr)
	}
}

// TestPubInterruptedUnacknowledged interrupts `pub -q 1` while a broker
// that never acknowledges anything holds its message: pub says what it is
// waiting for (not with --quiet), waits out the grace
// (App.InterruptGrace), disconnects properly (DISCONNECT, so no will), and
// exits 130 saying what was not acknowledged. It waited for ever,
// silently, before.
func TestPubInterruptedUnacknowledged(t *testing.T) {
	for _, quiet := range []bool{false, true} {
		t.Run(fmt.Sprintf("quiet=%v", quiet), func(t *testing.T) {
			published, disconnected := make(chan struct{}), make(chan struct{})
			var once sync.Once
			mute := brokertest.StartMute(t, brokertest.MuteOptions{OnPacket: func(header byte) {
				switch header >> 4 {
				case 3: // PUBLISH: never acknowledged
					once.Do(func() { close(published) })
				case 14: // DISCONNECT
					close(disconnected)
				}
			}})
			port := mute.Port
			a, _, stderr := testApp("", nil)
			a.InterruptGrace = 100 * time.Millisecond
			ctx, cancel := context.WithCancelCause(context.Background())
			codec := make(chan int, 1)
			args := []string{"pub", "-p", fmt.Sprint(port), "-t", "t", "-m", "x", "-q", "1"}
			if quiet {
				args = append(args, "--quiet")
			}
			go func() { codec <- a.Run(ctx, args) }()
			<-published
			cancel(errInterrupted)
			select {
			case code := <-codec:
				if code != ExitInterrupted {
					t.Errorf("exit %d, want %d", code, ExitInterrupted)
				}
			case <-time.After(30 * time.Second): // a bound against the hang, not a synchronisation
				t.Fatal("pub did not end after the interruption's grace")
			}
			select {
			case <-disconnected:
			case <-time.After(30 * time.Second): // a bound, as above
				t.Error("pub ended without DISCONNECT")
			}
			if quiet {
				if stderr.Len() > 0 {
					t.Errorf("--quiet, and stderr has %q", stderr)
				}
				return
			}
			for _, want := range []string{
				"mqtk: interrupted: waiting up to 100ms for the broker to acknowledge 1 sent message (interrupt again to quit now)\n",
				"mqtk: interrupted: 1 sent message not acknowledged within 100ms\n",
			} {
				if !strings.Contains(stderr.String(), want) {
					t.Errorf("stderr lacks %q:\n%s", want, stderr)
				}
			}
		})
	}
}

// TestLineReaderPastItsQueue: stdin that holds more lines than the reader
// queues ahead (maxQueuedLines) in one read is all delivered, in order:
// the reader says lines are ready before it waits for them to be taken.
func TestLineReaderPastItsQueue(t *testing.T) {
	const n = 3*maxQueuedLines + 7
	var in strings.Builder
	for i := range n {
		fmt.Fprintf(&in, "%d\n", i)
	}
	lr := newLineReader(strings.NewReader(in.String()))
	got := 0
	deadline := time.After(30 * time.Second) // a bound against the hang, not a synchronisation
	for {
		select {
		case <-lr.ready:
		case <-deadline:
			t.Fatalf("stuck after %d of %d lines", got, n)
		}
		lines, eof, err := lr.take()
		for _, l := range lines {
			if string(l) != strconv.Itoa(got) {
				t.Fatalf("line %d is %q", got, l)
			}
			got++
		}
		if err != nil {
			t.Fatal(err)
		}
		if eof {
			break
		}
	}
	if got != n {
		t.Errorf("%d lines, want %d", got, n)
	}
}
