package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"mqtk/internal/broker"
	"mqtk/internal/brokertest"
)

// Ctrl-C during a run: the partial result is printed, marked interrupted,
// with what was measured so far, and mqtk exits 130.
func TestBenchInterrupted(t *testing.T) {
	b := brokertest.Start(t, broker.Config{})
	cmd := exec.Command("mqtk", "bench", "-p", fmt.Sprint(b.Port), "-i", "benchsig", "--qos", "1,2",
		"--publishers", "2", "--duration", "1h", "--warmup", "0", "--json")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	// The subscriber has acknowledged 200 QoS 1 deliveries: the run is measuring.
	if err := b.WaitDelivered(ctx, "benchsig-s0", 200); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if code := waitExit(t, cmd); code != 130 {
		t.Errorf("bench exited %d, want 130; stderr: %s", code, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("want a config line and one result (QoS 2 never ran), got %q", stdout.String())
	}
	var res struct {
		Type        string
		QoS         int
		Received    uint64
		Interrupted bool
	}
	if err := json.Unmarshal([]byte(lines[1]), &res); err != nil {
		t.Fatal(err)
	}
	if res.Type != "result" || res.QoS != 1 || !res.Interrupted || res.Received < 200 {
		t.Errorf("result %+v: want QoS 1, interrupted, at least the 200 deliveries seen", res)
	}
}
