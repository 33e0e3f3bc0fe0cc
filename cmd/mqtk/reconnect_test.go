package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"mqtk/internal/broker"
	"mqtk/internal/brokertest"
	"mqtk/internal/mqttc"
	"mqtk/internal/proxytest"
)

// cutRelay relays connections to a broker and, on the test's word, stops
// passing the broker's bytes to the client (so acknowledgements are lost
// on the way) and then cuts every connection, as a broker or network that
// fails under a client would. With cutAfter > 0 it cuts by itself once it
// has passed that many of a client's bytes (once: later connections are
// relayed in full).
type cutRelay struct {
	*proxytest.Proxy
	cutAfter int64
	cutOnce  atomic.Bool
	mu       sync.Mutex
	pairs    []*relayPair
}

type relayPair struct {
	client, broker net.Conn
	held           atomic.Bool
}

func startCutRelay(t *testing.T, target string, cutAfter int64) *cutRelay {
	r := &cutRelay{cutAfter: cutAfter}
	r.Proxy = proxytest.Start(t, proxytest.Options{Kind: "custom", Serve: func(_ *proxytest.Proxy, c net.Conn) {
		b, err := net.Dial("tcp", target)
		if err != nil {
			c.Close()
			return
		}
		pr := &relayPair{client: c, broker: b}
		r.mu.Lock()
		r.pairs = append(r.pairs, pr)
		r.mu.Unlock()
		go func() {
			defer b.Close()
			buf := make([]byte, 32*1024)
			for sent := int64(0); ; {
				n, err := c.Read(buf)
				if n > 0 {
					if _, werr := b.Write(buf[:n]); werr != nil {
						return
					}
				}
				if sent += int64(n); r.cutAfter > 0 && sent >= r.cutAfter && r.cutOnce.CompareAndSwap(false, true) {
					r.cut()
					return
				}
				if err != nil {
					return
				}
			}
		}()
		buf := make([]byte, 32*1024)
		for {
			n, err := b.Read(buf)
			if n > 0 && !pr.held.Load() {
				if _, werr := c.Write(buf[:n]); werr != nil {
					break
				}
			}
			if err != nil {
				break
			}
		}
		c.Close()
	}})
	return r
}

// hold drops, from now on, what the broker sends on the connections open.
func (r *cutRelay) hold() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range r.pairs {
		p.held.Store(true)
	}
}

// cut closes the connections open; later ones are relayed in full.
func (r *cutRelay) cut() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range r.pairs {
		p.client.Close()
		p.broker.Close()
	}
	r.pairs = nil
}

// lockedBuffer is a command's stderr, which the test reads while the
// command runs.
type lockedBuffer struct {
	mu      sync.Mutex
	b       bytes.Buffer
	changed chan struct{} // closed and replaced at each write
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.changed != nil {
		close(l.changed)
		l.changed = nil
	}
	return l.b.Write(p)
}

// waitFor waits until s has been written.
func (l *lockedBuffer) waitFor(t *testing.T, s string) {
	t.Helper()
	for {
		l.mu.Lock()
		if strings.Contains(l.b.String(), s) {
			l.mu.Unlock()
			return
		}
		if l.changed == nil {
			l.changed = make(chan struct{})
		}
		changed := l.changed
		l.mu.Unlock()
		select {
		case <-changed:
		case <-time.After(waitLimit):
			t.Fatalf("%q was never written; got:\n%s", s, l)
		}
	}
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// payloads subscribes to filter on b, as client id, and returns the
// channel its messages' payloads arrive on (until the test ends: then
// they are dropped, so that the subscriber can disconnect).
func payloads(t *testing.T, b *brokertest.Broker, id, filter string, qos byte) chan string {
	t.Helper()
	got := make(chan string, 16)
	over := make(chan struct{}) // the test no longer reads got
	sub, err := mqttc.Dial(context.Background(), mqttc.Config{
		Endpoint: mqttc.Endpoint{Scheme: "mqtt", Host: b.Host, Port: b.Port}, ClientID: id, CleanStart: true,
		OnMessage: func(m *mqttc.Message) {
			select {
			case got <- string(m.Payload):
			case <-over:
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		close(over)
		sub.Disconnect(context.Background())
	})
	if _, err := sub.Subscribe(context.Background(), []mqttc.Subscription{{Filter: filter, QoS: qos}}, mqttc.SubscribeOptions{}); err != nil {
		t.Fatal(err)
	}
	return got
}

// startFed starts mqtk with args, its stdin a pipe for the test to write
// and its stderr collected.
func startFed(t *testing.T, args ...string) (*exec.Cmd, io.WriteCloser, *lockedBuffer) {
	t.Helper()
	cmd := exec.Command("mqtk", args...)
	stderr := &lockedBuffer{}
	cmd.Stderr = stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close() })
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, stdin, stderr
}

// TestPubLinesReconnects: pub -l whose connection is lost with a QoS 1
// message unacknowledged reconnects, sends that message again and carries
// on with the next lines: every line arrives, the unacknowledged one twice
// (at least once), in order of first arrival, and pub exits 0 at the end of
// its input. With MQTT 5 and 3.1.1.
func TestPubLinesReconnects(t *testing.T) {
	for _, v := range []string{"5", "311"} {
		t.Run("V"+v, func(t *testing.T) {
			b := brokertest.Start(t, broker.Config{})
			got := payloads(t, b, "rc-lines-sub", "rc/lines", 1)
			relay := startCutRelay(t, net.JoinHostPort(b.Host, fmt.Sprint(b.Port)), 0)
			cmd, stdin, stderr := startFed(t, "pub", "-p", fmt.Sprint(relay.Port), "-V", v, "-t", "rc/lines", "-l", "-q", "1",
				"-i", "rc-lines-pub", "--reconnect-delay", "10ms")
			var seen []string
			// until collects messages until want has arrived n times in all.
			until := func(want string, n int) {
				t.Helper()
				for strings.Count(strings.Join(seen, "\n")+"\n", want+"\n") < n {
					select {
					case m := <-got:
						seen = append(seen, m)
					case <-time.After(waitLimit):
						t.Fatalf("%q did not arrive %d times; got %q; pub's stderr:\n%s", want, n, seen, stderr.String())
					}
				}
			}
			write := func(s string) {
				t.Helper()
				if _, err := io.WriteString(stdin, s); err != nil {
					t.Fatal(err)
				}
			}
			write("one\n")
			until("one", 1)
			relay.hold() // two's PUBACK will not get through
			write("two\n")
			until("two", 1)
			relay.cut()
			until("two", 2) // sent again on the new connection
			write("three\n")
			until("three", 1)
			stdin.Close()
			if code := waitExit(t, cmd); code != 0 {
				t.Fatalf("pub -l exited %d, want 0; stderr:\n%s", code, stderr.String())
			}
			var first []string
			for _, m := range seen {
				if !strings.Contains(strings.Join(first, "\n")+"\n", m+"\n") {
					first = append(first, m)
				}
			}
			if strings.Join(first, ",") != "one,two,three" {
				t.Errorf("first arrivals %q, want one, two, three (all: %q)", first, seen)
			}
			if !regexp.MustCompile(`(?m)^mqtk: .*; reconnecting in 10ms \([12] unacknowledged messages? to send again\)$`).MatchString(stderr.String()) {
				t.Errorf("stderr does not say pub reconnects:\n%s", stderr.String())
			}
		})
	}
}

// TestPubLinesNoReconnect: with --no-reconnect a lost connection ends pub
// -l with exit 3 and the broker's reason; the error counts a line skipped
// before (its note may have scrolled away), keeping the exit code of the
// loss.
func TestPubLinesNoReconnect(t *testing.T) {
	for _, tc := range []struct {
		name, lines string
		flags       []string
		want        string
	}{
		{"plain", "one\n", nil, "mqtk: broker closed the connection: administrative action (0x98)\n"},
		{"skipped", "\xff\none\n", []string{"--payload-format-indicator"},
			"mqtk: line 1 not published: --payload-format-indicator: \"\\xff\" is not UTF-8\n" +
				"mqtk: broker closed the connection: administrative action (0x98); and 1 line not published (line 1: --payload-format-indicator: \"\\xff\" is not UTF-8)\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := brokertest.Start(t, broker.Config{})
			got := payloads(t, b, "rc-once-sub", "rc/once", 0)
			cmd, stdin, stderr := startFed(t, append([]string{"pub", "-p", fmt.Sprint(b.Port), "-t", "rc/once", "-l", "-i", "rc-once", "--no-reconnect"}, tc.flags...)...)
			if _, err := io.WriteString(stdin, tc.lines); err != nil {
				t.Fatal(err)
			}
			select {
			case <-got:
			case <-time.After(waitLimit):
				t.Fatal("pub's message never arrived")
			}
			if !b.Disconnect("rc-once") {
				t.Fatal("client rc-once is not connected")
			}
			if code := waitExit(t, cmd); code != 3 {
				t.Errorf("pub -l --no-reconnect exited %d after losing its connection, want 3; stderr:\n%s", code, stderr.String())
			}
			if stderr.String() != tc.want {
				t.Errorf("stderr %q, want %q", stderr.String(), tc.want)
			}
		})
	}
}

// TestPubLinesBrokerRestart: pub -l outlives its broker: while the broker
// is down each attempt fails and is retried, and the lines read meanwhile
// go out once a broker listens on the address again.
func TestPubLinesBrokerRestart(t *testing.T) {
	first, err := brokertest.New(broker.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	addr := net.JoinHostPort(first.Host, fmt.Sprint(first.Port))
	expect := func(got chan string, want string, stderr *lockedBuffer) {
		t.Helper()
		select {
		case m := <-got:
			if m != want {
				t.Fatalf("got %q, want %q", m, want)
			}
		case <-time.After(waitLimit):
			t.Fatalf("%q never arrived; pub's stderr:\n%s", want, stderr)
		}
	}
	got := payloads(t, first, "rc-restart-sub1", "rc/restart", 1)
	cmd, stdin, stderr := startFed(t, "pub", "-p", fmt.Sprint(first.Port), "-t", "rc/restart", "-l", "-q", "1", "--reconnect-delay", "10ms")
	if _, err := io.WriteString(stdin, "before\n"); err != nil {
		t.Fatal(err)
	}
	expect(got, "before", stderr)
	first.Close()
	// Written while no broker listens: read, kept, sent after.
	if _, err := io.WriteString(stdin, "while-down\n"); err != nil {
		t.Fatal(err)
	}
	// Let pub fail at least once to reconnect, so the retry is what is tested.
	stderr.waitFor(t, "mqtk: reconnect failed: ")
	second := brokertest.Start(t, broker.Config{Listen: []string{addr}})
	got = payloads(t, second, "rc-restart-sub2", "rc/restart", 1)
	// The subscription may come after pub's reconnection: "while-down"
	// may go out before it. "after" cannot.
	if _, err := io.WriteString(stdin, "after\n"); err != nil {
		t.Fatal(err)
	}
	for m := ""; m != "after"; {
		select {
		case m = <-got:
			if m != "while-down" && m != "after" {
				t.Fatalf("got %q", m)
			}
		case <-time.After(waitLimit):
			t.Fatalf("\"after\" never arrived; pub's stderr:\n%s", stderr)
		}
	}
	stdin.Close()
	if code := waitExit(t, cmd); code != 0 {
		t.Fatalf("pub -l exited %d, want 0; stderr:\n%s", code, stderr)
	}
}

// TestPubLinesGivesUp: an MQTT 3.1.1 publish larger than the broker takes
// closes the connection (3.1.1 has no other way to refuse it, and no
// Maximum Packet Size to learn beforehand); pub -l sends it on three
// connections, then stops with exit 3 naming the line, rather than
// reconnecting for ever.
func TestPubLinesGivesUp(t *testing.T) {
	b := brokertest.Start(t, broker.Config{MaximumPacketSize: 64})
	cmd := exec.Command("mqtk", "pub", "-p", fmt.Sprint(b.Port), "-V", "311", "-t", "rc/large", "-l", "-q", "1", "--reconnect-delay", "10ms")
	cmd.Stdin = strings.NewReader(strings.Repeat("x", 100) + "\nnever\n")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if code := waitExit(t, cmd); code != 3 {
		t.Fatalf("pub -l exited %d, want 3; stderr:\n%s", code, stderr.String())
	}
	lines := strings.Split(strings.TrimSuffix(stderr.String(), "\n"), "\n")
	if n := len(lines); n != 3 || !strings.Contains(lines[2], "; line 1 was sent on 3 connections and each ended before the broker acknowledged it: it may be refusing it (2 messages read and not acknowledged)") {
		t.Errorf("stderr:\n%s\nwant two reconnections, then the line that stopped pub", stderr.String())
	}
}

// TestSubSessionNotKept: sub -c reconnecting to a broker that did not keep
// its session (restarted without persistence) subscribes again and says
// that what was published meanwhile is lost.
func TestSubSessionNotKept(t *testing.T) {
	first, err := brokertest.New(broker.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	cmd, stdout, stderr := startSub(t, "-p", fmt.Sprint(first.Port), "-t", "rc/kept", "-q", "1", "-c", "-i", "rc-kept", "--reconnect-delay", "10ms")
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if err := first.WaitSubscribed(ctx, "rc/kept", 1); err != nil {
		t.Fatal(err)
	}
	// A message through the subscription: sub has its SUBACK, and the
	// loss below is of an established session, not of its first SUBSCRIBE.
	through(t, ctx, first, "rc/kept", stdout, stderr)
	first.Close()
	second := brokertest.Start(t, broker.Config{Listen: []string{net.JoinHostPort(first.Host, fmt.Sprint(first.Port))}})
	if err := second.WaitSubscribed(ctx, "rc/kept", 1); err != nil {
		t.Fatalf("sub did not subscribe again: %v; stderr:\n%s", err, stderr)
	}
	stderr.waitFor(t, "mqtk: the broker did not keep the session: messages published while disconnected may have been lost; subscribing again\n")
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if code := waitExit(t, cmd); code != 0 {
		t.Errorf("sub exited %d after SIGINT, want 0; stderr:\n%s", code, stderr)
	}
}

// TestPubLinesFloodReconnects: pub -l -q 0 whose connection is cut while
// it writes as fast as it can (the loss seen by a failed write, with no
// acknowledgement pending, as much as by the reader) reconnects and goes
// on to the end of its input, exit 0. (QoS 0 may lose what was in flight.)
// The relay cuts after 256 KiB of the nearly 4 MB pub sends: mid-flood
// whatever the machine's speed.
func TestPubLinesFloodReconnects(t *testing.T) {
	b := brokertest.Start(t, broker.Config{})
	relay := startCutRelay(t, net.JoinHostPort(b.Host, fmt.Sprint(b.Port)), 256<<10)
	var lines bytes.Buffer
	for i := 1; i <= 200000; i++ {
		fmt.Fprintln(&lines, i)
	}
	cmd := exec.Command("mqtk", "pub", "-p", fmt.Sprint(relay.Port), "-t", "rc/flood", "-l", "--reconnect-delay", "10ms")
	cmd.Stdin = &lines
	stderr := &lockedBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if code := waitExit(t, cmd); code != 0 {
		t.Fatalf("pub -l exited %d, want 0; stderr:\n%s", code, stderr)
	}
	stderr.waitFor(t, "; reconnecting in 10ms")
}

// TestPubLinesInterruptedWhileReconnecting: Ctrl-C while pub -l waits to
// reconnect ends it with exit 130, and the error counts what was read and
// not acknowledged (here the line whose PUBACK the lost connection took).
func TestPubLinesInterruptedWhileReconnecting(t *testing.T) {
	b := brokertest.Start(t, broker.Config{})
	got := payloads(t, b, "rc-int-sub", "rc/int", 1)
	relay := startCutRelay(t, net.JoinHostPort(b.Host, fmt.Sprint(b.Port)), 0)
	cmd, stdin, stderr := startFed(t, "pub", "-p", fmt.Sprint(relay.Port), "-t", "rc/int", "-l", "-q", "1", "--reconnect-delay", "1h",
		"-d", "-i", "rc-int")
	for _, line := range []string{"acked", "held"} {
		if _, err := io.WriteString(stdin, line+"\n"); err != nil {
			t.Fatal(err)
		}
		select {
		case <-got:
		case <-time.After(waitLimit):
			t.Fatalf("%s never arrived; stderr:\n%s", line, stderr)
		}
		if line == "acked" {
			stderr.waitFor(t, "Client rc-int received PUBACK (Mid: 1, RC:0)\n")
			relay.hold() // no PUBACK gets through from now on
		}
	}
	relay.cut()
	stderr.waitFor(t, "; reconnecting in 1h0m0s (1 unacknowledged message to send again)\n")
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if code := waitExit(t, cmd); code != 130 {
		t.Errorf("exit %d, want 130; stderr:\n%s", code, stderr)
	}
	stderr.waitFor(t, "mqtk: interrupted (1 message read and not acknowledged)\n")
}

// byteRecorder reads bytes from r and keeps them, to pass on as read.
type byteRecorder struct {
	r   *bufio.Reader
	got []byte
}

func (b *byteRecorder) ReadByte() (byte, error) {
	c, err := b.r.ReadByte()
	if err == nil {
		b.got = append(b.got, c)
	}
	return c, err
}

// TestSubFirstSubscribeLost: a connection lost before the first SUBACK (a
// broker restarting at that moment) is a loss like any other: sub
// reconnects, subscribes again and goes on. It exited 3.
func TestSubFirstSubscribeLost(t *testing.T) {
	b := brokertest.Start(t, broker.Config{})
	target := net.JoinHostPort(b.Host, fmt.Sprint(b.Port))
	var cut atomic.Bool
	relay := proxytest.Start(t, proxytest.Options{Kind: "custom", Serve: func(_ *proxytest.Proxy, c net.Conn) {
		defer c.Close()
		up, err := net.Dial("tcp", target)
		if err != nil {
			return
		}
		defer up.Close()
		go func() { _, _ = io.Copy(c, up); c.Close() }()
		rec := &byteRecorder{r: bufio.NewReader(c)}
		for { // packet by packet, until the first SUBSCRIBE of the test
			rec.got = rec.got[:0]
			hdr, err := rec.ReadByte()
			if err != nil {
				return
			}
			n, _, err := packets.DecodeLength(rec)
			if err != nil {
				return
			}
			if hdr>>4 == packets.Subscribe && cut.CompareAndSwap(false, true) {
				return // not passed on: the connection ends instead
			}
			if _, err := up.Write(rec.got); err != nil {
				return
			}
			if _, err := io.CopyN(up, rec.r, int64(n)); err != nil {
				return
			}
		}
	}})
	cmd, stdout, stderr := startSub(t, "-p", fmt.Sprint(relay.Port), "-t", "rc/first", "-q", "1", "--reconnect-delay", "10ms")
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if err := b.WaitSubscribed(ctx, "rc/first", 1); err != nil {
		t.Fatalf("sub did not subscribe after the loss: %v; stderr:\n%s", err, stderr)
	}
	through(t, ctx, b, "rc/first", stdout, stderr)
	if !cut.Load() {
		t.Fatal("the relay never saw a SUBSCRIBE")
	}
	stderr.waitFor(t, "; reconnecting in 10ms\n")
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if code := waitExit(t, cmd); code != 0 {
		t.Errorf("sub exited %d after SIGINT, want 0; stderr:\n%s", code, stderr)
	}
}

// through publishes a message to topic on b, and waits for the sub whose
// stdout is given to print it (its stderr is shown if it does not): the
// subscription is acknowledged and in use.
func through(t *testing.T, ctx context.Context, b *brokertest.Broker, topic string, stdout io.Reader, stderr *lockedBuffer) {
	t.Helper()
	pub, err := mqttc.Dial(ctx, mqttc.Config{Endpoint: mqttc.Endpoint{Scheme: "mqtt", Host: b.Host, Port: b.Port}, CleanStart: true})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Disconnect(context.Background())
	if err := pub.Publish(ctx, &mqttc.Message{Topic: topic, Payload: []byte("through"), QoS: 1}); err != nil {
		t.Fatal(err)
	}
	line := make(chan string, 1)
	go func() {
		l, _ := bufio.NewReader(stdout).ReadString('\n')
		line <- l
	}()
	select {
	case l := <-line:
		if l != "through\n" {
			t.Fatalf("sub printed %q, want through; stderr:\n%s", l, stderr)
		}
	case <-ctx.Done():
		t.Fatalf("sub printed nothing; stderr:\n%s", stderr)
	}
}

// startSub starts mqtk sub with args, its stdout a pipe for the test to
// read and its stderr collected; it is killed when the test ends.
func startSub(t *testing.T, args ...string) (*exec.Cmd, io.Reader, *lockedBuffer) {
	t.Helper()
	cmd := exec.Command("mqtk", append([]string{"sub"}, args...)...)
	stderr := &lockedBuffer{}
	cmd.Stderr = stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	return cmd, stdout, stderr
}
