package brokertest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"sync"

	"github.com/mochi-mqtt/server/v2/packets"

	"mqtk/internal/proxytest"
)

// Refusal is how a Front turns away a CONNECT whose protocol level it does
// not accept.
type Refusal string

const (
	// RefuseV3 answers as an MQTT 3.1.1 broker must: CONNACK with return
	// code 1, "unacceptable protocol version" (20 02 00 01), then closes.
	RefuseV3 Refusal = "v3"
	// RefuseV5 answers as an MQTT 5 broker may: CONNACK with reason code
	// 0x84, "unsupported protocol version" (20 03 00 84 00), then closes.
	RefuseV5 Refusal = "v5"
	// RefuseClose closes the connection without a reply.
	RefuseClose Refusal = "close"
)

// Front is a TCP listener in front of a broker that accepts only some MQTT
// protocol levels, as a broker that speaks only MQTT 3.1.1 does: it reads
// each client's CONNECT, refuses it if its level is not accepted, and
// otherwise relays the connection, CONNECT included, to the broker. The
// listening and relaying are proxytest's.
type Front struct {
	Port int // on 127.0.0.1

	p      *proxytest.Proxy
	accept []byte
	refuse Refusal

	mu     sync.Mutex
	levels []byte // the level of each CONNECT, in order
}

// NewFront listens on a free loopback port, in front of the broker at
// backend (host:port), accepting the protocol levels in accept (3: MQTT
// 3.1, 4: 3.1.1, 5: 5).
func NewFront(backend string, refuse Refusal, accept ...byte) (*Front, error) {
	f := &Front{accept: accept, refuse: refuse}
	p, err := proxytest.New(proxytest.Options{Kind: "custom", Target: backend, Serve: f.handle})
	if err != nil {
		return nil, err
	}
	f.p, f.Port = p, p.Port
	return f, nil
}

// Levels returns the protocol level of every CONNECT so far, in order.
func (f *Front) Levels() []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.levels)
}

// Close stops listening and closes every connection.
func (f *Front) Close() error { return f.p.Close() }

func (f *Front) handle(p *proxytest.Proxy, c net.Conn) {
	r := bufio.NewReader(c)
	connect, level, err := readConnect(r)
	if err != nil {
		return
	}
	f.mu.Lock()
	f.levels = append(f.levels, level)
	f.mu.Unlock()
	if !slices.Contains(f.accept, level) {
		switch f.refuse {
		case RefuseV3:
			_, _ = c.Write([]byte{0x20, 0x02, 0x00, 0x01})
		case RefuseV5:
			_, _ = c.Write([]byte{0x20, 0x03, 0x00, 0x84, 0x00})
		}
		return
	}
	_ = p.Tunnel(r, c, connect)
}

// readConnect reads one CONNECT packet and returns its bytes and protocol
// level.
func readConnect(r *bufio.Reader) ([]byte, byte, error) {
	typ, err := r.ReadByte()
	if err != nil {
		return nil, 0, err
	}
	if typ>>4 != 1 {
		return nil, 0, fmt.Errorf("first packet is of type %d, not CONNECT", typ>>4)
	}
	rec := &byteRecorder{r: r, b: []byte{typ}} // the remaining length, kept to relay
	n, _, err := packets.DecodeLength(rec)
	if err != nil {
		return nil, 0, err
	}
	pkt := rec.b
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return nil, 0, err
	}
	if len(body) < 2 {
		return nil, 0, errors.New("CONNECT too short")
	}
	nameLen := int(body[0])<<8 | int(body[1])
	if len(body) < 2+nameLen+1 {
		return nil, 0, errors.New("CONNECT too short")
	}
	return append(pkt, body...), body[2+nameLen], nil
}

// byteRecorder keeps the bytes read through it.
type byteRecorder struct {
	r *bufio.Reader
	b []byte
}

func (x *byteRecorder) ReadByte() (byte, error) {
	c, err := x.r.ReadByte()
	if err == nil {
		x.b = append(x.b, c)
	}
	return c, err
}

// String is the front's address as a URL.
func (f *Front) String() string { return "mqtt://127.0.0.1:" + strconv.Itoa(f.Port) }
