package main

import (
	"context"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"

	"mqtk/internal/mqttc"
)

// TestBrokerPersistKill9: `mqtk broker --persist DIR` killed with SIGKILL
// while a publisher streams QoS 1 and 2 messages to an offline persistent
// session loses none that it acknowledged: started again on DIR, it gives
// the session every acknowledged message, in order and once each, and keeps
// the retained message. A second broker on DIR meanwhile fails at once.
func TestBrokerPersistKill9(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	start := func() (*brokerProc, mqttc.Endpoint) {
		p := startBroker(t, 1, "--listen", "127.0.0.1:0", "--persist", dir)
		go io.Copy(io.Discard, p.stderr)
		return p, endpoint(t, p.urls[0])
	}
	dial := func(ep mqttc.Endpoint, id string, persistent bool, onMessage func(*mqttc.Message)) mqttc.Client {
		t.Helper()
		cfg := mqttc.Config{Endpoint: ep, ClientID: id, CleanStart: !persistent, OnMessage: onMessage}
		if persistent {
			hour := uint32(3600)
			cfg.SessionExpiry = &hour
		}
		c, err := mqttc.Dial(ctx, cfg)
		if err != nil {
			t.Fatalf("connect %s: %v", id, err)
		}
		t.Cleanup(func() { c.Disconnect(context.Background()) })
		return c
	}

	p, ep := start()
	sub := dial(ep, "k9-sub", true, nil)
	if _, err := sub.Subscribe(ctx, []mqttc.Subscription{{Filter: "k9/#", QoS: 2}}, mqttc.SubscribeOptions{}); err != nil {
		t.Fatal(err)
	}
	sub.Disconnect(ctx)
	pub := dial(ep, "k9-pub", false, nil)
	if err := pub.Publish(ctx, &mqttc.Message{Topic: "k9-retained", Payload: []byte("kept"), QoS: 1, Retain: true}); err != nil {
		t.Fatal(err)
	}

	// Stream messages without waiting for their acknowledgements, and kill
	// the broker as soon as some are acknowledged, while it is busy with the
	// rest of the stream.
	const n, killAt = 2000, 300
	var mu sync.Mutex
	isAcked := make([]bool, n)
	count := 0
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		pd, err := pub.PublishAsync(ctx, &mqttc.Message{Topic: "k9/q", Payload: []byte(fmt.Sprint(i)), QoS: byte(1 + i%2)})
		if err != nil {
			break // the broker is gone
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if pd.Wait(ctx) != nil {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			isAcked[i] = true
			if count++; count == killAt {
				_ = p.cmd.Process.Kill()
			}
		}()
	}
	wg.Wait()
	waitExit(t, p.cmd)
	var acked []int // in publish order
	for i, ok := range isAcked {
		if ok {
			acked = append(acked, i)
		}
	}
	if len(acked) < killAt {
		t.Fatalf("only %d messages were acknowledged", len(acked))
	}
	t.Logf("%d of %d messages acknowledged, the last %d", len(acked), n, acked[len(acked)-1])

	p, ep = start()
	// (CommandContext only bounds the wait, should the second one run.)
	out, err := exec.CommandContext(ctx, "mqtk", "broker", "--listen", "127.0.0.1:0", "--persist", dir).CombinedOutput()
	if code := exitCode(t, err); code == 0 || !strings.Contains(string(out), "in use by another broker") {
		t.Errorf("a second broker on the same directory: exit %d, %q", code, out)
	}

	got := make(chan string, n+10)
	sub = dial(ep, "k9-sub", true, func(m *mqttc.Message) { got <- string(m.Payload) })
	if !sub.Server().SessionPresent {
		t.Error("session present = false after the kill")
	}
	// Every acknowledged message arrives, in order, once; messages the
	// broker stored but did not acknowledge may come among them.
	last := -1
	for len(acked) > 0 {
		select {
		case m := <-got:
			var k int
			if _, err := fmt.Sscan(m, &k); err != nil || k <= last {
				t.Fatalf("got message %q after message %d", m, last)
			}
			if k > acked[0] {
				t.Fatalf("got message %d, but acknowledged message %d is missing", k, acked[0])
			}
			if k == acked[0] {
				acked = acked[1:]
			}
			last = k
		case <-ctx.Done():
			t.Fatalf("acknowledged message %d never came (the last was %d)", acked[0], last)
		}
	}

	retained := make(chan *mqttc.Message, 1)
	reader := dial(ep, "k9-reader", false, func(m *mqttc.Message) { retained <- m })
	if _, err := reader.Subscribe(ctx, []mqttc.Subscription{{Filter: "k9-retained", QoS: 1}}, mqttc.SubscribeOptions{}); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-retained:
		if string(m.Payload) != "kept" || !m.Retain {
			t.Errorf("retained message after the kill: %q retain=%v", m.Payload, m.Retain)
		}
	case <-ctx.Done():
		t.Fatal("the retained message was lost")
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := waitExit(t, p.cmd); code != 0 {
		t.Errorf("broker exit code %d after SIGTERM", code)
	}
}
