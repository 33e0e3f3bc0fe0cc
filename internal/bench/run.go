package bench

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"mqtk/internal/mqttc"
)

// Phases of a run, as Progress reports them.
const (
	PhaseConnect   = "connect"
	PhaseSubscribe = "subscribe"
	PhaseWarmup    = "warm-up"
	PhaseMeasure   = "measure"
	PhaseDrain     = "drain"
)

// Options is one run of one QoS level.
type Options struct {
	Config
	QoS byte
	// Base is the connection every client uses; Dial sets its ClientID
	// (ClientID plus -p<i> or -s<j>) and OnMessage.
	Base     mqttc.Config
	ClientID string
	// DrainIdle bounds the drain: it ends when every expected delivery has
	// arrived or when none arrived for this long (default 2s).
	DrainIdle time.Duration
	// Progress, if set, is called about four times a second.
	Progress func(Progress)
	// Dial opens a client; nil means mqttc.Dial.
	Dial func(context.Context, mqttc.Config) (mqttc.Client, error)
}

// Progress is the state of a run while it goes.
type Progress struct {
	QoS      byte
	Phase    string
	Sent     uint64  // measured publishes so far
	Received uint64  // measured deliveries so far
	Rate     float64 // publishes per second over the last interval
}

// Topic expands a --topic pattern for publisher i with client id id: %i is
// the index, %c the client id, %% a percent sign.
func Topic(pattern string, i int, id string) (string, error) {
	var b strings.Builder
	for k := 0; k < len(pattern); k++ {
		c := pattern[k]
		if c != '%' {
			b.WriteByte(c)
			continue
		}
		if k+1 == len(pattern) {
			return "", fmt.Errorf("topic pattern %q ends with %%; use %%%% for a percent sign", pattern)
		}
		k++
		switch pattern[k] {
		case 'i':
			b.WriteString(strconv.Itoa(i))
		case 'c':
			b.WriteString(id)
		case '%':
			b.WriteByte('%')
		default:
			return "", fmt.Errorf("topic pattern %q: unknown %%%c (use %%i for the publisher index, %%c for its client id)", pattern, pattern[k])
		}
	}
	return b.String(), nil
}

// PublisherID and SubscriberID are the client identifiers of a run's clients.
func PublisherID(base string, i int) string  { return base + "-p" + strconv.Itoa(i) }
func SubscriberID(base string, j int) string { return base + "-s" + strconv.Itoa(j) }

// errorCounts is the run's tally of what went wrong, by kind, with the
// first error of each kind.
type errorCounts struct {
	mu    sync.Mutex
	m     map[string]uint64
	first map[string]error
}

func (e *errorCounts) add(kind string, err error) {
	e.mu.Lock()
	if e.m == nil {
		e.m, e.first = map[string]uint64{}, map[string]error{}
	}
	e.m[kind]++
	if e.first[kind] == nil {
		e.first[kind] = err
	}
	e.mu.Unlock()
}

// snapshot returns the counts and the first error of each kind, in the
// order of the kinds' names.
func (e *errorCounts) snapshot() (map[string]uint64, []error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make(map[string]uint64, len(e.m))
	kinds := make([]string, 0, len(e.m))
	for k, v := range e.m {
		out[k] = v
		kinds = append(kinds, k)
	}
	slices.Sort(kinds)
	var first []error
	for _, k := range kinds {
		first = append(first, e.first[k])
	}
	return out, first
}

// StallError is why a run that stopped moving was ended: nothing was
// published, acknowledged or delivered for After (StallTimeout).
type StallError struct{ After time.Duration }

func (e *StallError) Error() string {
	return fmt.Sprintf("the broker stalled: nothing was published, acknowledged or delivered for %s", e.After)
}

// AckTimeoutError is a publish whose acknowledgement had not come when the
// drain ended, on a connection that was still open.
type AckTimeoutError struct{ Topic string }

func (e *AckTimeoutError) Error() string {
	return fmt.Sprintf("publish %q: no acknowledgement by the end of the drain", e.Topic)
}

// Unwrap makes it a timeout (context.DeadlineExceeded) to errors.Is.
func (e *AckTimeoutError) Unwrap() error { return context.DeadlineExceeded }

// errorKind names an error for the report without its variable parts.
func errorKind(op string, err error) string {
	var (
		rej *mqttc.RejectedError
		dis *mqttc.DisconnectError
		ne  *mqttc.NetError
		te  *mqttc.TimeoutError
	)
	switch {
	case errors.As(err, &rej):
		return fmt.Sprintf("%s rejected: %s (0x%02x)", op, mqttc.ReasonName(rej.Code), rej.Code)
	case errors.As(err, &dis):
		return fmt.Sprintf("disconnected by broker: %s (0x%02x)", mqttc.ReasonName(dis.Code), dis.Code)
	case errors.As(err, &te):
		return op + " timed out"
	case errors.As(err, &ne):
		return "connection lost"
	}
	return op + " failed"
}

// run is the shared state of one QoS level's run.
type run struct {
	o     *Options
	id    uint32
	epoch time.Time
	// measureStart and measureEnd are ns since epoch; measureEnd is 0 with
	// Messages. They are set once, before any publisher starts.
	measureStart, measureEnd int64
	errs                     errorCounts
	stop                     atomic.Bool // publishers stop at their next message
	phase                    atomic.Value
	acks                     sync.WaitGroup // every publisher's acknowledgement collector
}

func (r *run) now() int64 { return int64(time.Since(r.epoch)) }

type publisher struct {
	r      *run
	i      int
	c      mqttc.Client
	topic  string
	failed atomic.Bool   // an error of this publisher's is counted
	unsent uint64        // measured messages planned and never sent; read after it returns
	behind bool          // --rate: still behind the schedule at the end of --duration
	sent   atomic.Uint64 // measured publishes written
	acked  atomic.Uint64 // measured publishes acknowledged with success
	ack    *Histogram    // written by the collector; read after r.acks.Wait
	lastNs int64         // when the last measured publish was written
	warm   atomic.Uint64 // warm-up publishes written
}

type subscriber struct {
	r        *run
	c        mqttc.Client
	tracker  *Tracker
	e2e      *Histogram
	received atomic.Uint64 // distinct measured deliveries, for progress and drain
	lastNs   atomic.Int64  // when the last measured delivery arrived
	mu       sync.Mutex    // tracker and e2e: OnMessage vs the final read
}

// lateLimit is how far behind its --rate schedule a publisher may be when
// --duration ends and still send what was due before the end: past it, the
// rest is unsent (Result.Behind), so that a rate above what the broker
// takes does not stretch the run.
const lateLimit = 100 * time.Millisecond

// StallTimeout ends a run in which nothing was published, acknowledged or
// delivered for this long: a broker that stopped answering must not hang it.
var StallTimeout = 10 * time.Second

// Run runs one QoS level: connect, subscribe, warm up, measure, drain. The
// error is for a run that could not start (a client could not connect or
// subscribe); what goes wrong later is counted in Result.Errors. When ctx is
// cancelled the run stops and the partial result is marked Interrupted.
func Run(ctx context.Context, o Options) (Result, error) {
	if o.Dial == nil {
		o.Dial = mqttc.Dial
	}
	if o.DrainIdle <= 0 {
		o.DrainIdle = 2 * time.Second
	}
	if o.Base.ConnectTimeout <= 0 {
		o.Base.ConnectTimeout = 10 * time.Second
	}
	if o.Size < HeaderSize {
		return Result{}, fmt.Errorf("--size %d is smaller than the %d-byte header each message carries", o.Size, HeaderSize)
	}
	var idb [4]byte
	_, _ = rand.Read(idb[:])
	r := &run{o: &o, id: binary.BigEndian.Uint32(idb[:]), epoch: time.Now()}
	r.phase.Store(PhaseConnect)
	res := Result{QoS: o.QoS, Publishers: o.Publishers, Subscribers: o.Subscribers, Size: o.Size, Errors: map[string]uint64{}}

	// Connect everyone, subscribers first so that none misses a message.
	stopProgress := r.progress(ctx, nil, nil)
	defer func() { stopProgress() }()
	connect := NewHistogram()
	subs := make([]*subscriber, o.Subscribers)
	pubs := make([]*publisher, o.Publishers)
	var clients []mqttc.Client
	defer func() {
		dctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		var wg sync.WaitGroup
		for _, c := range clients {
			wg.Add(1)
			go func() { defer wg.Done(); _ = c.Disconnect(dctx) }()
		}
		wg.Wait()
	}()
	dial := func(id string, onMessage func(*mqttc.Message)) (mqttc.Client, error) {
		cfg := o.Base
		cfg.ClientID = id
		cfg.CleanStart = true
		cfg.OnMessage = onMessage
		t0 := time.Now()
		c, err := o.Dial(ctx, cfg)
		if err != nil {
			return nil, err
		}
		connect.Record(time.Since(t0))
		clients = append(clients, c)
		return c, nil
	}
	for j := range subs {
		s := &subscriber{r: r, tracker: NewTracker(o.Publishers), e2e: NewHistogram()}
		c, err := dial(SubscriberID(o.ClientID, j), s.onMessage)
		if err != nil {
			return res, err
		}
		s.c = c
		subs[j] = s
	}
	topics := map[string]bool{}
	var filters []mqttc.Subscription
	for i := range pubs {
		id := PublisherID(o.ClientID, i)
		t, err := Topic(o.Topic, i, id)
		if err != nil {
			return res, err
		}
		p := &publisher{r: r, i: i, topic: t, ack: NewHistogram()}
		if p.c, err = dial(id, nil); err != nil {
			return res, err
		}
		pubs[i] = p
		if !topics[t] {
			topics[t] = true
			filters = append(filters, mqttc.Subscription{Filter: t, QoS: o.QoS})
		}
	}
	res.Connect = connect.Summary()

	r.phase.Store(PhaseSubscribe)
	for _, s := range subs {
		// A broker that does not answer a SUBSCRIBE is bounded like one
		// that does not answer a CONNECT.
		sctx, cancel := context.WithTimeout(ctx, o.Base.ConnectTimeout)
		_, err := s.c.Subscribe(sctx, filters, mqttc.SubscribeOptions{})
		cancel()
		if err != nil {
			return res, err
		}
	}

	// Publish. The phase boundaries are fixed before anyone starts.
	runCtx, cancelRun := context.WithCancel(ctx)
	defer cancelRun()
	r.measureStart = r.now() + int64(o.Warmup)
	if o.Messages == 0 {
		r.measureEnd = r.measureStart + int64(o.Duration)
	}
	stopProgress()
	stopProgress = r.progress(ctx, pubs, subs)
	if o.Warmup > 0 {
		r.phase.Store(PhaseWarmup)
	} else {
		r.phase.Store(PhaseMeasure)
	}
	var wg sync.WaitGroup
	for _, p := range pubs {
		wg.Add(1)
		go func() { defer wg.Done(); p.run(runCtx) }()
	}
	pubsDone := make(chan struct{})
	go func() { wg.Wait(); close(pubsDone) }()
	r.watch(ctx, pubsDone, pubs, subs, func() { r.stop.Store(true); cancelRun() })

	// Drain: acknowledgements and deliveries still on their way.
	r.phase.Store(PhaseDrain)
	var sent uint64
	var lastPub int64
	sentPer := make([]uint64, len(pubs))
	for i, p := range pubs {
		sentPer[i] = p.sent.Load()
		sent += sentPer[i]
		lastPub = max(lastPub, p.lastNs)
	}
	drainIdle := o.DrainIdle
	if ctx.Err() != nil {
		drainIdle = min(drainIdle, 500*time.Millisecond) // interrupted: be quick
	}
	r.drain(pubs, subs, sent, drainIdle)
	cancelRun() // what has not been acknowledged by now will not be
	r.acks.Wait()

	// A connection that ended under a client that had no error of its own
	// to show for it (every subscriber; a publisher between publishes)
	// is counted too: otherwise its loss shows only as lost messages.
	if ctx.Err() == nil {
		for _, p := range pubs {
			if err := p.c.Err(); ended(p.c) && err != nil && !p.failed.Load() {
				p.fail(errorKind("publisher connection", err), err)
			}
		}
		for _, s := range subs {
			if err := s.c.Err(); ended(s.c) && err != nil {
				r.errs.add(errorKind("subscriber connection", err), err)
			}
		}
	}

	// Results.
	res.Sent = sent
	ack, e2e := NewHistogram(), NewHistogram()
	for _, p := range pubs {
		res.Acked += p.acked.Load()
		res.Unsent += p.unsent
		res.Behind = res.Behind || p.behind
		ack.Merge(p.ack)
	}
	if o.QoS == 0 {
		res.Acked = sent
	}
	var lastRecv int64
	for _, s := range subs {
		s.mu.Lock()
		u, d, ooo := s.tracker.Counts()
		res.Received += u
		res.Duplicates += d
		res.OutOfOrder += ooo
		res.Lost += s.tracker.Lost(sentPer)
		e2e.Merge(s.e2e)
		s.mu.Unlock()
		lastRecv = max(lastRecv, s.lastNs.Load())
	}
	if o.QoS > 0 {
		res.Ack = ack.Summary()
	}
	res.E2E = e2e.Summary()
	if lastPub > r.measureStart {
		res.Duration = time.Duration(lastPub - r.measureStart)
		secs := res.Duration.Seconds()
		res.PublishRate = float64(sent) / secs
		res.PublishMBs = float64(sent) * float64(o.Size) / secs / 1e6
	}
	if lastRecv > r.measureStart {
		secs := time.Duration(lastRecv - r.measureStart).Seconds()
		res.ReceiveRate = float64(res.Received) / secs
		res.ReceiveMBs = float64(res.Received) * float64(o.Size) / secs / 1e6
	}
	res.Interrupted = ctx.Err() != nil
	if o.Retain {
		r.clearRetained(pubs)
	}
	res.Errors, res.Failures = r.errs.snapshot()
	return res, nil
}

// watch waits for the publishers to finish, stopping them on ctx's end or
// when nothing moved for StallTimeout.
func (r *run) watch(ctx context.Context, pubsDone <-chan struct{}, pubs []*publisher, subs []*subscriber, stop func()) {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var last uint64
	lastChange := time.Now()
	limit := r.stallLimit()
	for {
		select {
		case <-pubsDone:
			return
		case <-ctx.Done():
			stop()
			<-pubsDone
			return
		case <-tick.C:
		}
		n := r.moved(pubs, subs)
		if n != last {
			last, lastChange = n, time.Now()
		} else if time.Since(lastChange) >= limit {
			r.errs.add(fmt.Sprintf("stalled: nothing moved for %s", limit), &StallError{After: limit})
			stop()
			<-pubsDone
			return
		}
	}
}

// stallLimit is how long nothing may move before the run counts as
// stalled: StallTimeout, plus a --rate schedule's own gap between two
// messages (up to a year: a rate of 10^-10/s would overflow a Duration).
func (r *run) stallLimit() time.Duration {
	if r.o.Rate <= 0 {
		return StallTimeout
	}
	return StallTimeout + time.Duration(min(float64(time.Second)/r.o.Rate, float64(365*24*time.Hour)))
}

// moved is a counter of everything that shows the run is alive.
func (r *run) moved(pubs []*publisher, subs []*subscriber) uint64 {
	var n uint64
	for _, p := range pubs {
		n += p.sent.Load() + p.acked.Load() + p.warm.Load()
	}
	for _, s := range subs {
		n += s.received.Load()
	}
	return n
}

// run publishes until the measured phase is over: closed-loop with up to
// Inflight unacknowledged messages, or open-loop on a schedule with Rate.
// With a window above one, acknowledgements are collected by a goroutine of
// their own, which ends when ctx does or when every publish it was given has
// been answered; with a window of one the publisher waits itself.
func (p *publisher) run(ctx context.Context) {
	r, o := p.r, p.r.o
	window := 1
	if o.QoS > 0 {
		window = max(o.Inflight, 1)
	}
	// Payload buffers, reused once their publish is acknowledged: with a
	// window of W, buffer k%W is free again when publish k may be written.
	bufs := make([][]byte, window)
	for k := range bufs {
		bufs[k] = make([]byte, o.Size)
	}
	var acks chan inflight
	slots := make(chan struct{}, window)
	if window > 1 {
		acks = make(chan inflight, window)
		r.acks.Add(1)
		go func() {
			defer r.acks.Done()
			for f := range acks {
				p.collect(ctx, f)
				<-slots
			}
		}()
		defer close(acks)
	}

	var interval float64 // ns between this publisher's messages with --rate
	var next float64
	if o.Rate > 0 {
		interval = float64(o.Publishers) / o.Rate * 1e9
		next = float64(p.i) * interval / float64(o.Publishers) // spread publishers over one interval
	}
	var warmSeq, seq uint64
	// What a publisher stopped early (by a stall, a signal, a lost
	// connection, a refusal) did not send of its plan: the rest of its
	// --messages, or of its --rate schedule from slot, the first it did not
	// send. A closed-loop --duration run plans no count.
	var slot int64
	finished := false
	defer func() {
		switch {
		case finished:
		case o.Messages > 0:
			p.unsent = uint64(o.Messages) - seq
		case o.Rate > 0:
			p.unsent = slotsBetween(slot, interval, r.measureStart, r.measureEnd)
		}
	}()
	// planDone: a message at intended would be past the plan (--duration or
	// --messages), which is then carried out.
	planDone := func(intended int64) bool {
		return intended >= r.measureStart && (r.measureEnd > 0 && intended >= r.measureEnd ||
			o.Messages > 0 && seq >= uint64(o.Messages))
	}
	msg := mqttc.Message{Topic: p.topic, QoS: o.QoS, Retain: o.Retain}
	for n := 0; ; n++ {
		if o.Rate > 0 {
			slot = r.startOffset() + int64(next)
			if slot < r.measureStart && r.now() >= r.measureStart {
				// Behind when the warm-up ends: the rest of its schedule
				// is skipped, and the measured one starts on time.
				next += math.Ceil(float64(r.measureStart-slot)/interval) * interval
				slot = r.startOffset() + int64(next)
			}
		}
		if r.stop.Load() {
			return
		}
		var intended int64
		if o.Rate > 0 {
			intended = slot
			next += interval
			if planDone(intended) { // before waiting for a slot it will not use
				finished = true
				return
			}
			if !r.sleepUntil(ctx, intended) {
				return
			}
			if r.measureEnd > 0 && r.now() >= r.measureEnd+int64(lateLimit) {
				p.behind = true // the rest of the schedule is unsent
				return
			}
		} else {
			intended = r.now()
		}
		measured := intended >= r.measureStart
		if measured {
			if planDone(intended) {
				finished = true
				return
			}
			if r.phase.Load() == PhaseWarmup {
				r.phase.Store(PhaseMeasure)
			}
		}
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		h := Header{Run: r.id, Publisher: uint32(p.i), Sent: intended}
		if measured {
			h.Seq = seq
		} else {
			h.Seq, h.Warmup = warmSeq, true
		}
		buf := bufs[n%window]
		h.Put(buf)
		msg.Payload = buf
		pending, err := p.c.PublishAsync(ctx, &msg)
		written := r.now()
		if err != nil {
			<-slots
			if ctx.Err() == nil {
				p.fail(errorKind("publish", err), err)
			}
			return // the connection is gone or the broker refuses: this publisher is done
		}
		if measured {
			seq++
			p.sent.Store(seq)
			p.lastNs = written
		} else {
			warmSeq++
			p.warm.Store(warmSeq)
		}
		switch {
		case acks != nil:
			acks <- inflight{p: pending, written: written, measured: measured}
		case o.QoS > 0: // a window of one: no hand-over to a collector
			p.collect(ctx, inflight{p: pending, written: written, measured: measured})
			<-slots
		default:
			<-slots
		}
	}
}

// inflight is a publish awaiting its acknowledgement.
type inflight struct {
	p        mqttc.Pending
	written  int64
	measured bool
}

// collect waits for f's acknowledgement and records it.
func (p *publisher) collect(ctx context.Context, f inflight) {
	r := p.r
	err := f.p.Wait(ctx)
	at := r.now()
	if err != nil {
		if ctx.Err() == nil {
			p.fail(errorKind("publish", err), err)
		} else if f.measured && !r.stop.Load() {
			p.fail("publish not acknowledged by the end of the drain", &AckTimeoutError{Topic: p.topic})
		}
		return
	}
	if f.measured {
		p.ack.Record(time.Duration(at - f.written))
		p.acked.Add(1)
	}
}

// fail counts one of the publisher's errors.
func (p *publisher) fail(kind string, err error) {
	p.failed.Store(true)
	p.r.errs.add(kind, err)
}

// slotsBetween is how many of the times from, from+interval, from+2
// interval... fall in [start, end).
func slotsBetween(from int64, interval float64, start, end int64) uint64 {
	if interval <= 0 || end <= start || float64(end-from) <= 0 {
		return 0
	}
	first := 0.0 // the first slot at or after start
	if from < start {
		first = math.Ceil(float64(start-from) / interval)
	}
	last := math.Ceil(float64(end-from) / interval) // the first slot at or after end
	if last <= first {
		return 0
	}
	return uint64(last - first)
}

// startOffset is where the --rate schedule starts: when publishing began.
func (r *run) startOffset() int64 { return r.measureStart - int64(r.o.Warmup) }

func (s *subscriber) onMessage(m *mqttc.Message) {
	h, ok := ParseHeader(m.Payload)
	if !ok || h.Run != s.r.id || h.Warmup {
		return
	}
	at := int64(m.Received.Sub(s.r.epoch))
	s.mu.Lock()
	dup, _ := s.tracker.Record(h)
	if !dup {
		s.e2e.Record(time.Duration(at - h.Sent))
	}
	s.mu.Unlock()
	if !dup {
		s.received.Add(1)
		s.lastNs.Store(at)
	}
}

// drain waits until every publish is acknowledged and every expected
// delivery has arrived, or nothing arrived for idle, or every connection has
// ended.
func (r *run) drain(pubs []*publisher, subs []*subscriber, sent uint64, idle time.Duration) {
	expected := sent * uint64(len(subs))
	var last uint64
	lastChange := time.Now()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		var acked, got uint64
		alive := 0
		for _, p := range pubs {
			acked += p.acked.Load()
			if !ended(p.c) {
				alive++
			}
		}
		for _, s := range subs {
			got += s.received.Load()
			if !ended(s.c) {
				alive++
			}
		}
		if (r.o.QoS == 0 || acked >= sent) && got >= expected || alive == 0 {
			return
		}
		if n := acked + got; n != last {
			last, lastChange = n, time.Now()
		} else if time.Since(lastChange) >= idle {
			return
		}
		<-tick.C
	}
}

func ended(c mqttc.Client) bool {
	select {
	case <-c.Done():
		return true
	default:
		return false
	}
}

// progress calls Options.Progress about four times a second until the
// returned function is called.
func (r *run) progress(ctx context.Context, pubs []*publisher, subs []*subscriber) func() {
	if r.o.Progress == nil {
		return func() {}
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		var lastSent uint64
		lastAt := time.Now()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case now := <-tick.C:
				pr := Progress{QoS: r.o.QoS, Phase: r.phase.Load().(string)}
				for _, p := range pubs {
					pr.Sent += p.sent.Load()
				}
				for _, s := range subs {
					pr.Received += s.received.Load()
				}
				if dt := now.Sub(lastAt).Seconds(); dt > 0 && pr.Sent >= lastSent {
					pr.Rate = float64(pr.Sent-lastSent) / dt
				}
				lastSent, lastAt = pr.Sent, now
				r.o.Progress(pr)
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(done); <-finished }) }
}

// clearRetained removes the retained messages a --retain run left behind.
func (r *run) clearRetained(pubs []*publisher) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	seen := map[string]bool{}
	for _, p := range pubs {
		if seen[p.topic] || ended(p.c) {
			continue
		}
		seen[p.topic] = true
		if err := p.c.Publish(ctx, &mqttc.Message{Topic: p.topic, QoS: 1, Retain: true}); err != nil {
			r.errs.add(errorKind("clearing retained message", err), err)
		}
	}
}
