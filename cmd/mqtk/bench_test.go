package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"mqtk/internal/broker"
	"mqtk/internal/brokertest"
)

// onlyQoS1Result decodes into res the one result of a --qos 1,2 --json run
// that stopped during QoS 1: out must be the config line and that result.
func onlyQoS1Result(t *testing.T, out string, res any) {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		t.Fatalf("want a config line and one result (QoS 2 never ran), got %q", out)
	}
	if err := json.Unmarshal([]byte(lines[1]), res); err != nil {
		t.Fatal(err)
	}
}

// startMeasuring starts `mqtk bench --qos 1,2 --json` with the client IDs
// ID-… against b and returns once its subscriber has acknowledged 200 QoS 1
// deliveries: the run is measuring.
func startMeasuring(t *testing.T, b *brokertest.Broker, id string, args ...string) (*exec.Cmd, *bytes.Buffer, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command("mqtk", append([]string{"bench", "-p", fmt.Sprint(b.Port), "-i", id, "--qos", "1,2",
		"--publishers", "2", "--warmup", "0", "--json"}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if err := b.WaitDelivered(ctx, id+"-s0", 200); err != nil {
		t.Fatal(err)
	}
	return cmd, &stdout, &stderr
}

// Ctrl-C during a run: the partial result is printed, marked interrupted,
// with what was measured so far, and mqtk exits 130.
func TestBenchInterrupted(t *testing.T) {
	b := brokertest.Start(t, broker.Config{})
	cmd, stdout, stderr := startMeasuring(t, b, "benchsig", "--duration", "1h")
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if code := waitExit(t, cmd); code != 130 {
		t.Errorf("bench exited %d, want 130; stderr: %s", code, stderr.String())
	}
	var res struct {
		Type        string
		QoS         int
		Received    uint64
		Interrupted bool
	}
	onlyQoS1Result(t, stdout.String(), &res)
	if res.Type != "result" || res.QoS != 1 || !res.Interrupted || res.Received < 200 {
		t.Errorf("result %+v: want QoS 1, interrupted, at least the 200 deliveries seen", res)
	}
}

// The broker goes away during the first of two levels: the report of that
// level is printed in full, with the messages it never sent counted, the
// second level is not run, and mqtk says why on one line and exits 3.
// It used to exit 0 when that was the last level, and 3 from the next
// level's connect otherwise.
func TestBenchBrokerLost(t *testing.T) {
	b := brokertest.Start(t, broker.Config{})
	cmd, stdout, stderr := startMeasuring(t, b, "benchlost", "--messages", "1000000")
	b.Close()
	if code := waitExit(t, cmd); code != 3 {
		t.Errorf("bench exited %d, want 3; stderr: %s", code, stderr.String())
	}
	if msg := stderr.String(); strings.Count(msg, "\n") != 1 || !strings.HasPrefix(msg, "mqtk: QoS 1 run failed: ") ||
		!strings.Contains(msg, "planned messages never sent") {
		t.Errorf("stderr %q: want one line naming the QoS 1 run's failure and what it never sent", msg)
	}
	var res struct {
		Type     string
		QoS      int
		Sent     uint64
		Received uint64
		Unsent   uint64
		Errors   map[string]uint64
	}
	onlyQoS1Result(t, stdout.String(), &res)
	if res.Type != "result" || res.QoS != 1 || res.Received < 200 || res.Sent+res.Unsent != 2_000_000 || len(res.Errors) == 0 {
		t.Errorf("result %+v: want QoS 1, at least 200 received, sent + unsent = 2,000,000, the errors counted", res)
	}
}

// TestBenchEmbeddedBrokerWarns: bench --embedded shows its broker's
// warnings, here that it cannot accept the bench's clients for lack of file
// descriptors, which is why the run then fails.
func TestBenchEmbeddedBrokerWarns(t *testing.T) {
	// The clients' connect timeout is what ends the run; the broker meets
	// the limit as soon as it tries to accept them, within it by far.
	cmd := exec.Command("sh", "-c", "ulimit -n 40 && exec mqtk bench --embedded --subscribers 30 --duration 1s --no-progress --connect-timeout 5")
	out, err := cmd.CombinedOutput()
	if code := exitCode(t, err); code != 3 {
		t.Fatalf("exit %d, want 3 (a client got no CONNACK); output:\n%s", code, out)
	}
	if !regexp.MustCompile(`(?m)^time=\S+ level=WARN msg="cannot accept connections: out of file descriptors \(raise the limit, e\.g\. ulimit -n\); they wait until some are free" from="embedded broker" listener=\S+ error=`).Match(out) {
		t.Errorf("no warning from the embedded broker; output:\n%s", out)
	}
}
