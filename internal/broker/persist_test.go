package broker

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	"go.etcd.io/bbolt"

	"mqtk/internal/mqttc"
)

// These tests run the broker with PersistDir, stop it (Close) or "crash" it,
// start another on the same data and check what survived. A crash is
// simulated by copying the database file while the first broker still runs,
// and starting the next broker on the copy: every change is written before
// the hook that makes it returns, so the file holds what a kill -9 at that
// moment would leave. A copy can be made at an exact moment from a hook
// (persist_crash_test.go); cmd/mqtk/persist_test.go kills a real
// `mqtk broker --persist` process.

// waitLimit bounds every wait; it is a safety net against hangs, never a
// synchronisation.
const waitLimit = 30 * time.Second

func waitCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	t.Cleanup(cancel)
	return ctx
}

// testBroker is a broker and a probe hook whose events tests wait on.
type testBroker struct {
	*Server
	dir string
	cfg Config
	ep  mqttc.Endpoint

	closeOnce sync.Once
	closeErr  error

	mu      sync.Mutex
	changed chan struct{}
	events  map[string]int // "sub ID FILTER", "established ID", "gone ID", "queued ID", "acked ID", "expired TOPIC", "session-expired ID"
	probe   func(event byte, cl *mqtt.Client, pk packets.Packet)
}

func startPersist(t *testing.T, dir string) *testBroker {
	t.Helper()
	return startPersistCfg(t, Config{PersistDir: dir})
}

// startPersistCfg starts a broker with cfg (usually with a PersistDir) on
// an ephemeral loopback port.
func startPersistCfg(t *testing.T, cfg Config) *testBroker {
	t.Helper()
	b, err := startPersistErr(cfg)
	if err != nil {
		t.Fatalf("start broker on %s: %v", cfg.PersistDir, err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func startPersistErr(cfg Config) (*testBroker, error) {
	b := &testBroker{dir: cfg.PersistDir, cfg: cfg, changed: make(chan struct{}), events: map[string]int{}}
	cfg.Listen = []string{"127.0.0.1:0"}
	cfg.OnSubscribed = func(id, filter string) { b.count("sub " + id + " " + filter) }
	cfg.OnDelivered = func(id string) { b.count("acked " + id) }
	s, err := Start(cfg)
	if err != nil {
		return nil, err
	}
	b.Server = s
	if err := s.m.AddHook(&probeHook{b: b}, nil); err != nil {
		s.Close()
		return nil, err
	}
	var port int
	if _, err := fmt.Sscanf(s.URLs()[0], "mqtt://127.0.0.1:%d", &port); err != nil {
		s.Close()
		return nil, fmt.Errorf("address %s: %v", s.URLs()[0], err)
	}
	b.ep = mqttc.Endpoint{Scheme: "mqtt", Host: "127.0.0.1", Port: port}
	return b, nil
}

// Close stops the broker once (mochi's Close panics the second time).
func (b *testBroker) Close() error {
	b.closeOnce.Do(func() { b.closeErr = b.Server.Close() })
	return b.closeErr
}

func (b *testBroker) count(event string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.events[event]++
	close(b.changed)
	b.changed = make(chan struct{})
}

// wait blocks until event has happened n times since the broker started.
func (b *testBroker) wait(t *testing.T, event string, n int) {
	t.Helper()
	ctx := waitCtx(t)
	for {
		b.mu.Lock()
		got, ch := b.events[event], b.changed
		b.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-ch:
		case <-ctx.Done():
			t.Fatalf("waiting for %d of %q (have %d): %v", n, event, got, ctx.Err())
		}
	}
}

// probeHook reports when the broker has set up a client's session (after
// resending its queue), queued a message for it or finished with its
// connection, or expired a retained message or a session; and it lets a
// test act at the moment a packet has been written to a client
// (OnPacketSent) or a message queued for one (OnQosPublish, after the
// store's).
type probeHook struct {
	mqtt.HookBase
	b *testBroker
}

func (h *probeHook) ID() string { return "test-probe" }
func (h *probeHook) Provides(b byte) bool {
	switch b {
	case mqtt.OnSessionEstablished, mqtt.OnDisconnect, mqtt.OnRetainedExpired, mqtt.OnClientExpired,
		mqtt.OnPacketSent, mqtt.OnQosPublish:
		return true
	}
	return false
}
func (h *probeHook) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	h.b.count("established " + cl.ID)
}
func (h *probeHook) OnDisconnect(cl *mqtt.Client, err error, expire bool) {
	h.b.count("gone " + cl.ID)
}
func (h *probeHook) OnRetainedExpired(topic string)  { h.b.count("expired " + topic) }
func (h *probeHook) OnClientExpired(cl *mqtt.Client) { h.b.count("session-expired " + cl.ID) }
func (h *probeHook) OnPacketSent(cl *mqtt.Client, pk packets.Packet, _ []byte) {
	h.act(mqtt.OnPacketSent, cl, pk)
}
func (h *probeHook) OnQosPublish(cl *mqtt.Client, pk packets.Packet, _ int64, _ int) {
	if pk.FixedHeader.Type == packets.Publish && !pk.FixedHeader.Dup {
		h.b.count("queued " + cl.ID)
	}
	h.act(mqtt.OnQosPublish, cl, pk)
}
func (h *probeHook) act(event byte, cl *mqtt.Client, pk packets.Packet) {
	h.b.mu.Lock()
	fn := h.b.probe
	h.b.mu.Unlock()
	if fn != nil {
		fn(event, cl, pk)
	}
}

// onProbe makes fn run in the client's goroutine at the probe's events.
func (b *testBroker) onProbe(fn func(event byte, cl *mqtt.Client, pk packets.Packet)) {
	b.mu.Lock()
	b.probe = fn
	b.mu.Unlock()
}

// crashCopy returns a new directory holding the database as it is on disk
// now, which is what a kill -9 now would leave behind.
func crashCopy(t *testing.T, dir string) string {
	t.Helper()
	crashed := t.TempDir()
	if err := copyStore(dir, crashed); err != nil {
		t.Fatal(err)
	}
	return crashed
}

// copyStore copies the database in dir to dest; it may run in a hook.
func copyStore(dir, dest string) error {
	data, err := os.ReadFile(filepath.Join(dir, persistFile))
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dest, persistFile), data, 0o600)
}

// restart stops b (cleanly, or by crashing it) and starts a broker on what
// it left behind.
func restart(t *testing.T, b *testBroker, crash bool) *testBroker {
	t.Helper()
	dir := b.dir
	if crash {
		dir = crashCopy(t, b.dir)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	cfg := b.cfg
	cfg.PersistDir = dir
	return startPersistCfg(t, cfg)
}

// session is a test client.
type session struct {
	c    mqttc.Client
	msgs chan *mqttc.Message
}

// connect opens a session for id: persistent (clean start false, a session
// expiry of an hour) or clean.
func connect(t *testing.T, b *testBroker, id string, persistent bool) *session {
	t.Helper()
	return connectFn(t, b, id, persistent, nil)
}

// connectFn is connect with a function that sees each message before it is
// acknowledged (the acknowledgement waits for it to return).
func connectFn(t *testing.T, b *testBroker, id string, persistent bool, onMessage func(*mqttc.Message)) *session {
	t.Helper()
	cfg := mqttc.Config{ClientID: id, CleanStart: !persistent}
	if persistent {
		hour := uint32(3600)
		cfg.SessionExpiry = &hour
	}
	return dial(t, b, cfg, onMessage)
}

// dial connects with cfg (its endpoint and OnMessage are set here). Unless
// the broker is to assign the client identifier, it returns once the broker
// has set the session up, and so resent its queue.
func dial(t *testing.T, b *testBroker, cfg mqttc.Config, onMessage func(*mqttc.Message)) *session {
	t.Helper()
	established := b.eventCount("established " + cfg.ClientID)
	s := &session{msgs: make(chan *mqttc.Message, 1000)}
	cfg.Endpoint, cfg.KeepAlive = b.ep, 60
	cfg.OnMessage = func(m *mqttc.Message) {
		if onMessage != nil {
			onMessage(m)
		}
		s.msgs <- m
	}
	c, err := mqttc.Dial(waitCtx(t), cfg)
	if err != nil {
		t.Fatalf("connect %s: %v", cfg.ClientID, err)
	}
	s.c = c
	t.Cleanup(func() { c.Disconnect(context.Background()) })
	if cfg.ClientID != "" {
		b.wait(t, "established "+cfg.ClientID, established+1)
	}
	return s
}

func (s *session) subscribe(t *testing.T, b *testBroker, id, filter string, qos byte) {
	t.Helper()
	n := b.eventCount("sub " + id + " " + filter)
	if _, err := s.c.Subscribe(waitCtx(t), []mqttc.Subscription{{Filter: filter, QoS: qos}}, mqttc.SubscribeOptions{}); err != nil {
		t.Fatalf("subscribe %s: %v", filter, err)
	}
	b.wait(t, "sub "+id+" "+filter, n+1)
}

// disconnect ends the session's connection and waits until the broker has
// seen it go.
func (s *session) disconnect(t *testing.T, b *testBroker, id string) {
	t.Helper()
	n := b.eventCount("gone " + id)
	if err := s.c.Disconnect(waitCtx(t)); err != nil {
		t.Fatal(err)
	}
	b.wait(t, "gone "+id, n+1)
}

// eventually polls cond until it holds, for what no event reports.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	ctx := waitCtx(t)
	for !cond() {
		select {
		case <-time.After(time.Millisecond):
		case <-ctx.Done():
			t.Fatalf("waiting until %s: %v", what, ctx.Err())
		}
	}
}

func (b *testBroker) eventCount(event string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.events[event]
}

// receive returns the next message, failing the test if none comes.
func (s *session) receive(t *testing.T) *mqttc.Message {
	t.Helper()
	select {
	case m := <-s.msgs:
		return m
	case <-waitCtx(t).Done():
		t.Fatal("no message arrived")
		return nil
	}
}

func publish(t *testing.T, c mqttc.Client, m *mqttc.Message) {
	t.Helper()
	if err := c.Publish(waitCtx(t), m); err != nil {
		t.Fatalf("publish %s %q: %v", m.Topic, m.Payload, err)
	}
}

// publisher is a clean session that publishes and is gone at the end of the
// test.
func publisher(t *testing.T, b *testBroker) mqttc.Client {
	t.Helper()
	return connect(t, b, "", false).c
}

// expect receives the messages want, in order, and then a message
// published to endTopic after them, which shows that nothing else (such as
// a message sent twice) came in between.
func (s *session) expect(t *testing.T, b *testBroker, endTopic string, want []*mqttc.Message) {
	t.Helper()
	var got []*mqttc.Message
	for len(got) < len(want) {
		select {
		case m := <-s.msgs:
			got = append(got, m)
			continue
		case <-waitCtx(t).Done():
		}
		t.Fatalf("the subscriber got only\n%swant\n%s", describe(got), describe(want))
	}
	end := &mqttc.Message{Topic: endTopic, Payload: []byte("end"), QoS: 1}
	publish(t, publisher(t, b), end)
	got = append(got, s.receive(t))
	want = append(want, end)
	if describe(got) != describe(want) {
		t.Errorf("the subscriber got\n%swant\n%s", describe(got), describe(want))
	}
}

// received describes messages as "topic payload qN" lines.
func describe(ms []*mqttc.Message) string {
	var sb strings.Builder
	for _, m := range ms {
		fmt.Fprintf(&sb, "%s %s q%d\n", m.Topic, m.Payload, m.QoS)
	}
	return sb.String()
}

// storedKeys lists the keys in the database of a broker that has stopped.
func storedKeys(t *testing.T, dir string) []string {
	t.Helper()
	db, err := bbolt.Open(filepath.Join(dir, persistFile), 0o600, &bbolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatalf("open the store of a stopped broker: %v", err)
	}
	defer db.Close()
	var keys []string
	if err := db.View(func(tx *bbolt.Tx) error {
		return tx.ForEach(func(name []byte, bk *bbolt.Bucket) error {
			return bk.ForEach(func(k, _ []byte) error {
				keys = append(keys, string(name)+"/"+string(k))
				return nil
			})
		})
	}); err != nil {
		t.Fatal(err)
	}
	return keys
}

// TestPersistQueuedMessages: a persistent session (clean start false,
// session expiry, a QoS 1 or QoS 2 subscription) that is offline gets every
// QoS 1 and QoS 2 message published while it was away, before and after
// each of two restarts of the broker, once each, in publish order (the
// order of the queue, which the store keeps) and at the QoS of its
// subscription if lower, with its session present; its subscription was
// restored from the store, since messages published after the restart and
// before it reconnected reach it too.
func TestPersistQueuedMessages(t *testing.T) {
	for _, crash := range []bool{false, true} {
		for _, subQoS := range []byte{1, 2} {
			name := fmt.Sprintf("%s/subscribed-qos%d", map[bool]string{false: "restart", true: "crash"}[crash], subQoS)
			t.Run(name, func(t *testing.T) {
				b := startPersist(t, t.TempDir())
				const id = "queued-sub"
				sub := connect(t, b, id, true)
				sub.subscribe(t, b, id, "queue/#", subQoS)
				pub := publisher(t, b)
				publish(t, pub, &mqttc.Message{Topic: "queue/a", Payload: []byte("online"), QoS: 1})
				if m := sub.receive(t); string(m.Payload) != "online" {
					t.Fatalf("online subscriber got %q", m.Payload)
				}
				b.wait(t, "acked "+id, 1)
				sub.disconnect(t, b, id)

				var want []*mqttc.Message
				send := func(pub mqttc.Client, n int, phase string) {
					for i := 0; i < n; i++ {
						m := &mqttc.Message{Topic: fmt.Sprintf("queue/%s/%d", phase, i), Payload: []byte(fmt.Sprintf("%s-%d", phase, i)), QoS: byte(1 + i%2)}
						publish(t, pub, m)
						want = append(want, &mqttc.Message{Topic: m.Topic, Payload: m.Payload, QoS: min(m.QoS, subQoS)})
					}
				}
				send(pub, 15, "before")
				b = restart(t, b, crash)
				// The restored session numbers its messages from 1 again: the
				// first of these takes identifier 1, before all of the
				// others, and the second restart must still load it in its
				// place in the queue, not in identifier order.
				send(publisher(t, b), 15, "after")
				b = restart(t, b, crash)
				send(publisher(t, b), 5, "again")
				// A publish is acknowledged once it is queued (MQTK.md change
				// 26), so all are stored before the session resumes and are
				// resent with the stored queue (one queued during the
				// resumption comes after the queue: TestResumeWhilePublishing).
				b.wait(t, "queued "+id, 5)

				sub = connect(t, b, id, true)
				if !sub.c.Server().SessionPresent {
					t.Errorf("session present = false after the restart")
				}
				sub.expect(t, b, "queue/end", want)
			})
		}
	}
}

// TestPersistUnplacedRecord: a stored message without a place in the queue
// (OnQosPublish could not read it) is restored after the others, and like
// them may have been sent before the restart: it is resent with DUP 1.
// (It was restored with Set, as never sent, and came with DUP 0.)
func TestPersistUnplacedRecord(t *testing.T) {
	b := startPersist(t, t.TempDir())
	const id = "unplaced-sub"
	away(t, b, id, "unplaced/#", 1)
	pub := publisher(t, b)
	for _, p := range []string{"1", "2", "3"} {
		publish(t, pub, &mqttc.Message{Topic: "unplaced/x", Payload: []byte(p), QoS: 1})
	}
	b.wait(t, "queued "+id, 3)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	db, err := bbolt.Open(filepath.Join(b.dir, persistFile), 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	unplaced := 0
	err = db.Update(func(tx *bbolt.Tx) error {
		var key []byte
		var rec message
		clientRecords(tx, bInflight, id, func(k, v []byte) {
			var r message
			if json.Unmarshal(v, &r) == nil && string(r.Payload) == "2" {
				key, rec = append([]byte(nil), k...), r
				unplaced++
			}
		})
		if key == nil {
			return nil
		}
		rec.Seq = 0
		return put(tx, bInflight, key, rec)
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil || unplaced != 1 {
		t.Fatalf("taking the place of the stored message 2: %d records changed, %v", unplaced, err)
	}

	b = startPersistCfg(t, b.cfg)
	sub := connect(t, b, id, true)
	var got []string
	for range 3 {
		m := sub.receive(t)
		got = append(got, fmt.Sprintf("%s dup=%v", m.Payload, m.Dup))
	}
	if g, w := strings.Join(got, ", "), "1 dup=true, 3 dup=true, 2 dup=true"; g != w {
		t.Errorf("after the restart: got %s, want %s", g, w)
	}
}

// away gives b a persistent session id subscribed to filter at qos, and
// disconnects it: the session waits for its messages offline.
func away(t *testing.T, b *testBroker, id, filter string, qos byte) {
	t.Helper()
	sub := connect(t, b, id, true)
	sub.subscribe(t, b, id, filter, qos)
	sub.disconnect(t, b, id)
}
