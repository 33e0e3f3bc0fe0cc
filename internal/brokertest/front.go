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
// otherwise relays the connection, CONNECT included, to the broker.
type Front struct {
	Addr string // 127.0.0.1:PORT
	Port int

	l       net.Listener
	backend string
	accept  []byte
	refuse  Refusal

	mu     sync.Mutex
	levels []byte // the level of each CONNECT, in order
	conns  map[net.Conn]bool
	closed bool
	wg     sync.WaitGroup
}

// NewFront listens on a free loopback port, in front of the broker at
// backend (host:port), accepting the protocol levels in accept (3: MQTT
// 3.1, 4: 3.1.1, 5: 5).
func NewFront(backend string, refuse Refusal, accept ...byte) (*Front, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	f := &Front{l: l, backend: backend, accept: accept, refuse: refuse, conns: map[net.Conn]bool{}}
	f.Addr = l.Addr().String()
	f.Port = l.Addr().(*net.TCPAddr).Port
	f.wg.Add(1)
	go f.serve()
	return f, nil
}

// Levels returns the protocol level of every CONNECT so far, in order.
func (f *Front) Levels() []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.levels)
}

// Close stops listening and closes every connection.
func (f *Front) Close() error {
	f.mu.Lock()
	f.closed = true
	for c := range f.conns {
		c.Close()
	}
	f.mu.Unlock()
	err := f.l.Close()
	f.wg.Wait()
	return err
}

// track notes a connection for Close; false if the front is closed.
func (f *Front) track(c net.Conn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return false
	}
	f.conns[c] = true
	return true
}

func (f *Front) serve() {
	defer f.wg.Done()
	for {
		c, err := f.l.Accept()
		if err != nil {
			return
		}
		if !f.track(c) {
			c.Close()
			return
		}
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			defer c.Close()
			_ = f.handle(c)
		}()
	}
}

func (f *Front) handle(c net.Conn) error {
	r := bufio.NewReader(c)
	connect, level, err := readConnect(r)
	if err != nil {
		return err
	}
	f.mu.Lock()
	f.levels = append(f.levels, level)
	f.mu.Unlock()
	if !slices.Contains(f.accept, level) {
		switch f.refuse {
		case RefuseV3:
			_, err = c.Write([]byte{0x20, 0x02, 0x00, 0x01})
		case RefuseV5:
			_, err = c.Write([]byte{0x20, 0x03, 0x00, 0x84, 0x00})
		}
		return err
	}
	b, err := net.Dial("tcp", f.backend)
	if err != nil {
		return err
	}
	if !f.track(b) {
		b.Close()
		return net.ErrClosed
	}
	defer b.Close()
	if _, err := b.Write(connect); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() {
		_, _ = io.Copy(c, b)
		c.Close()
		close(done)
	}()
	_, err = io.Copy(b, r)
	b.Close()
	<-done
	return err
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
	pkt := []byte{typ}
	n, mult := 0, 1
	for i := 0; ; i++ {
		b, err := r.ReadByte()
		if err != nil {
			return nil, 0, err
		}
		pkt = append(pkt, b)
		n += int(b&0x7f) * mult
		mult *= 128
		if b&0x80 == 0 {
			break
		}
		if i == 3 {
			return nil, 0, errors.New("malformed remaining length")
		}
	}
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

// String is the front's address as a URL.
func (f *Front) String() string { return "mqtt://127.0.0.1:" + strconv.Itoa(f.Port) }
