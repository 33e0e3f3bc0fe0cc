package broker

import (
	"bytes"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
)

// TestMaxKeepalive: with a cap on the keep-alive, an MQTT 5 client asking
// for more, or for none (0), is given the cap in CONNACK's Server Keep
// Alive and held to it; one asking for less keeps its own, untold. An MQTT
// 3.1.1 client cannot be told, so one asking for more or for none is
// refused with "identifier rejected", as mosquitto 2 does, rather than
// accepted and later disconnected for an idleness it was entitled to.
func TestMaxKeepalive(t *testing.T) {
	s, addr := startLoopback(t, Config{MaxKeepalive: 60})
	const absent = -1
	for _, tc := range []struct {
		name      string
		version   byte
		ask       uint16
		code      byte // CONNACK reason or return code
		serverKA  int  // Server Keep Alive in a v5 CONNACK, or absent
		effective uint16
	}{
		{"v5 none", 5, 0, 0, 60, 60},
		{"v5 above", 5, 61, 0, 60, 60},
		{"v5 at", 5, 60, 0, absent, 60},
		{"v5 below", 5, 30, 0, absent, 30},
		{"v3.1.1 none", 4, 0, 0x02, absent, 0},
		{"v3.1.1 above", 4, 61, 0x02, absent, 0},
		{"v3.1.1 at", 4, 60, 0, absent, 60},
		{"v3.1.1 below", 4, 30, 0, absent, 30},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(time.Minute)) // a bound against a hang only
			id := "ka-" + strings.ReplaceAll(tc.name, " ", "-")
			if tc.version == 5 {
				_, err = (&packets.Connect{ProtocolName: "MQTT", ProtocolVersion: 5, ClientID: id, CleanStart: true,
					KeepAlive: tc.ask, Properties: &packets.Properties{}}).WriteTo(c)
			} else {
				_, err = c.Write(connectV311(id, tc.ask))
			}
			if err != nil {
				t.Fatal(err)
			}
			var code byte
			serverKA := absent
			if tc.version == 5 {
				cp, err := packets.ReadPacket(c)
				if err != nil {
					t.Fatalf("read CONNACK: %v", err)
				}
				ack, ok := cp.Content.(*packets.Connack)
				if !ok {
					t.Fatalf("got %v, want CONNACK", cp)
				}
				code = ack.ReasonCode
				if ack.Properties.ServerKeepAlive != nil {
					serverKA = int(*ack.Properties.ServerKeepAlive)
				}
			} else {
				ack := make([]byte, 4)
				if _, err := io.ReadFull(c, ack); err != nil {
					t.Fatalf("read CONNACK: %v", err)
				}
				if !bytes.Equal(ack[:3], []byte{0x20, 0x02, 0x00}) {
					t.Fatalf("CONNACK % x", ack)
				}
				code = ack[3]
			}
			if code != tc.code || serverKA != tc.serverKA {
				t.Errorf("CONNACK code %#x, Server Keep Alive %d; want %#x, %d", code, serverKA, tc.code, tc.serverKA)
			}
			if tc.code != 0 {
				if n, err := io.Copy(io.Discard, c); err != nil || n != 0 {
					t.Errorf("after the refusal: %d more bytes, %v; want the connection closed", n, err)
				}
				return
			}
			cl, ok := s.m.Clients.Get(id)
			if !ok {
				t.Fatal("the client is not known to the broker")
			}
			if cl.State.Keepalive != tc.effective {
				t.Errorf("the broker holds the client to a keep-alive of %d s, want %d", cl.State.Keepalive, tc.effective)
			}
		})
	}
}

// connectV311 is an MQTT 3.1.1 CONNECT (clean session) with a short client
// identifier.
func connectV311(id string, keepalive uint16) []byte {
	body := []byte{0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, byte(keepalive >> 8), byte(keepalive), 0, byte(len(id))}
	body = append(body, id...)
	return append([]byte{0x10, byte(len(body))}, body...)
}

// TestKeepAliveGrace: a client silent for longer than its keep-alive is
// disconnected only after one and a half keep-alives [MQTT-3.1.2-22]: with
// a keep-alive of 1 second, not before 1.5 seconds have passed since it
// sent its CONNECT. (mochi allowed 1 second, so a client whose PINGREQ
// was due then was cut off.) The bound is a lower one: a slow machine
// only makes the disconnection later.
func TestKeepAliveGrace(t *testing.T) {
	_, addr := startLoopback(t, Config{})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Minute)) // a bound against a hang only
	sent := time.Now()                             // the broker's deadline can only start after this
	if _, err := c.Write(connectV311("ka-grace", 1)); err != nil {
		t.Fatal(err)
	}
	ack := make([]byte, 4)
	if _, err := io.ReadFull(c, ack); err != nil || ack[3] != 0 {
		t.Fatalf("CONNACK % x, %v", ack, err)
	}
	if n, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatalf("read %d bytes from a broker that had nothing to send", n)
	}
	if silent := time.Since(sent); silent < 1500*time.Millisecond {
		t.Errorf("disconnected after %v of silence with a keep-alive of 1s, want 1.5s or more", silent)
	}
}
