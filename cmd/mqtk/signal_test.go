package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"mqtk/internal/broker"
	"mqtk/internal/brokertest"
	"mqtk/internal/mqttc"
	"mqtk/internal/proxytest"
)

// These tests run the real mqtk program (installed in $PATH by TestMain) and
// send it real signals.

func exitCode(t *testing.T, err error) int {
	t.Helper()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0
}

func waitExit(t *testing.T, cmd *exec.Cmd) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return exitCode(t, err)
	case <-time.After(waitLimit):
		_ = cmd.Process.Kill()
		t.Fatalf("%v did not exit", cmd.Args)
		return -1
	}
}

// TestBrokerExitsOnSignal: `mqtk broker` prints its address, accepts
// clients, and exits 0 on SIGTERM or SIGINT even with a client connected
// and a socket that never sent CONNECT.
func TestBrokerExitsOnSignal(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			cmd := exec.Command("mqtk", "broker", "--port", "0")
			stderr, err := cmd.StderrPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			line, err := bufio.NewReader(stderr).ReadString('\n')
			if err != nil {
				t.Fatalf("read broker output: %v", err)
			}
			go io.Copy(io.Discard, stderr)
			var host string
			var port int
			if _, err := fmt.Sscanf(strings.TrimPrefix(line, "listening on mqtt://"), "127.0.0.1:%d", &port); err != nil {
				t.Fatalf("first line %q: %v", line, err)
			}
			host = "127.0.0.1"
			silent, err := net.Dial("tcp", net.JoinHostPort(host, fmt.Sprint(port)))
			if err != nil {
				t.Fatal(err)
			}
			defer silent.Close()
			c, err := mqttc.Dial(context.Background(), mqttc.Config{Endpoint: mqttc.Endpoint{Scheme: "mqtt", Host: host, Port: port}, ClientID: "stay", CleanStart: true})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Disconnect(context.Background())
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			if code := waitExit(t, cmd); code != 0 {
				t.Errorf("broker exited %d after %v, want 0", code, sig)
			}
		})
	}
}

// TestSubExitsZeroOnSignal: Ctrl-C ends a subscription normally, exit 0,
// with what was received printed.
func TestSubExitsZeroOnSignal(t *testing.T) {
	b := brokertest.Start(t, broker.Config{})
	cmd := exec.Command("mqtk", "sub", "-p", fmt.Sprint(b.Port), "-t", "sig/sub", "-v")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if err := b.WaitSubscribed(ctx, "sig/sub", 1); err != nil {
		t.Fatal(err)
	}
	pub := exec.Command("mqtk", "pub", "-p", fmt.Sprint(b.Port), "-t", "sig/sub", "-m", "before ctrl-c", "-q", "1")
	if msg, err := pub.CombinedOutput(); err != nil {
		t.Fatalf("pub: %v: %s", err, msg)
	}
	r := bufio.NewReader(stdout)
	line, err := r.ReadString('\n')
	if err != nil || line != "sig/sub before ctrl-c\n" {
		t.Fatalf("sub printed %q, %v", line, err)
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	rest, _ := io.ReadAll(r)
	if code := waitExit(t, cmd); code != 0 {
		t.Errorf("sub exited %d, want 0", code)
	}
	if len(rest) != 0 {
		t.Errorf("sub printed more: %q", rest)
	}
}

// TestPubLinesSignal: `mqtk pub -l` interrupted by SIGINT has published the
// lines it read and exits 130.
func TestPubLinesSignal(t *testing.T) {
	b := brokertest.Start(t, broker.Config{})
	got := payloads(t, b, "lines-sub", "sig/lines", 1)
	cmd, stdin, _ := startFed(t, "pub", "-p", fmt.Sprint(b.Port), "-t", "sig/lines", "-l", "-q", "1")
	if _, err := io.WriteString(stdin, "first\nsecond\n"); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"first", "second"} {
		select {
		case m := <-got:
			if m != want {
				t.Fatalf("got %q, want %q", m, want)
			}
		case <-time.After(waitLimit):
			t.Fatalf("%q never arrived", want)
		}
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if code := waitExit(t, cmd); code != 130 {
		t.Errorf("pub -l exited %d after SIGINT, want 130", code)
	}
}

// TestSubConnectionLostExits3: with --no-reconnect a lost connection exits 3.
func TestSubConnectionLostExits3(t *testing.T) {
	b := brokertest.Start(t, broker.Config{})
	cmd := exec.Command("mqtk", "sub", "-p", fmt.Sprint(b.Port), "-t", "lost/x", "-i", "lost-1", "--no-reconnect")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if err := b.WaitSubscribed(ctx, "lost/x", 1); err != nil {
		t.Fatal(err)
	}
	if !b.Disconnect("lost-1") {
		t.Fatal("client lost-1 is not connected")
	}
	if code := waitExit(t, cmd); code != 3 {
		t.Errorf("sub exited %d after losing its connection, want 3", code)
	}
}

// TestSubInterruptedWhileReconnecting: Ctrl-C while sub waits for a
// reconnection's CONNACK ends it as Ctrl-C ends any subscription: exit 0,
// and no "reconnect failed" line about the interrupted attempt.
func TestSubInterruptedWhileReconnecting(t *testing.T) {
	b := brokertest.Start(t, broker.Config{})
	firstConn := make(chan net.Conn, 1)
	second := make(chan struct{}, 1)
	var conns atomic.Int32
	p := proxytest.Start(t, proxytest.Options{Kind: "custom", Target: fmt.Sprintf("127.0.0.1:%d", b.Port),
		Serve: func(p *proxytest.Proxy, c net.Conn) {
			if conns.Add(1) == 1 {
				firstConn <- c
				_ = p.Tunnel(c, c, nil) // the broker, the first time
				return
			}
			select { // then a broker that never answers
			case second <- struct{}{}:
			default:
			}
			_, _ = io.Copy(io.Discard, c)
		}})
	cmd := exec.Command("mqtk", "sub", "-p", fmt.Sprint(p.Port), "-t", "sig/re", "--reconnect-delay", "0.05")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if err := b.WaitSubscribed(ctx, "sig/re", 1); err != nil {
		t.Fatal(err)
	}
	// A message through: the subscription is acknowledged and in use.
	pub := exec.Command("mqtk", "pub", "-p", fmt.Sprint(b.Port), "-t", "sig/re", "-m", "first", "-q", "1")
	if msg, err := pub.CombinedOutput(); err != nil {
		t.Fatalf("pub: %v: %s", err, msg)
	}
	if line, err := bufio.NewReader(stdout).ReadString('\n'); line != "first\n" {
		t.Fatalf("sub printed %q, %v", line, err)
	}
	go io.Copy(io.Discard, stdout)
	(<-firstConn).Close() // the connection is lost
	select {
	case <-second:
	case <-ctx.Done():
		t.Fatal("sub did not reconnect") // (stderr is still being written: not read here)
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if code := waitExit(t, cmd); code != 0 {
		t.Errorf("sub exited %d, want 0; stderr:\n%s", code, &stderr)
	}
	if !strings.Contains(stderr.String(), "reconnecting in") || strings.Contains(stderr.String(), "reconnect failed") {
		t.Errorf("stderr:\n%s\nwant the lost connection, and no failed reconnect", &stderr)
	}
}

// TestSubClosedPipe: when the reader of sub's output goes away (mqtk sub |
// head -1), sub ends as with -C: DISCONNECT (so no will is published) and
// exit 0, as mosquitto_sub does; not killed by SIGPIPE (exit 141).
func TestSubClosedPipe(t *testing.T) {
	b := brokertest.Start(t, broker.Config{})
	cmd := exec.Command("mqtk", "sub", "-p", fmt.Sprint(b.Port), "-t", "pipe/x", "-d", "-i", "piper",
		"--will-topic", "pipe/died", "--will-payload", "gone")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if err := b.WaitSubscribed(ctx, "pipe/x", 1); err != nil {
		t.Fatal(err)
	}
	publish := func(m string) {
		t.Helper()
		if out, err := exec.Command("mqtk", "pub", "-p", fmt.Sprint(b.Port), "-t", "pipe/x", "-m", m, "-q", "1").CombinedOutput(); err != nil {
			t.Fatalf("pub: %v: %s", err, out)
		}
	}
	publish("first")
	if line, err := bufio.NewReader(stdout).ReadString('\n'); line != "first\n" {
		t.Fatalf("sub printed %q, %v", line, err)
	}
	stdout.Close() // the reader goes away, as head -1 does
	publish("second")
	if code := waitExit(t, cmd); code != 0 {
		t.Errorf("sub exited %d, want 0; stderr:\n%s", code, &stderr)
	}
	if !strings.Contains(stderr.String(), "sending DISCONNECT") || strings.Contains(stderr.String(), "mqtk:") {
		t.Errorf("stderr:\n%s\nwant a DISCONNECT and no error", &stderr)
	}
}
