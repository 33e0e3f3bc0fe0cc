package broker

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"

	"mqtk/internal/mqttc"
)

// TestBadConnectionsClosed: malformed packets, oversize remaining lengths,
// garbage bytes and half-open sockets close that one connection (a
// half-open one when its CONNECT timeout or keep-alive runs out) and
// nothing else: a client connected all along goes on publishing and
// receiving.
func TestBadConnectionsClosed(t *testing.T) {
	s, addr := startLoopback(t, Config{ConnectTimeout: 250 * time.Millisecond, MaximumPacketSize: 1024})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // a bound against a hang only
	defer cancel()
	got := make(chan string, 10)
	healthy, err := mqttc.Dial(ctx, mqttc.Config{Endpoint: endpointOf(t, s.URLs()[0]), ClientID: "healthy", CleanStart: true,
		OnMessage: func(m *mqttc.Message) { got <- m.Topic }})
	if err != nil {
		t.Fatal(err)
	}
	defer healthy.Disconnect(ctx)
	if _, err := healthy.Subscribe(ctx, []mqttc.Subscription{{Filter: "robust/#", QoS: 1}}, mqttc.SubscribeOptions{}); err != nil {
		t.Fatal(err)
	}

	connect := func(keepalive uint16) []byte {
		var b bytes.Buffer
		(&packets.Connect{ProtocolName: "MQTT", ProtocolVersion: 5, ClientID: "bad", CleanStart: true,
			KeepAlive: keepalive, Properties: &packets.Properties{}}).WriteTo(&b)
		return b.Bytes()
	}
	cat := func(bs ...[]byte) []byte { return bytes.Join(bs, nil) }
	const none, unsupported = -1, -2 // unsupported: an MQTT 3.1.1 CONNACK with return code 1
	for _, tc := range []struct {
		name    string
		send    []byte
		connack int // the reason code of the (v5) CONNACK the broker answers with, none or refused
	}{
		{"garbage before CONNECT", []byte("GET / HTTP/1.1\r\nHost: broker\r\n\r\n"), none},
		{"a packet before CONNECT", []byte{0xc0, 0x00}, none}, // PINGREQ
		{"garbage after CONNECT", cat(connect(60), []byte{0x00, 0x00, 0xff, 0xff}), 0},
		{"remaining length beyond the maximum packet size", cat(connect(60), []byte{0x30, 0x80, 0x80, 0x40}), 0}, // 1 MiB PUBLISH, never sent
		{"remaining length beyond 268435455", cat(connect(60), []byte{0x30, 0xff, 0xff, 0xff, 0xff, 0x7f}), 0},
		{"CONNECT with remaining length beyond 268435455", []byte{0x10, 0xff, 0xff, 0xff, 0xff, 0x7f}, none},
		{"CONNECT with a string running past its end", []byte{0x10, 0x08, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05, 0x02}, none},
		{"CONNECT of another protocol", []byte{0x10, 0x0e, 0x00, 0x04, 'M', 'Q', 'T', 'X', 0x05, 0x02, 0x00, 0x3c, 0x00, 0x00, 0x01, 'x'}, 0x82},
		{"CONNECT of protocol version 9", []byte{0x10, 0x0e, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x09, 0x02, 0x00, 0x3c, 0x00, 0x00, 0x01, 'x'}, unsupported},
		{"half a CONNECT, then silence (CONNECT timeout)", connect(60)[:6], none},
		{"half a PUBLISH, then silence (keep-alive 1 s)", cat(connect(1), []byte{0x30, 0x0a, 0x00, 0x01}), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := c.Write(tc.send); err != nil {
				t.Fatal(err)
			}
			_ = c.SetReadDeadline(time.Now().Add(time.Minute)) // a bound against a hang only
			reply, err := io.ReadAll(c)
			if err != nil && !errors.Is(err, syscall.ECONNRESET) {
				t.Fatalf("the connection was not closed: %v", err)
			}
			switch {
			case tc.connack == none:
				if len(reply) > 0 {
					t.Errorf("the broker sent % x, want nothing", reply)
				}
			case tc.connack == unsupported:
				// An unknown level, answered as mosquitto does, in 3.1.1's
				// format: "unacceptable protocol level" [MQTT-3.1.2-2].
				// (mochi sent v5's "protocol violation", 0x82; fork change
				// 43.)
				if !bytes.Equal(reply, []byte{0x20, 0x02, 0x00, 0x01}) {
					t.Errorf("the broker sent % x, want CONNACK 20 02 00 01", reply)
				}
			default:
				cp, err := packets.ReadPacket(bytes.NewReader(reply))
				if err != nil {
					t.Errorf("the broker sent % x: %v, want CONNACK", reply, err)
				} else if ack, ok := cp.Content.(*packets.Connack); !ok || int(ack.ReasonCode) != tc.connack {
					t.Errorf("the broker sent %v, want CONNACK %#x", cp, tc.connack)
				}
			}

			// The client connected all along still works.
			topic := "robust/" + strings.ReplaceAll(tc.name, " ", "-")
			if err := healthy.Publish(ctx, &mqttc.Message{Topic: topic, Payload: []byte("x"), QoS: 1}); err != nil {
				t.Fatalf("the healthy client: %v", err)
			}
			select {
			case g := <-got:
				if g != topic {
					t.Errorf("the healthy client got %s, want %s", g, topic)
				}
			case <-ctx.Done():
				t.Fatal("the healthy client got nothing")
			}
		})
	}
}

// logLines is a log destination that hands each record to the test (and
// drops it if the test has stopped reading: the broker never waits on it).
type logLines chan string

func (l logLines) Write(p []byte) (int, error) {
	select {
	case l <- string(p):
	default:
	}
	return len(p), nil
}

// TestRefusedConnectLogged: a CONNECT refused for what it holds is logged
// with the reason and the address, also when the client gets no CONNACK
// (an MQTT 3.1.1 CONNECT with the reserved flag set: closed, as mosquitto
// does, fork change 43). Before, nothing was logged, and the operator
// could not learn why.
func TestRefusedConnectLogged(t *testing.T) {
	lines := make(logLines, 64)
	_, addr := startLoopback(t, Config{Logger: slog.New(slog.NewTextHandler(lines, nil))})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// CONNECT, MQTT 3.1.1, flags 0x03: clean session and the reserved bit.
	if _, err := c.Write([]byte{0x10, 0x0d, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x03, 0x00, 0x3c, 0x00, 0x01, 'x'}); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(time.Minute)) // a bound against a hang only
	if reply, _ := io.ReadAll(c); len(reply) > 0 {
		t.Fatalf("the broker sent % x, want the connection closed without CONNACK", reply)
	}
	deadline := time.After(time.Minute) // a bound against a hang only
	for {
		select {
		case l := <-lines:
			if strings.Contains(l, "connection refused") {
				if !strings.Contains(l, "reserved bit") || !strings.Contains(l, "remote=127.0.0.1:") {
					t.Errorf("logged %q, want the reason and the address", l)
				}
				return
			}
		case <-deadline:
			t.Fatal("the refused CONNECT was not logged")
		}
	}
}
