package brokertest

import (
	"bufio"
	"io"
	"net"
	"sync"
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"
)

// MuteOptions shape a Mute broker.
type MuteOptions struct {
	// NoConnack: not even the CONNECT is answered.
	NoConnack bool
	// OnPacket, if set, gets the first byte (type and flags) of each
	// packet read after the CONNECT, in order per connection.
	OnPacket func(header byte)
}

// Mute is how a broker that has stopped answering looks: it accepts every
// connection on a free loopback port, answers the CONNECT with a
// successful MQTT 5 CONNACK (unless NoConnack), and then reads and never
// answers; a DISCONNECT ends the connection, as at a broker.
type Mute struct {
	Port int // on 127.0.0.1

	ln    net.Listener
	o     MuteOptions
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns map[net.Conn]bool
}

// NewMute starts a Mute broker.
func NewMute(o MuteOptions) (*Mute, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	m := &Mute{Port: ln.Addr().(*net.TCPAddr).Port, ln: ln, o: o, conns: map[net.Conn]bool{}}
	m.wg.Add(1)
	go m.accept()
	return m, nil
}

// StartMute is NewMute for Go tests: closed when the test ends.
func StartMute(t testing.TB, o MuteOptions) *Mute {
	t.Helper()
	m, err := NewMute(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// Close stops listening and closes every connection.
func (m *Mute) Close() error {
	err := m.ln.Close()
	m.mu.Lock()
	for c := range m.conns {
		c.Close()
	}
	m.mu.Unlock()
	m.wg.Wait()
	return err
}

func (m *Mute) accept() {
	defer m.wg.Done()
	for {
		c, err := m.ln.Accept()
		if err != nil {
			return
		}
		m.mu.Lock()
		m.conns[c] = true
		m.mu.Unlock()
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			defer c.Close()
			m.serve(c)
		}()
	}
}

func (m *Mute) serve(c net.Conn) {
	r := bufio.NewReader(c)
	for first := true; ; first = false {
		header, err := r.ReadByte()
		if err != nil {
			return
		}
		n, _, err := packets.DecodeLength(r)
		if err != nil {
			return
		}
		if _, err := io.CopyN(io.Discard, r, int64(n)); err != nil {
			return
		}
		if first {
			if !m.o.NoConnack {
				// CONNACK: no session, success, no properties.
				if _, err := c.Write([]byte{0x20, 0x03, 0x00, 0x00, 0x00}); err != nil {
					return
				}
			}
			continue
		}
		if m.o.OnPacket != nil {
			m.o.OnPacket(header)
		}
		if header>>4 == packets.Disconnect {
			return
		}
	}
}
