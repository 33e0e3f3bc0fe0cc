// Command hardstate puts a broker in a hard state to shut down and holds it
// there until its stdin closes: the load for scripts/perf-shutdown.sh.
//
// In order: a persistent session (client "offline", session expiry one
// hour) with QUEUED QoS 1 messages waiting for it; N idle clients, each
// with a subscription; a subscriber that stopped reading, with its socket
// buffers and its queue on the broker full (it waits for
// $SYS/broker/messages/dropped to move, so the broker needs a short
// --sys-interval and a small --max-queued); SILENT sockets that never send
// CONNECT. Then it prints "ready".
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/eclipse/paho.golang/packets"

	"mqtk/internal/mqttc"
)

func main() {
	url := flag.String("url", "mqtt://127.0.0.1:1883", "broker URL")
	n := flag.Int("n", 1000, "idle clients")
	silent := flag.Int("silent", 50, "sockets that never send CONNECT")
	queued := flag.Int("queued", 1000, "QoS 1 messages queued for the offline session")
	stalled := flag.Bool("stalled", true, "a subscriber that stopped reading")
	flag.Parse()
	if err := run(*url, *n, *silent, *queued, *stalled); err != nil {
		fmt.Fprintln(os.Stderr, "hardstate:", err)
		os.Exit(1)
	}
}

func run(url string, n, silent, queued int, withStalled bool) error {
	u, err := mqttc.ParseURL(url)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	ep := u.Endpoint
	pub, err := mqttc.Dial(ctx, mqttc.Config{Endpoint: ep, ClientID: "hardstate-pub", CleanStart: true})
	if err != nil {
		return err
	}

	// The persistent session and its queue.
	hour := uint32(3600)
	off, err := mqttc.Dial(ctx, mqttc.Config{Endpoint: ep, ClientID: "offline", CleanStart: true, SessionExpiry: &hour})
	if err != nil {
		return err
	}
	if _, err := off.Subscribe(ctx, []mqttc.Subscription{{Filter: "queued", QoS: 1}}, mqttc.SubscribeOptions{}); err != nil {
		return err
	}
	if err := off.Disconnect(ctx); err != nil {
		return err
	}
	for i := 0; i < queued; i++ {
		if err := pub.Publish(ctx, &mqttc.Message{Topic: "queued", Payload: []byte(strconv.Itoa(i)), QoS: 1}); err != nil {
			return err
		}
	}

	// The idle clients.
	var clients []mqttc.Client
	for i := 0; i < n; i++ {
		c, err := mqttc.Dial(ctx, mqttc.Config{Endpoint: ep, ClientID: fmt.Sprintf("idle-%d", i), CleanStart: true, KeepAlive: 600})
		if err != nil {
			return fmt.Errorf("client %d: %w", i, err)
		}
		if _, err := c.Subscribe(ctx, []mqttc.Subscription{{Filter: fmt.Sprintf("devices/%d/cmd", i), QoS: 1}}, mqttc.SubscribeOptions{}); err != nil {
			return fmt.Errorf("subscribe %d: %w", i, err)
		}
		clients = append(clients, c)
	}

	if withStalled {
		if err := stall(ctx, ep, pub); err != nil {
			return err
		}
	}

	// The silent sockets.
	for i := 0; i < silent; i++ {
		c, err := net.Dial("tcp", ep.Address())
		if err != nil {
			return err
		}
		defer c.Close()
	}

	fmt.Println("ready", len(clients), "clients")
	_, _ = io.Copy(io.Discard, os.Stdin)
	return nil
}

// stall connects a subscriber that reads nothing and publishes to it until
// its queue on the broker overflows. Its connection stays open until the
// process ends.
func stall(ctx context.Context, ep mqttc.Endpoint, pub mqttc.Client) error {
	stalled, err := net.Dial("tcp", ep.Address())
	if err != nil {
		return err
	}
	_ = stalled.(*net.TCPConn).SetReadBuffer(4096)
	var wire bytes.Buffer
	(&packets.Connect{ProtocolName: "MQTT", ProtocolVersion: 5, ClientID: "stalled", CleanStart: true, KeepAlive: 600, Properties: &packets.Properties{}}).WriteTo(&wire)
	// At QoS 0: a QoS 1 subscriber that stopped reading stalls its publishers
	// (mochi takes a packet identifier for it under the lock its blocked
	// write holds), and this one would never fill its queue.
	(&packets.Subscribe{PacketID: 1, Subscriptions: []packets.SubOptions{{Topic: "load", QoS: 0}}, Properties: &packets.Properties{}}).WriteTo(&wire)
	if _, err := stalled.Write(wire.Bytes()); err != nil {
		return err
	}
	dropped := make(chan struct{}, 1)
	watch, err := mqttc.Dial(ctx, mqttc.Config{Endpoint: ep, ClientID: "hardstate-watch", CleanStart: true,
		OnMessage: func(m *mqttc.Message) {
			if d, _ := strconv.Atoi(string(m.Payload)); d > 0 {
				select {
				case dropped <- struct{}{}:
				default:
				}
			}
		}})
	if err != nil {
		return err
	}
	if _, err := watch.Subscribe(ctx, []mqttc.Subscription{{Filter: "$SYS/broker/messages/dropped"}}, mqttc.SubscribeOptions{}); err != nil {
		return err
	}
	payload := bytes.Repeat([]byte("x"), 4096)
	for full := false; !full; {
		select {
		case <-dropped:
			full = true
		case <-ctx.Done():
			return fmt.Errorf("the stalled subscriber's queue never overflowed: %w", ctx.Err())
		default:
			if err := pub.Publish(ctx, &mqttc.Message{Topic: "load", Payload: payload, QoS: 1}); err != nil {
				return err
			}
		}
	}
	return watch.Disconnect(ctx)
}
