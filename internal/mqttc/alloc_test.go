package mqttc

import (
	"bufio"
	"context"
	"io"
	"net"
	"strconv"
	"sync/atomic"
	"testing"
)

// wireServer is a minimal MQTT 5 server for allocation benchmarks: it
// answers CONNECT, acknowledges QoS 1 publishes with PUBACK, and can stream
// a pre-encoded QoS 0 PUBLISH at the client once it subscribed. It allocates nothing per
// message, so that allocs/op is the client's.
func wireServer(b *testing.B, stream int) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { l.Close() })
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		r := bufio.NewReaderSize(c, 64<<10)
		var hdr [5]byte
		puback := []byte{0x40, 2, 0, 0}
		body := make([]byte, 1<<16)
		for {
			t, err := r.ReadByte()
			if err != nil {
				return
			}
			n, shift := 0, 0
			for {
				x, err := r.ReadByte()
				if err != nil {
					return
				}
				n |= int(x&0x7f) << shift
				shift += 7
				if x < 0x80 {
					break
				}
			}
			if _, err := io.ReadFull(r, body[:n]); err != nil {
				return
			}
			switch t >> 4 {
			case 1: // CONNECT -> CONNACK
				if _, err := c.Write([]byte{0x20, 3, 0, 0, 0}); err != nil {
					return
				}
			case 8: // SUBSCRIBE -> SUBACK (QoS 0 granted), then the stream
				if _, err := c.Write([]byte{0x90, 4, body[0], body[1], 0, 0}); err != nil {
					return
				}
				if stream > 0 {
					go func() {
						// PUBLISH QoS 0, topic "s", 100-byte payload.
						p := append([]byte{0x30, 104, 0, 1, 's', 0}, make([]byte, 100)...)
						w := bufio.NewWriterSize(c, 64<<10)
						for i := 0; i < stream; i++ {
							if _, err := w.Write(p); err != nil {
								return
							}
						}
						_ = w.Flush()
					}()
				}
			case 3: // PUBLISH QoS 1 -> PUBACK with its packet id
				if t&0x06 != 0 {
					tl := int(body[0])<<8 | int(body[1])
					at := 2 + tl
					puback[2], puback[3] = body[at], body[at+1]
					if _, err := c.Write(puback); err != nil {
						return
					}
				}
			case 12: // PINGREQ
				_, _ = c.Write([]byte{0xd0, 0})
			}
			_ = hdr
		}
	}()
	return l.Addr().String()
}

func dialWire(b *testing.B, addr string, onMessage func(*Message)) Client {
	host, port, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(port)
	c, err := Dial(context.Background(), Config{
		Endpoint: Endpoint{Scheme: "mqtt", Host: host, Port: p}, ClientID: "alloc", CleanStart: true,
		OnMessage: onMessage,
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = c.Disconnect(context.Background()) })
	return c
}

// BenchmarkPublishAsync is the client's cost of one publish, written and,
// at QoS 1, acknowledged: what mqtk bench and mqtk pub -l pay per message.
func BenchmarkPublishAsync(b *testing.B) {
	for _, qos := range []byte{0, 1} {
		b.Run("qos"+strconv.Itoa(int(qos)), func(b *testing.B) {
			c := dialWire(b, wireServer(b, 0), nil)
			m := &Message{Topic: "t", Payload: make([]byte, 100), QoS: qos}
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				p, err := c.PublishAsync(ctx, m)
				if err != nil {
					b.Fatal(err)
				}
				if err := p.Wait(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkReceive is the client's cost of one QoS 0 delivery, from the
// socket to OnMessage: what mqtk sub and mqtk bench's subscribers pay.
func BenchmarkReceive(b *testing.B) {
	var got atomic.Int64
	done := make(chan struct{})
	n := int64(b.N)
	c := dialWire(b, wireServer(b, b.N), func(*Message) {
		if got.Add(1) == n {
			close(done)
		}
	})
	b.ReportAllocs()
	b.ResetTimer()
	if _, err := c.Subscribe(context.Background(), []Subscription{{Filter: "s"}}, SubscribeOptions{}); err != nil {
		b.Fatal(err)
	}
	<-done
}
