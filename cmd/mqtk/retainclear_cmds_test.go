package main

import (
	"context"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"mqtk/internal/broker"
	"mqtk/internal/brokertest"
	"mqtk/internal/mqttc"
)

// retainfill PORT PREFIX N publishes N retained messages to the broker on
// 127.0.0.1:PORT, "retained-I" to PREFIX/I for I from 0 to N-1, pipelined
// (QoS 1, every PUBACK checked): thousands of retained topics in a moment.
func cmdRetainFill(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 3 {
		ts.Fatalf("usage: retainfill PORT PREFIX N")
	}
	port, err := strconv.Atoi(args[0])
	ts.Check(err)
	n, err := strconv.Atoi(args[2])
	ts.Check(err)
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	c, err := mqttc.Dial(ctx, mqttc.Config{Endpoint: mqttc.Endpoint{Scheme: "mqtt", Host: "127.0.0.1", Port: port},
		ClientID: "retainfill", CleanStart: true})
	ts.Check(err)
	defer c.Disconnect(ctx)
	pending := make(chan mqttc.Pending, 1024)
	result := make(chan error, 1)
	go func() {
		var first error
		for p := range pending {
			if err := p.Wait(ctx); err != nil && first == nil {
				first = err
			}
		}
		result <- first
	}()
	for i := 0; i < n; i++ {
		p, err := c.PublishAsync(ctx, &mqttc.Message{Topic: fmt.Sprintf("%s/%d", args[1], i),
			Payload: fmt.Appendf(nil, "retained-%d", i), QoS: 1, Retain: true})
		if err != nil {
			close(pending)
			ts.Fatalf("retainfill: %v", err)
		}
		pending <- p
	}
	close(pending)
	ts.Check(<-result)
}

// retainbroker [-name NAME] [-user USER:PASS]... [-acl FILE]
//
//	[-hold FILTER (-until TOPIC | -reretain TOPIC=PAYLOAD)]
//
// starts mqtk's broker in this process, as `broker` does (NAME defaults to
// BROKER; $NAME_PORT; waitsub works), with anonymous clients allowed, the
// given users, and a mosquitto acl_file.
//
// With -hold, every subscription to FILTER after the first is held (no
// SUBACK, no retained messages yet) until a client of the broker watching
// TOPIC has seen what it waits for: retain-clear's check cannot look before
// then, whatever the timing.
//   - -until TOPIC: any message on TOPIC, e.g. one the script publishes
//     while retain-clear collects;
//   - -reretain TOPIC=PAYLOAD: the empty message that clears TOPIC, to
//     which the watcher answers by publishing PAYLOAD retained to TOPIC
//     again (acknowledged before the hold ends): a device that re-publishes
//     its state at once.
func cmdRetainBroker(ts *testscript.TestScript, neg bool, args []string) {
	if neg {
		ts.Fatalf("unsupported: ! retainbroker")
	}
	fs := flag.NewFlagSet("retainbroker", flag.ContinueOnError)
	name := fs.String("name", "BROKER", "")
	var users multi
	fs.Var(&users, "user", "")
	acl := fs.String("acl", "", "")
	hold := fs.String("hold", "", "")
	until := fs.String("until", "", "")
	reretain := fs.String("reretain", "", "")
	ts.Check(fs.Parse(args))
	if fs.NArg() != 0 || (*hold != "") != ((*until != "") != (*reretain != "")) || (*until != "" && *reretain != "") {
		ts.Fatalf("usage: retainbroker [-name NAME] [-user USER:PASS]... [-acl FILE] [-hold FILTER (-until TOPIC | -reretain TOPIC=PAYLOAD)]")
	}

	cfg := broker.Config{AllowAnonymous: true}
	if len(users) > 0 {
		cfg.Users = map[string]string{}
		for _, u := range users {
			user, pass, _ := strings.Cut(u, ":")
			cfg.Users[user] = pass
		}
	}
	if *acl != "" {
		cfg.ACLFile = ts.MkAbs(*acl)
	}
	open := make(chan struct{})
	var once sync.Once
	release := func() { once.Do(func() { close(open) }) }
	ts.Defer(release) // never leave a client held when the script ends
	const watcherID = "retainbroker-watcher"
	if *hold != "" {
		filter, seen := *hold, 0
		var mu sync.Mutex
		cfg.OnSubscribed = func(clientID, f string) {
			if f != filter || clientID == watcherID {
				return
			}
			mu.Lock()
			seen++
			later := seen > 1
			mu.Unlock()
			if later {
				select {
				case <-open:
				case <-time.After(waitLimit): // a bound against a hang only
				}
			}
		}
	}
	b, err := brokertest.New(cfg)
	ts.Check(err)
	ts.Defer(func() { b.Close() })
	brokers(ts)[*name] = b
	ts.Setenv(*name+"_PORT", strconv.Itoa(b.Port))
	ts.Setenv(*name+"_URL", b.URL)

	switch {
	case *until != "":
		startWatcher(ts, b, watcherID, *until, func(*mqttc.Message) bool { return true }, nil, release)
	case *reretain != "":
		t, payload, ok := strings.Cut(*reretain, "=")
		if !ok {
			ts.Fatalf("-reretain %q: use TOPIC=PAYLOAD", *reretain)
		}
		startWatcher(ts, b, watcherID, t, func(m *mqttc.Message) bool { return len(m.Payload) == 0 },
			&mqttc.Message{Topic: t, Payload: []byte(payload), QoS: 1, Retain: true}, release)
	}
}

// startWatcher connects a client subscribed to topic (new messages only,
// not the retained one) that, at the first message for which wanted is
// true, publishes then (if not nil) and calls done.
func startWatcher(ts *testscript.TestScript, b *brokertest.Broker, id, topic string, wanted func(*mqttc.Message) bool,
	then *mqttc.Message, done func()) {
	seen := make(chan struct{}, 1)
	ctx, cancel := context.WithCancel(context.Background())
	ts.Defer(cancel)
	c, err := mqttc.Dial(ctx, mqttc.Config{
		Endpoint: mqttc.Endpoint{Scheme: "mqtt", Host: b.Host, Port: b.Port}, ClientID: id, CleanStart: true,
		OnMessage: func(m *mqttc.Message) {
			if m.Topic == topic && wanted(m) {
				select {
				case seen <- struct{}{}:
				default:
				}
			}
		},
	})
	ts.Check(err)
	ts.Defer(func() { c.Disconnect(context.Background()) })
	_, err = c.Subscribe(ctx, []mqttc.Subscription{{Filter: topic, QoS: 1, RetainHandling: 2}}, mqttc.SubscribeOptions{})
	ts.Check(err)
	var pubErr error
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		select {
		case <-seen:
		case <-ctx.Done():
			return
		}
		if then != nil {
			pctx, pcancel := context.WithTimeout(ctx, waitLimit)
			defer pcancel()
			pubErr = c.Publish(pctx, then)
		}
		done()
	}()
	ts.Defer(func() {
		cancel()
		<-finished
		if pubErr != nil {
			ts.Logf("retainbroker: publish %s: %v", then.Topic, pubErr)
		}
	})
}
