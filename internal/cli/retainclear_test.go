package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"mqtk/internal/broker"
	"mqtk/internal/brokertest"
	"mqtk/internal/mqttc"
	"mqtk/internal/retain"
)

// retainTestLimit bounds every wait in these tests; it is a safety net
// against hangs, never a synchronisation.
const retainTestLimit = 30 * time.Second

// retainAll publishes "v" retained to each topic.
func retainAll(t *testing.T, b *brokertest.Broker, topics ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), retainTestLimit)
	defer cancel()
	c, err := mqttc.Dial(ctx, mqttc.Config{Endpoint: mqttc.Endpoint{Scheme: "mqtt", Host: b.Host, Port: b.Port}, ClientID: "filler", CleanStart: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Disconnect(ctx)
	for _, tp := range topics {
		if err := c.Publish(ctx, &mqttc.Message{Topic: tp, Payload: []byte("v"), QoS: 1, Retain: true}); err != nil {
			t.Fatal(err)
		}
	}
}

// retainedTopics lists what the broker holds under filter, as
// `retain-clear --dry-run` prints it.
func retainedTopics(t *testing.T, b *brokertest.Broker, filter string) string {
	t.Helper()
	a, stdout, stderr := testApp("", nil)
	if code := a.Run(context.Background(), []string{"retain-clear", "-p", fmt.Sprint(b.Port), "-t", filter, "--dry-run"}); code != 0 {
		t.Fatalf("dry run: exit %d: %s", code, stderr)
	}
	return stdout.String()
}

// TestRetainClearConfirm answers the question on a terminal: yes clears,
// anything else (or no answer) clears nothing and exits 1.
func TestRetainClearConfirm(t *testing.T) {
	for _, tc := range []struct {
		answer   string
		code     int
		stderr   string
		retained string
	}{
		{"y\n", 0, "cleared 2 retained messages under 'c/#' (excluded 1)\n", "c/keep\n"},
		{"YES\n", 0, "cleared 2 retained messages under 'c/#' (excluded 1)\n", "c/keep\n"},
		{"n\n", 1, "mqtk: nothing cleared\n", "c/1\nc/2\nc/keep\n"},
		{"\n", 1, "mqtk: nothing cleared\n", "c/1\nc/2\nc/keep\n"},
		{"", 1, "\nmqtk: nothing cleared\n", "c/1\nc/2\nc/keep\n"},
	} {
		t.Run(fmt.Sprintf("%q", tc.answer), func(t *testing.T) {
			t.Parallel()
			b := brokertest.Start(t, broker.Config{})
			retainAll(t, b, "c/1", "c/2", "c/keep")
			a, stdout, stderr := testApp(tc.answer, nil)
			a.IO.SetTTY(true, nil)
			a.IO.NoColor = true
			code := a.Run(context.Background(), []string{"retain-clear", "-p", fmt.Sprint(b.Port), "-t", "c/#", "-T", "c/keep"})
			if code != tc.code {
				t.Errorf("exit %d, want %d: %s", code, tc.code, stderr)
			}
			want := "  c/1\n  c/2\nclear 2 retained messages under 'c/#' (excluding 'c/keep')? [y/N] " + tc.stderr
			if got := stripProgress(stderr.String()); got != want {
				t.Errorf("stderr:\n%q\nwant\n%q", got, want)
			}
			if stdout.Len() > 0 {
				t.Errorf("stdout: %q", stdout)
			}
			if got := retainedTopics(t, b, "c/#"); got != tc.retained {
				t.Errorf("retained afterwards:\n%s\nwant\n%s", got, tc.retained)
			}
		})
	}
}

// stripProgress removes what the progress line draws (it appears on a
// terminal once a run has lasted half a second): each text after a
// "clear the line" sequence that is overwritten before its line ends.
func stripProgress(s string) string {
	segs := strings.Split(s, "\r\033[K")
	var b strings.Builder
	b.WriteString(segs[0])
	for i, seg := range segs[1:] {
		if !strings.Contains(seg, "\n") && i+2 < len(segs) {
			continue
		}
		b.WriteString(seg)
	}
	return b.String()
}

// syncBuffer is a stderr that tests can wait on.
type syncBuffer struct {
	mu      sync.Mutex
	b       bytes.Buffer
	changed chan struct{}
}

func newSyncBuffer() *syncBuffer { return &syncBuffer{changed: make(chan struct{})} }

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, err := s.b.Write(p)
	close(s.changed)
	s.changed = make(chan struct{})
	return n, err
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitFor blocks until the buffer holds n occurrences of sub.
func (s *syncBuffer) waitFor(t *testing.T, sub string, n int) {
	t.Helper()
	limit := time.After(retainTestLimit)
	for {
		s.mu.Lock()
		got, ch := strings.Count(s.b.String(), sub), s.changed
		s.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-ch:
		case <-limit:
			t.Fatalf("no %d× %q in:\n%s", n, sub, s.String())
		}
	}
}

// TestRetainClearLaterPass publishes a retained message once the first
// collection is over (while retain-clear asks): the check after clearing
// finds it, asks again on the terminal, and clears it in a second pass.
func TestRetainClearLaterPass(t *testing.T) {
	b := brokertest.Start(t, broker.Config{})
	retainAll(t, b, "p/old")
	inR, inW := io.Pipe()
	defer inW.Close()
	a, _, _ := testApp("", nil)
	stderr := newSyncBuffer()
	a.IO.In, a.IO.Err = inR, stderr
	a.IO.SetTTY(true, nil)
	a.IO.NoColor = true
	code := make(chan int, 1)
	go func() {
		code <- a.Run(context.Background(), []string{"retain-clear", "-p", fmt.Sprint(b.Port), "-t", "p/#"})
	}()
	stderr.waitFor(t, "? [y/N] ", 1)
	retainAll(t, b, "p/new")
	io.WriteString(inW, "y\n")
	stderr.waitFor(t, "? [y/N] ", 2)
	io.WriteString(inW, "y\n")
	select {
	case c := <-code:
		if c != 0 {
			t.Errorf("exit %d: %s", c, stderr)
		}
	case <-time.After(retainTestLimit):
		t.Fatal("retain-clear did not exit")
	}
	want := "  p/old\nclear 1 retained message under 'p/#'? [y/N] " +
		"  p/new\nthe check found 1 more retained message under 'p/#' (not sent by the broker at first, or retained since); clear them too? [y/N] " +
		"cleared 2 retained messages under 'p/#' in 2 passes\n"
	if got := stripProgress(stderr.String()); got != want {
		t.Errorf("stderr:\n%q\nwant\n%q", got, want)
	}
	if got := retainedTopics(t, b, "p/#"); got != "" {
		t.Errorf("still retained: %q", got)
	}
}

// TestRetainClearInterruptedAtPrompt: Ctrl-C while asking clears nothing
// and exits 130.
func TestRetainClearInterruptedAtPrompt(t *testing.T) {
	b := brokertest.Start(t, broker.Config{})
	retainAll(t, b, "i/1")
	inR, inW := io.Pipe()
	defer inW.Close()
	a, _, _ := testApp("", nil)
	stderr := newSyncBuffer()
	a.IO.In, a.IO.Err = inR, stderr
	a.IO.SetTTY(true, nil)
	a.IO.NoColor = true
	ctx, cancel := context.WithCancelCause(context.Background())
	code := make(chan int, 1)
	go func() {
		code <- a.Run(ctx, []string{"retain-clear", "-p", fmt.Sprint(b.Port), "-t", "i/#"})
	}()
	stderr.waitFor(t, "? [y/N] ", 1)
	cancel(errInterrupted)
	if c := <-code; c != ExitInterrupted {
		t.Errorf("exit %d, want %d: %s", c, ExitInterrupted, stderr)
	}
	if !strings.HasSuffix(stderr.String(), "? [y/N] \nmqtk: interrupted; nothing cleared\n") {
		t.Errorf("stderr: %q", stderr)
	}
	if got := retainedTopics(t, b, "i/#"); got != "i/1\n" {
		t.Errorf("retained afterwards: %q", got)
	}
}

// TestRetainClearMessages checks the final line and exit code of every
// kind of ending.
func TestRetainClearMessages(t *testing.T) {
	rejected := &mqttc.RejectedError{Op: "publish", Topic: "s/x", Code: 0x87}
	timeout := &timeoutExpired{d: 2 * time.Second}
	under := "under 's/#'"
	for _, tc := range []struct {
		name   string
		rep    retain.Report
		err    error
		dryRun bool
		msg    string
		code   int
	}{
		{"all", retain.Report{Passes: 1, Found: 1204, Cleared: 1204, Excluded: 3, Done: true}, nil, false,
			"cleared 1,204 retained messages under 's/#' (excluded 3)", 0},
		{"one", retain.Report{Passes: 1, Found: 1, Cleared: 1, Done: true}, nil, false,
			"cleared 1 retained message under 's/#'", 0},
		{"passes", retain.Report{Passes: 3, Found: 10000, Cleared: 10000, Done: true}, nil, false,
			"cleared 10,000 retained messages under 's/#' in 3 passes", 0},
		{"none", retain.Report{Done: true, Excluded: 2}, nil, false,
			"no retained messages under 's/#' (excluded 2)", 0},
		{"dry run", retain.Report{Passes: 1, Found: 7, Done: true}, nil, true,
			"found 7 retained messages under 's/#'; nothing cleared (--dry-run)", 0},
		{"rejected", retain.Report{Passes: 1, Found: 4, Cleared: 2, Rejected: 2, FirstRejected: rejected, Done: true}, nil, false,
			"cleared 2 of 4 retained messages under 's/#'; the broker refused 2", ExitRejected},
		{"retained again", retain.Report{Passes: 1, Found: 2, Cleared: 2, StillRetained: 1, Done: true}, nil, false,
			"cleared 2 retained messages under 's/#'; 1 retained again after it was cleared", ExitError},
		{"still retained, MQTT 3.1.1", retain.Report{Passes: 1, Found: 2, Cleared: 2, StillRetained: 2, Protocol: mqttc.V311, Done: true}, nil, false,
			"cleared 2 retained messages under 's/#'; 2 still retained after their clears were acknowledged (with MQTT 3.1.1 the broker may have dropped the clears, as for a topic its ACL does not let us write, or a publisher retained them again)", ExitError},
		{"rejected and retained again", retain.Report{Passes: 1, Found: 3, Cleared: 2, Rejected: 1, StillRetained: 2, FirstRejected: rejected, Done: true}, nil, false,
			"cleared 2 of 3 retained messages under 's/#'; the broker refused 1; 2 retained again after they were cleared", ExitRejected},
		{"declined", retain.Report{Passes: 1, Found: 3, Declined: 3, Done: true}, nil, false,
			"nothing cleared", ExitError},
		{"declined later", retain.Report{Passes: 2, Found: 5, Cleared: 3, Declined: 2, Done: true}, nil, false,
			"cleared 3 of 5 retained messages under 's/#'; 2 more found afterwards left as they were", ExitError},
		{"timeout collecting", retain.Report{}, timeout, false,
			"-W/--timeout 2s expired; nothing cleared", ExitTimeout},
		{"timeout dry run", retain.Report{}, timeout, true,
			"-W/--timeout 2s expired", ExitTimeout},
		{"timeout clearing", retain.Report{Passes: 1, Found: 100, Cleared: 40, Unconfirmed: 20}, timeout, false,
			"-W/--timeout 2s expired; cleared 40 of 100 retained messages under 's/#'; 20 sent but not confirmed", ExitTimeout},
		{"timeout checking", retain.Report{Passes: 1, Found: 100, Cleared: 100}, timeout, false,
			"-W/--timeout 2s expired; cleared 100 retained messages under 's/#'; the check afterwards did not finish", ExitTimeout},
		{"interrupted", retain.Report{Passes: 1, Found: 100, Cleared: 40}, errInterrupted, false,
			"interrupted; cleared 40 of 100 retained messages under 's/#'", ExitInterrupted},
		{"connection lost", retain.Report{Passes: 1, Found: 10, Cleared: 4, Unconfirmed: 3},
			&mqttc.NetError{Op: "publish", Addr: "mqtt://h:1883", Err: errors.New("EOF")}, false,
			"publish mqtt://h:1883: EOF; cleared 4 of 10 retained messages under 's/#'; 3 sent but not confirmed", ExitNetwork},
		{"pass limit", retain.Report{Passes: 20, Found: 21, Cleared: 20}, &retain.PassLimitError{Passes: 20, Left: 1}, false,
			"stopped after 20 passes: each check found retained messages that were not there before, 1 the last time (something keeps retaining new topics); cleared 20 of 21 retained messages under 's/#'", ExitError},
		{"pass limit, some refused", retain.Report{Passes: 20, Found: 22, Cleared: 20, Rejected: 1, FirstRejected: rejected}, &retain.PassLimitError{Passes: 20, Left: 1}, false,
			"stopped after 20 passes: each check found retained messages that were not there before, 1 the last time (something keeps retaining new topics); cleared 20 of 22 retained messages under 's/#'; the broker refused 1", ExitRejected},
		{"subscription refused", retain.Report{}, &mqttc.RejectedError{Op: "subscribe", Topic: "s/#", Code: 0x87}, false,
			`subscribe "s/#": broker rejected it: not authorized (0x87); nothing cleared`, ExitRejected},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := retainClearOutcome(tc.rep, tc.err, tc.dryRun, under)
			var got string
			if err != nil {
				got = err.Error()
			} else {
				got = retainClearReport(tc.rep, tc.dryRun, under)
			}
			if got != tc.msg {
				t.Errorf("message\n%q\nwant\n%q", got, tc.msg)
			}
			if c := exitCode(err); c != tc.code {
				t.Errorf("exit %d, want %d", c, tc.code)
			}
		})
	}
}

func TestQuoteList(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want string
	}{
		{[]string{"#"}, "'#'"},
		{[]string{"a/#", "b/+"}, "'a/#' and 'b/+'"},
		{[]string{"a", "b", "c"}, "'a', 'b' and 'c'"},
	} {
		if got := quoteList(tc.in); got != tc.want {
			t.Errorf("quoteList(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestRetainProgress: the progress line is drawn on a terminal only, once
// a run has lasted half a second, and cleared before any other line.
func TestRetainProgress(t *testing.T) {
	var b bytes.Buffer
	p := &retainProgress{line: statusLine{w: &b, on: true}, on: true, under: "under 's/#'", start: time.Now(), done: make(chan struct{})}
	p.set(retain.Progress{Phase: retain.Collecting, Pass: 1, Done: 12})
	p.draw()
	if b.Len() != 0 {
		t.Fatalf("drawn before half a second: %q", b.String())
	}
	p.start = time.Now().Add(-time.Second)
	p.draw()
	p.set(retain.Progress{Phase: retain.Clearing, Pass: 1, Done: 1500, Total: 10000})
	p.draw()
	p.println("mqtk: not cleared: s/x: not authorized (0x87)")
	p.set(retain.Progress{Phase: retain.Checking, Pass: 2, Done: 3})
	p.draw()
	p.stop()
	want := "\r\033[Kcollecting retained messages under 's/#': 12 found" +
		"\r\033[Kpass 1: clearing 1,500 of 10,000" +
		"\r\033[Kmqtk: not cleared: s/x: not authorized (0x87)\n" +
		"\r\033[Kpass 2: checking under 's/#': 3 retained" +
		"\r\033[K"
	if b.String() != want {
		t.Errorf("got\n%q\nwant\n%q", b.String(), want)
	}

	// Not a terminal: no drawing at all, lines as they are.
	b.Reset()
	off := newRetainProgress(&b, false, "under 's/#'")
	off.start = time.Now().Add(-time.Second)
	off.set(retain.Progress{Phase: retain.Collecting, Done: 1})
	off.draw()
	off.println("line")
	off.stop()
	if b.String() != "line\n" {
		t.Errorf("off: %q", b.String())
	}
}
