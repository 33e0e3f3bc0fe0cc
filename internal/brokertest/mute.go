package brokertest

import (
	"bufio"
	"io"
	"net"
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"

	"mqtk/internal/proxytest"
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
// answers; a DISCONNECT ends the connection, as at a broker. proxytest
// listens, tracks and closes.
type Mute struct {
	*proxytest.Proxy
	o MuteOptions
}

// NewMute starts a Mute broker.
func NewMute(o MuteOptions) (*Mute, error) {
	m := &Mute{o: o}
	p, err := proxytest.New(proxytest.Options{Kind: "custom", Serve: func(_ *proxytest.Proxy, c net.Conn) { m.serve(c) }})
	if err != nil {
		return nil, err
	}
	m.Proxy = p
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
