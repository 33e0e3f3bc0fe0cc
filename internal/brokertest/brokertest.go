// Package brokertest starts mqtk's embedded broker in-process on an
// ephemeral loopback port, for tests.
package brokertest

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"

	"mqtk/internal/broker"
)

// Broker is a running test broker.
type Broker struct {
	*broker.Server
	URL  string // mqtt://127.0.0.1:PORT (the first listener)
	Host string
	Port int

	mu      sync.Mutex
	changed chan struct{}  // closed and replaced whenever an event is counted
	events  map[string]int // "sub " + filter, "ack " + client ID
}

// New starts a broker with cfg on 127.0.0.1:0 (unless cfg names listeners).
func New(cfg broker.Config) (*Broker, error) {
	if len(cfg.Listen) == 0 && len(cfg.TLSListen) == 0 {
		cfg.Listen = []string{"127.0.0.1:0"}
	}
	b := &Broker{changed: make(chan struct{}), events: map[string]int{}}
	nextSub, nextAck := cfg.OnSubscribed, cfg.OnDelivered
	cfg.OnSubscribed = func(clientID, filter string) {
		b.count("sub " + filter)
		if nextSub != nil {
			nextSub(clientID, filter)
		}
	}
	cfg.OnDelivered = func(clientID string) {
		b.count("ack " + clientID)
		if nextAck != nil {
			nextAck(clientID)
		}
	}
	s, err := broker.Start(cfg)
	if err != nil {
		return nil, err
	}
	b.Server = s
	b.URL = s.URLs()[0]
	_, hostport, _ := strings.Cut(b.URL, "://")
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		s.Close()
		return nil, err
	}
	b.Host = host
	b.Port, _ = strconv.Atoi(port)
	return b, nil
}

// Start is New for Go tests: it fails the test on error and closes the broker
// when the test ends.
func Start(t testing.TB, cfg broker.Config) *Broker {
	t.Helper()
	b, err := New(cfg)
	if err != nil {
		t.Fatalf("start broker: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func (b *Broker) count(event string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.events[event]++
	close(b.changed)
	b.changed = make(chan struct{})
}

// WaitSubscribed blocks until n subscriptions to filter have been granted in
// total since the broker started, or ctx ends.
func (b *Broker) WaitSubscribed(ctx context.Context, filter string, n int) error {
	return b.wait(ctx, "sub "+filter, n)
}

// WaitDelivered blocks until clientID has acknowledged n QoS 1 or 2
// messages in total since the broker started, or ctx ends.
func (b *Broker) WaitDelivered(ctx context.Context, clientID string, n int) error {
	return b.wait(ctx, "ack "+clientID, n)
}

func (b *Broker) wait(ctx context.Context, event string, n int) error {
	for {
		b.mu.Lock()
		got, ch := b.events[event], b.changed
		b.mu.Unlock()
		if got >= n {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("waiting for %d of %q (have %d): %w", n, event, got, ctx.Err())
		}
	}
}
