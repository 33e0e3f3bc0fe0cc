package mqttc_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"mqtk/internal/broker"
	"mqtk/internal/brokertest"
	"mqtk/internal/mqttc"
)

// wsGateway serves MQTT over WebSocket (subprotocol "mqtt") on an ephemeral
// port and relays each connection to the broker's TCP listener, as a
// WebSocket gateway in front of a broker does.
func wsGateway(t *testing.T, tcpAddr string) (host string, port int) {
	up := websocket.Upgrader{Subprotocols: []string{"mqtt"}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/mqtt" {
			http.NotFound(w, r)
			return
		}
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		if ws.Subprotocol() != "mqtt" {
			t.Errorf("client asked for subprotocol %q, want mqtt", ws.Subprotocol())
			return
		}
		tcp, err := net.Dial("tcp", tcpAddr)
		if err != nil {
			return
		}
		defer tcp.Close()
		go func() {
			buf := make([]byte, 32*1024)
			for {
				n, err := tcp.Read(buf)
				if n > 0 && ws.WriteMessage(websocket.BinaryMessage, buf[:n]) != nil {
					return
				}
				if err != nil {
					ws.Close()
					return
				}
			}
		}()
		for {
			_, r, err := ws.NextReader()
			if err != nil {
				return
			}
			if _, err := io.Copy(tcp, r); err != nil {
				return
			}
		}
	}))
	t.Cleanup(srv.Close)
	addr := srv.Listener.Addr().(*net.TCPAddr)
	return "127.0.0.1", addr.Port
}

func TestWebSocketRoundTrip(t *testing.T) {
	b := brokertest.Start(t, broker.Config{})
	host, port := wsGateway(t, strings.TrimPrefix(b.URL, "mqtt://"))
	u, err := mqttc.ParseURL("ws://" + net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan *mqttc.Message, 1)
	ctx := context.Background()
	c, err := mqttc.Dial(ctx, mqttc.Config{Endpoint: u.Endpoint, ClientID: "ws-client", CleanStart: true, OnMessage: func(m *mqttc.Message) { got <- m }})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Disconnect(ctx)
	if _, err := c.Subscribe(ctx, []mqttc.Subscription{{Filter: "ws/#", QoS: 1}}, mqttc.SubscribeOptions{}); err != nil {
		t.Fatal(err)
	}
	payload := strings.Repeat("websocket ", 10000) // spans several frames
	if err := c.Publish(ctx, &mqttc.Message{Topic: "ws/t", Payload: []byte(payload), QoS: 1}); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-got:
		if m.Topic != "ws/t" || string(m.Payload) != payload {
			t.Errorf("got %q (%d bytes)", m.Topic, len(m.Payload))
		}
	case <-time.After(30 * time.Second): // bound against a hang only
		t.Fatal("no message over WebSocket")
	}
}
