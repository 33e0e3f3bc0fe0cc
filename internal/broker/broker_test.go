package broker

import (
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// TestSilentConnectionClosed: a socket that never sends CONNECT is closed
// after the connect timeout, and Close does not wait for it.
func TestSilentConnectionClosed(t *testing.T) {
	_, addr := startLoopback(t, Config{ConnectTimeout: 50 * time.Millisecond})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(time.Minute)) // bound against a hang only
	if n, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("read from a silent connection: %d bytes, %v; want EOF from the broker closing it", n, err)
	}
}

// TestCloseWithSilentConnection: Close ends a connection that never sent
// CONNECT at once, not when its connect timeout (an hour here, so that
// waiting for it fails the test) runs out.
func TestCloseWithSilentConnection(t *testing.T) {
	s, err := Start(Config{Listen: []string{"127.0.0.1:0"}, ConnectTimeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", strings.TrimPrefix(s.URLs()[0], "mqtt://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	done := make(chan struct{})
	go func() { s.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Minute): // bound against a hang only
		t.Fatal("Close waited for a connection that never sent CONNECT")
	}
}

// startLoopback starts a broker with cfg and a listener on a free
// 127.0.0.1 port besides cfg.Listen's, closed when the test ends, and
// returns it with that listener's HOST:PORT (its URL is s.URLs()[0]).
func startLoopback(t testing.TB, cfg Config) (*Server, string) {
	t.Helper()
	cfg.Listen = append([]string{"127.0.0.1:0"}, cfg.Listen...)
	s, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, strings.TrimPrefix(s.URLs()[0], "mqtt://")
}

// TestIsLoopback: a listen address is loopback if its host is a loopback
// address or localhost (in any case); other names are not resolved, so the
// check does not depend on what a resolver answers at that moment.
func TestIsLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:1883": true,
		"127.1.2.3:1883": true,
		"[::1]:1883":     true,
		"localhost:1883": true,
		"LOCALHOST:1883": true,
		"0.0.0.0:1883":   false,
		"[::]:1883":      false,
		":1883":          false,
		"10.0.0.1:1883":  false,
		"vm:1883":        false, // not resolved
		"127.0.0.1":      false, // no port: not an address
	} {
		if got := IsLoopback(addr); got != want {
			t.Errorf("IsLoopback(%q) = %v, want %v", addr, got, want)
		}
	}
}
