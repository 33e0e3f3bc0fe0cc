package broker_test

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"mqtk/internal/broker"
)

// The broker's cost per delivered message, in-process over loopback TCP:
// one publisher, MQTT 5, 100-byte payloads, as `mqtk bench` sends them.
// The clients are raw and allocate nothing per message, so the allocation
// figures are the broker's (and the runtime's network poller's): they are
// stable from run to run, unlike times on a shared machine.
//
//	go test -run '^$' -bench . -benchmem ./internal/broker/
//
// Besides the per-publish figures, each reports B/delivery and
// allocs/delivery (all subscribers' copies counted).

func BenchmarkFanout(b *testing.B) {
	b.Run("qos0", func(b *testing.B) { benchDeliver(b, 0, 10, 1000) })
	b.Run("qos1", func(b *testing.B) { benchDeliver(b, 1, 10, 100) })
}

func BenchmarkOneToOne(b *testing.B) {
	b.Run("qos0", func(b *testing.B) { benchDeliver(b, 0, 1, 1000) })
	b.Run("qos1", func(b *testing.B) { benchDeliver(b, 1, 1, 100) })
}

// benchDeliver publishes b.N messages at qos to nsubs subscribers, with at
// most window messages not yet received by every subscriber (so no queue
// overflows and nothing is dropped).
func benchDeliver(b *testing.B, qos byte, nsubs, window int) {
	var conns []net.Conn
	b.Cleanup(func() { // after the broker has closed
		for _, c := range conns {
			c.Close()
		}
	})
	// As `mqtk broker` runs (brokertest adds hooks for tests' callbacks).
	br, err := broker.Start(broker.Config{Listen: []string{"127.0.0.1:0"}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { br.Close() })
	addr := strings.TrimPrefix(br.URLs()[0], "mqtt://")
	const topic = "bench/fanout"

	counts := make([]atomic.Int32, window) // subscribers that got seq, by seq % window
	tokens := make(chan struct{}, window)
	for range window {
		tokens <- struct{}{}
	}
	var wg sync.WaitGroup
	errs := make(chan error, nsubs+1)
	failed := make(chan struct{}) // closed on the first error: stop publishing
	var failOnce sync.Once
	fail := func(err error) {
		errs <- err
		failOnce.Do(func() { close(failed) })
	}
	received := make([]int, nsubs)
	n := b.N
	for i := range nsubs {
		c := benchConnect(b, addr, fmt.Sprintf("bench-sub-%d", i))
		conns = append(conns, c.conn)
		c.subscribe(b, topic, qos)
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := c.receive(n, func(seq uint64) {
				received[i]++
				slot := &counts[seq%uint64(window)]
				if slot.Add(1) == int32(nsubs) {
					slot.Store(0)
					tokens <- struct{}{}
				}
			})
			if err != nil {
				fail(fmt.Errorf("subscriber %d: %w", i, err))
			}
		}()
	}
	pub := benchConnect(b, addr, "bench-pub")
	conns = append(conns, pub.conn)
	if qos > 0 {
		wg.Add(1)
		go func() { // PUBACKs
			defer wg.Done()
			if err := pub.drainAcks(n); err != nil {
				fail(fmt.Errorf("publisher: %w", err))
			}
		}()
	}

	msg := benchPublish(topic, qos)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	b.ResetTimer()
	var id uint16
publish:
	for seq := range n {
		select {
		case <-tokens:
		case <-failed:
			break publish // the others end at their read deadline
		}
		if qos > 0 {
			id = id%65535 + 1
			binary.BigEndian.PutUint16(msg.id, id)
		}
		binary.BigEndian.PutUint64(msg.seq, uint64(seq))
		if _, err := pub.conn.Write(msg.raw); err != nil {
			b.Fatalf("publish: %v", err)
		}
	}
	wg.Wait()
	b.StopTimer()
	runtime.ReadMemStats(&after)
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	for i, got := range received {
		if got != n {
			b.Fatalf("subscriber %d received %d of %d messages", i, got, n)
		}
	}
	deliveries := float64(n * nsubs)
	b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/deliveries, "B/delivery")
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/deliveries, "allocs/delivery")
}

// benchClient is a raw MQTT 5 connection that allocates nothing per
// message once connected.
type benchClient struct {
	conn net.Conn
	r    *bufio.Reader
	buf  []byte
}

func benchConnect(b *testing.B, addr, id string) *benchClient {
	b.Helper()
	conn, err := net.DialTimeout("tcp", addr, wireTimeout)
	if err != nil {
		b.Fatalf("dial: %v", err)
	}
	c := &benchClient{conn: conn, r: bufio.NewReaderSize(conn, 64<<10), buf: make([]byte, 64<<10)}
	// As paho connects for mqtk bench: clean start, problem information.
	pk := packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Connect},
		ProtocolVersion: 5,
		Connect: packets.ConnectParams{ProtocolName: []byte("MQTT"), Clean: true, Keepalive: 60,
			ClientIdentifier: id},
		Properties: packets.Properties{RequestProblemInfo: 1, RequestProblemInfoFlag: true},
	}
	c.write(b, pk)
	if typ, body, err := c.next(); err != nil || typ>>4 != packets.Connack || body[1] != 0 {
		b.Fatalf("connect %s: CONNACK type %d % x, %v", id, typ, body, err)
	}
	return c
}

func (c *benchClient) write(b *testing.B, pk packets.Packet) {
	b.Helper()
	var buf bytes.Buffer
	var err error
	switch pk.FixedHeader.Type {
	case packets.Connect:
		err = pk.ConnectEncode(&buf)
	case packets.Subscribe:
		err = pk.SubscribeEncode(&buf)
	}
	if err == nil {
		_, err = c.conn.Write(buf.Bytes())
	}
	if err != nil {
		b.Fatalf("write: %v", err)
	}
}

func (c *benchClient) subscribe(b *testing.B, filter string, qos byte) {
	b.Helper()
	c.write(b, packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, ProtocolVersion: 5, PacketID: 1,
		Filters: packets.Subscriptions{{Filter: filter, Qos: qos}},
	})
	if typ, body, err := c.next(); err != nil || typ>>4 != packets.Suback || body[len(body)-1] != qos {
		b.Fatalf("subscribe: SUBACK type %d % x, %v", typ, body, err)
	}
}

// next reads a packet: its first byte and body (valid until the next call).
func (c *benchClient) next() (typ byte, body []byte, err error) {
	c.conn.SetReadDeadline(time.Now().Add(wireTimeout))
	h, err := c.r.ReadByte()
	if err != nil {
		return 0, nil, err
	}
	var n, shift int
	for {
		d, err := c.r.ReadByte()
		if err != nil {
			return 0, nil, err
		}
		n |= int(d&0x7f) << shift
		if d&0x80 == 0 {
			break
		}
		shift += 7
	}
	if n > len(c.buf) {
		return 0, nil, fmt.Errorf("packet of %d bytes", n)
	}
	if _, err := io.ReadFull(c.r, c.buf[:n]); err != nil {
		return 0, nil, err
	}
	return h, c.buf[:n], nil
}

// receive reads n PUBLISH packets, acknowledging those with QoS 1, and
// hands each one's sequence number to got.
func (c *benchClient) receive(n int, got func(seq uint64)) error {
	ack := []byte{packets.Puback << 4, 2, 0, 0}
	for range n {
		h, body, err := c.next()
		if err != nil {
			return err
		}
		if h>>4 != packets.Publish {
			return fmt.Errorf("packet type %d, not PUBLISH", h>>4)
		}
		qos := h >> 1 & 3
		off := 2 + int(binary.BigEndian.Uint16(body))
		if qos > 0 {
			copy(ack[2:], body[off:off+2])
			off += 2
		}
		props, m := binary.Uvarint(body[off:]) // < 128 here, so one byte as in MQTT
		off += m + int(props)
		if len(body) < off+8 {
			return errors.New("short payload")
		}
		got(binary.BigEndian.Uint64(body[off:]))
		if qos > 0 {
			if _, err := c.conn.Write(ack); err != nil {
				return err
			}
		}
	}
	return nil
}

// drainAcks reads n PUBACKs.
func (c *benchClient) drainAcks(n int) error {
	for range n {
		h, _, err := c.next()
		if err != nil {
			return err
		}
		if h>>4 != packets.Puback {
			return fmt.Errorf("packet type %d, not PUBACK", h>>4)
		}
	}
	return nil
}

// benchMessage is an encoded PUBLISH whose packet identifier and sequence
// number are rewritten in place.
type benchMessage struct{ raw, id, seq []byte }

func benchPublish(topic string, qos byte) benchMessage {
	payload := make([]byte, 100)
	pk := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: qos}, ProtocolVersion: 5,
		TopicName: topic, Payload: payload, PacketID: 1,
	}
	var buf bytes.Buffer
	if err := pk.PublishEncode(&buf); err != nil {
		panic(err)
	}
	raw := buf.Bytes()
	// fixed header (2 bytes: remaining < 128), topic, packet identifier,
	// properties (empty), payload
	off := 2 + 2 + len(topic)
	m := benchMessage{raw: raw}
	if qos > 0 {
		m.id = raw[off : off+2]
		off += 2
	}
	m.seq = raw[off+1 : off+9]
	return m
}
