package bench_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"mqtk/internal/bench"
	"mqtk/internal/broker"
	"mqtk/internal/brokertest"
	"mqtk/internal/mqttc"
)

// fakeBroker is a broker at the mqttc.Client level that drops, duplicates
// and reorders what it forwards, on purpose, to check that a run counts
// exactly that. Every publish is acknowledged at once.
type fakeBroker struct {
	mu   sync.Mutex
	subs []func(*mqttc.Message)
	n    map[string]int // publishes seen per topic
	held map[string]*mqttc.Message
	// drop, dup and swap decide the fate of the k-th publish (from 0) on a
	// topic; swap holds it back and delivers it after the next one.
	drop, dup, swap func(k int) bool
}

func (f *fakeBroker) dial(_ context.Context, cfg mqttc.Config) (mqttc.Client, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if cfg.OnMessage != nil {
		f.subs = append(f.subs, cfg.OnMessage)
	}
	return &fakeClient{f: f, done: make(chan struct{})}, nil
}

func (f *fakeBroker) publish(m *mqttc.Message) {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := f.n[m.Topic]
	f.n[m.Topic]++
	deliver := func(m *mqttc.Message) {
		for _, s := range f.subs {
			c := *m
			c.Payload = append([]byte(nil), m.Payload...)
			c.Received = time.Now()
			s(&c)
		}
	}
	switch {
	case f.drop(k):
		return
	case f.swap(k) && f.held[m.Topic] == nil:
		c := *m
		c.Payload = append([]byte(nil), m.Payload...)
		f.held[m.Topic] = &c
		return
	}
	deliver(m)
	if h := f.held[m.Topic]; h != nil {
		delete(f.held, m.Topic)
		deliver(h)
	}
	if f.dup(k) {
		deliver(m)
	}
}

type fakeClient struct {
	f    *fakeBroker
	done chan struct{}
	once sync.Once
}

type acked struct{}

func (acked) Wait(context.Context) error { return nil }

func (c *fakeClient) Publish(ctx context.Context, m *mqttc.Message) error {
	c.f.publish(m)
	return nil
}
func (c *fakeClient) PublishAsync(ctx context.Context, m *mqttc.Message) (mqttc.Pending, error) {
	c.f.publish(m)
	return acked{}, nil
}
func (c *fakeClient) Subscribe(context.Context, []mqttc.Subscription, mqttc.SubscribeOptions) ([]byte, error) {
	return []byte{0}, nil
}
func (c *fakeClient) Unsubscribe(context.Context, ...string) error { return nil }
func (c *fakeClient) Disconnect(context.Context) error {
	c.once.Do(func() { close(c.done) })
	return nil
}
func (c *fakeClient) Server() mqttc.ServerInfo { return mqttc.ServerInfo{ProtocolVersion: 5} }
func (c *fakeClient) Done() <-chan struct{}    { return c.done }
func (c *fakeClient) Err() error               { return nil }

func options(qos byte) bench.Options {
	return bench.Options{
		Config: bench.Config{
			Publishers: 3, Subscribers: 2, Messages: 1000, Size: 64, Inflight: 4,
			Topic: "bench/%i", QoS: []byte{qos},
		},
		QoS: qos, ClientID: "t", DrainIdle: 200 * time.Millisecond,
	}
}

func TestRunCountsLossDuplicatesAndReorder(t *testing.T) {
	f := &fakeBroker{
		n: map[string]int{}, held: map[string]*mqttc.Message{},
		drop: func(k int) bool { return k%10 == 3 },  // 100 of 1000 per publisher
		dup:  func(k int) bool { return k%25 == 0 },  // 40
		swap: func(k int) bool { return k%50 == 20 }, // 20, each delivered after its successor
	}
	o := options(1)
	o.Dial = f.dial
	res, err := bench.Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	const pubs, subs = 3, 2
	want := bench.Result{
		Sent: 3000, Acked: 3000,
		Received:   (1000 - 100) * pubs * subs,
		Lost:       100 * pubs * subs,
		Duplicates: 40 * pubs * subs,
		OutOfOrder: 20 * pubs * subs,
	}
	got := bench.Result{Sent: res.Sent, Acked: res.Acked, Received: res.Received, Lost: res.Lost, Duplicates: res.Duplicates, OutOfOrder: res.OutOfOrder}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("counts\n got %+v\nwant %+v", got, want)
	}
	if res.E2E.Count != int64(res.Received) {
		t.Errorf("e2e samples %d, want one per distinct delivery (%d)", res.E2E.Count, res.Received)
	}
	if res.Ack.Count != 3000 {
		t.Errorf("ack samples %d, want 3000", res.Ack.Count)
	}
	if res.Connect.Count != pubs+subs {
		t.Errorf("connect samples %d, want %d", res.Connect.Count, pubs+subs)
	}
}

// A message from another run (a retained leftover) or warm-up is not counted.
func TestRunIgnoresForeignAndWarmup(t *testing.T) {
	f := &fakeBroker{n: map[string]int{}, held: map[string]*mqttc.Message{},
		drop: func(int) bool { return false }, dup: func(int) bool { return false }, swap: func(int) bool { return false }}
	o := options(0)
	o.Dial = func(ctx context.Context, cfg mqttc.Config) (mqttc.Client, error) {
		c, err := f.dial(ctx, cfg)
		if cfg.OnMessage != nil {
			foreign := make([]byte, 64)
			bench.Header{Run: 1, Publisher: 0, Seq: 0}.Put(foreign)
			cfg.OnMessage(&mqttc.Message{Topic: "bench/0", Payload: foreign, Received: time.Now()})
			cfg.OnMessage(&mqttc.Message{Topic: "bench/0", Payload: []byte("not a bench message"), Received: time.Now()})
		}
		return c, err
	}
	o.Warmup = 20 * time.Millisecond
	res, err := bench.Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if res.Received != 2*3000 || res.Duplicates != 0 || res.Lost != 0 || res.Sent != 3000 {
		t.Errorf("got sent %d received %d dup %d lost %d; want 3000, 6000, 0, 0", res.Sent, res.Received, res.Duplicates, res.Lost)
	}
}

func TestRunRefusedConnection(t *testing.T) {
	o := options(0)
	refused := &mqttc.ConnectError{Code: 0x87}
	o.Dial = func(context.Context, mqttc.Config) (mqttc.Client, error) { return nil, refused }
	if _, err := bench.Run(context.Background(), o); !errors.Is(err, refused) {
		t.Fatalf("Run = %v, want the connect error", err)
	}
}

// End to end against the in-process broker: every protocol version and QoS,
// nothing lost, nothing duplicated. The broker's queue holds a whole run, so
// that QoS 0, which has no flow control, can go as fast as it can: that is
// how MQTT 3 at QoS 0 showed payloads rewritten for the next message before
// the client library had written them (every message counted lost once and
// its successor twice).
func TestRunEmbeddedBroker(t *testing.T) {
	b := brokertest.Start(t, broker.Config{MaxQueued: 1 << 16})
	u, err := mqttc.ParseURL(b.URL)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []int{mqttc.V5, mqttc.V311, mqttc.V31} {
		for _, qos := range []byte{0, 1, 2} {
			t.Run(fmt.Sprintf("%s/qos%d", mqttc.VersionName(v), qos), func(t *testing.T) {
				o := options(qos)
				o.Messages = 300
				o.DrainIdle = 5 * time.Second
				o.Base = mqttc.Config{Endpoint: u.Endpoint, KeepAlive: 30, ProtocolVersion: v}
				o.ClientID = fmt.Sprintf("e2e-%d-%d", v, qos)
				res, err := bench.Run(context.Background(), o)
				if err != nil {
					t.Fatal(err)
				}
				want := uint64(3 * 300)
				if res.Sent != want || res.Acked != want || res.Received != 2*want || res.Lost != 0 || res.Duplicates != 0 {
					t.Errorf("sent %d acked %d received %d lost %d dup %d; want %d, %d, %d, 0, 0",
						res.Sent, res.Acked, res.Received, res.Lost, res.Duplicates, want, want, 2*want)
				}
				if len(res.Errors) != 0 {
					t.Errorf("errors: %v", res.Errors)
				}
				if qos > 0 && res.Ack.Count != int64(want) {
					t.Errorf("ack samples %d, want %d", res.Ack.Count, want)
				}
			})
		}
	}
}

// A cancelled run returns promptly with what it measured, marked interrupted.
func TestRunInterrupted(t *testing.T) {
	b := brokertest.Start(t, broker.Config{})
	u, err := mqttc.ParseURL(b.URL)
	if err != nil {
		t.Fatal(err)
	}
	o := options(1)
	o.Messages = 0
	o.Duration = time.Hour
	o.Base = mqttc.Config{Endpoint: u.Endpoint}
	ctx, cancel := context.WithCancel(context.Background())
	o.Progress = func(p bench.Progress) {
		if p.Sent > 100 {
			cancel()
		}
	}
	res, err := bench.Run(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Interrupted || res.Sent < 100 {
		t.Errorf("interrupted %v, sent %d; want an interrupted result with what was sent", res.Interrupted, res.Sent)
	}
}

// never is an acknowledgement that does not come.
type never struct{}

func (never) Wait(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }

type muteClient struct{ fakeClient }

func (c *muteClient) PublishAsync(context.Context, *mqttc.Message) (mqttc.Pending, error) {
	return never{}, nil
}

// A broker that stops acknowledging ends the run after StallTimeout, with
// the stall counted, instead of hanging it.
func TestRunStalledBroker(t *testing.T) {
	defer func(d time.Duration) { bench.StallTimeout = d }(bench.StallTimeout)
	bench.StallTimeout = 300 * time.Millisecond
	o := options(1)
	o.Subscribers = 0
	o.Dial = func(context.Context, mqttc.Config) (mqttc.Client, error) {
		return &muteClient{fakeClient{done: make(chan struct{})}}, nil
	}
	res, err := bench.Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	// Each publisher fills its window of 4 and waits.
	if res.Sent != 3*4 || res.Acked != 0 {
		t.Errorf("sent %d acked %d; want 12 and 0", res.Sent, res.Acked)
	}
	if res.Errors["stalled: nothing moved for 300ms"] != 1 {
		t.Errorf("errors %v; want the stall counted", res.Errors)
	}
	var stall *bench.StallError
	if len(res.Failures) != 1 || !errors.As(res.Failures[0], &stall) {
		t.Errorf("failures %v; want the stall", res.Failures)
	}
	// What the stall cut off is counted: 1,000 planned per publisher.
	if res.Unsent != 3*1000-12 {
		t.Errorf("unsent %d, want %d", res.Unsent, 3*1000-12)
	}
}

// With --rate and --duration, unsent is the rest of the schedule a stall
// cut off: 3 publishers at 1,000/s each for 1s plan 3,000 messages.
func TestRunStalledScheduleUnsent(t *testing.T) {
	defer func(d time.Duration) { bench.StallTimeout = d }(bench.StallTimeout)
	bench.StallTimeout = 300 * time.Millisecond
	o := options(1)
	o.Subscribers = 0
	o.Messages, o.Duration, o.Rate = 0, time.Second, 3000
	o.Dial = func(context.Context, mqttc.Config) (mqttc.Client, error) {
		return &muteClient{fakeClient{done: make(chan struct{})}}, nil
	}
	res, err := bench.Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if res.Sent != 3*4 || res.Sent+res.Unsent != 3000 {
		t.Errorf("sent %d unsent %d; want 12 sent and the rest of 3,000 unsent", res.Sent, res.Unsent)
	}
}

// lostClient is a connection that ends, as if the broker went away, at its
// n-th publish.
type lostClient struct {
	*fakeClient
	n    int
	err  error
	mu   sync.Mutex
	sent int
}

func (c *lostClient) PublishAsync(ctx context.Context, m *mqttc.Message) (mqttc.Pending, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sent == c.n {
		c.once.Do(func() { close(c.done) })
		return nil, c.err
	}
	c.sent++
	return c.fakeClient.PublishAsync(ctx, m)
}

func (c *lostClient) Err() error {
	select {
	case <-c.done:
		return c.err
	default:
		return nil
	}
}

// A publisher whose connection is lost midway stops; the loss is a
// failure, and what it never sent is counted. A subscriber whose connection
// ends is counted as well, though it has no publish to fail.
func TestRunConnectionLost(t *testing.T) {
	f := &fakeBroker{n: map[string]int{}, held: map[string]*mqttc.Message{},
		drop: func(int) bool { return false }, dup: func(int) bool { return false }, swap: func(int) bool { return false }}
	lost := &mqttc.NetError{Op: "publish", Addr: "mqtt://127.0.0.1:1", Err: errors.New("connection reset by peer")}
	o := options(0)
	o.Publishers, o.Subscribers = 1, 1
	o.Dial = func(ctx context.Context, cfg mqttc.Config) (mqttc.Client, error) {
		c, _ := f.dial(ctx, cfg)
		return &lostClient{fakeClient: c.(*fakeClient), n: 600, err: lost}, nil
	}
	res, err := bench.Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if res.Sent != 600 || res.Unsent != 400 {
		t.Errorf("sent %d unsent %d; want 600 and 400", res.Sent, res.Unsent)
	}
	if res.Errors["connection lost"] != 1 || len(res.Failures) != 1 || !errors.Is(res.Failures[0], lost) {
		t.Errorf("errors %v, failures %v; want the lost connection once", res.Errors, res.Failures)
	}

	// Now only the subscriber's connection ends.
	o.Dial = func(ctx context.Context, cfg mqttc.Config) (mqttc.Client, error) {
		c, _ := f.dial(ctx, cfg)
		if cfg.OnMessage == nil {
			return c, nil
		}
		sub := &lostClient{fakeClient: c.(*fakeClient), err: lost}
		sub.once.Do(func() { close(sub.done) })
		return sub, nil
	}
	res, err = bench.Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors["connection lost"] != 1 || len(res.Failures) != 1 || res.Unsent != 0 {
		t.Errorf("errors %v, failures %v, unsent %d; want the subscriber's lost connection, nothing unsent", res.Errors, res.Failures, res.Unsent)
	}
}

// A --rate no publisher can keep up with (a message every nanosecond) ends
// at --duration all the same: the warm-up's backlog is skipped when the
// measured phase begins, and what is still due when --duration ends is
// unsent, the run marked Behind; it neither goes on to catch up nor counts
// an error.
func TestRunRateBehind(t *testing.T) {
	f := &fakeBroker{n: map[string]int{}, held: map[string]*mqttc.Message{},
		drop: func(int) bool { return false }, dup: func(int) bool { return false }, swap: func(int) bool { return false }}
	o := options(0)
	o.Subscribers = 0
	o.Messages, o.Rate, o.Duration, o.Warmup = 0, 1e9, 200*time.Millisecond, 100*time.Millisecond
	o.Dial = f.dial
	res := runBounded(t, o, "the run went on for a minute catching up")
	if !res.Behind || res.Sent == 0 || len(res.Errors) != 0 {
		t.Errorf("behind %v, sent %d, errors %v; want behind, some sent, no error", res.Behind, res.Sent, res.Errors)
	}
	// 200ms at 10^9/s: every planned message is either sent or unsent.
	if planned := res.Sent + res.Unsent; planned < 2e8-3 || planned > 2e8+3 {
		t.Errorf("sent %d + unsent %d = %d, want the 200,000,000 planned", res.Sent, res.Unsent, planned)
	}
}

// A --rate schedule whose gap between two messages is longer than
// StallTimeout is no stall, and a publisher whose next message would be
// past --duration does not wait for it: one publisher at 1/s for 2.5s sends
// 3 messages (at 0, 1 and 2s) without an error; at 1/100s, one message,
// and it does not wait 100 s for the next. (A message may be up to 500ms
// late before the stall limit, 0.5s + 1s, or the end, 2.5s + lateLimit,
// would count it.)
func TestRunSlowRate(t *testing.T) {
	defer func(d time.Duration) { bench.StallTimeout = d }(bench.StallTimeout)
	bench.StallTimeout = 500 * time.Millisecond
	b := brokertest.Start(t, broker.Config{})
	u, err := mqttc.ParseURL(b.URL)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		rate     float64
		duration time.Duration
		want     uint64
	}{{1, 2500 * time.Millisecond, 3}, {0.01, 200 * time.Millisecond, 1}} {
		t.Run(fmt.Sprint(tc.rate), func(t *testing.T) {
			o := options(1)
			o.Publishers, o.Subscribers = 1, 1
			o.Messages, o.Rate, o.Duration = 0, tc.rate, tc.duration
			o.Base = mqttc.Config{Endpoint: u.Endpoint}
			o.ClientID = fmt.Sprintf("slow-%v", tc.rate)
			res := runBounded(t, o, "the publisher waited for a message past --duration")
			if res.Sent != tc.want || res.Received != tc.want || res.Unsent != 0 || len(res.Errors) != 0 {
				t.Errorf("sent %d received %d unsent %d errors %v; want %d, %d, 0, none", res.Sent, res.Received, res.Unsent, res.Errors, tc.want, tc.want)
			}
		})
	}
}

// runBounded runs o, failing the test with hung if the run has not ended by
// itself within a minute (a bound against a hang only).
func runBounded(t *testing.T, o bench.Options, hung string) bench.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := bench.Run(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if res.Interrupted {
		t.Fatalf("%s: sent %d", hung, res.Sent)
	}
	return res
}
