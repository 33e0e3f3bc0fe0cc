package mqttc_test

import (
	"context"
	"crypto/tls"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"mqtk/internal/broker"
	"mqtk/internal/brokertest"
	"mqtk/internal/mqttc"
	"mqtk/internal/proxytest"
)

// gateway serves MQTT over WebSocket (subprotocol "mqtt") on an ephemeral
// port and relays each connection to the broker's TCP listener, as a
// WebSocket gateway in front of a broker does; with TLS it serves wss, with
// the httptest certificate (for 127.0.0.1 and example.com). It records the
// handshakes' request headers and negotiated ALPN protocols.
type gateway struct {
	srv  *httptest.Server
	port int

	mu      sync.Mutex
	headers []http.Header
	alpn    []string
}

func startGateway(t *testing.T, tcpAddr string, tlsConf *tls.Config) *gateway {
	g := &gateway{}
	up := websocket.Upgrader{Subprotocols: []string{"mqtt"}}
	g.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.mu.Lock()
		h := r.Header.Clone()
		h.Set("Host", r.Host) // net/http moves it out of Header
		g.headers = append(g.headers, h)
		if r.TLS != nil {
			g.alpn = append(g.alpn, r.TLS.NegotiatedProtocol)
		}
		g.mu.Unlock()
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
	g.srv.Config.ErrorLog = log.New(io.Discard, "", 0) // failed handshakes are what some tests want
	if tlsConf != nil {
		g.srv.TLS = tlsConf
		g.srv.StartTLS()
	} else {
		g.srv.Start()
	}
	t.Cleanup(g.srv.Close)
	g.port = g.srv.Listener.Addr().(*net.TCPAddr).Port
	return g
}

// endpoint is the gateway as scheme://host:port/mqtt.
func (g *gateway) endpoint(scheme, host string) mqttc.Endpoint {
	return mqttc.Endpoint{Scheme: scheme, Host: host, Port: g.port, Path: "/mqtt"}
}

// caFile writes the gateway's certificate, its own CA, as a PEM file.
func (g *gateway) caFile(t *testing.T) string {
	f := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(f, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: g.srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

func (g *gateway) seen() ([]http.Header, []string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]http.Header(nil), g.headers...), append([]string(nil), g.alpn...)
}

// roundTrip connects with cfg, subscribes, publishes a QoS 1 message large
// enough to span several WebSocket frames, and receives it.
func roundTrip(t *testing.T, cfg mqttc.Config) {
	t.Helper()
	got := make(chan *mqttc.Message, 1)
	ctx := context.Background()
	cfg.ClientID, cfg.CleanStart = "rt-"+strings.NewReplacer("/", "-", " ", "-").Replace(t.Name()), true
	cfg.OnMessage = func(m *mqttc.Message) { got <- m }
	c, err := mqttc.Dial(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Disconnect(ctx)
	if _, err := c.Subscribe(ctx, []mqttc.Subscription{{Filter: "rt/#", QoS: 1}}, mqttc.SubscribeOptions{}); err != nil {
		t.Fatal(err)
	}
	payload := strings.Repeat("round trip ", 10000)
	if err := c.Publish(ctx, &mqttc.Message{Topic: "rt/t", Payload: []byte(payload), QoS: 1}); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-got:
		if m.Topic != "rt/t" || string(m.Payload) != payload {
			t.Errorf("got %q (%d bytes)", m.Topic, len(m.Payload))
		}
	case <-time.After(30 * time.Second): // bound against a hang only
		t.Fatal("no message came back")
	}
}

func TestWebSocketRoundTrip(t *testing.T) {
	b := brokertest.Start(t, broker.Config{})
	g := startGateway(t, strings.TrimPrefix(b.URL, "mqtt://"), nil)
	roundTrip(t, mqttc.Config{Endpoint: g.endpoint("ws", "127.0.0.1")})
}

func TestUnixSocketRoundTrip(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "mqtt.sock")
	brokertest.Start(t, broker.Config{Listen: []string{"127.0.0.1:0"}, Unix: []string{sock}})
	roundTrip(t, mqttc.Config{Endpoint: mqttc.UnixEndpoint(sock)})
}

// TestWSHeader: --ws-header's headers reach the WebSocket server, Host
// included, for ws and wss.
func TestWSHeader(t *testing.T) {
	b := brokertest.Start(t, broker.Config{})
	for _, secure := range []bool{false, true} {
		var g *gateway
		var cfg mqttc.Config
		if secure {
			g = startGateway(t, strings.TrimPrefix(b.URL, "mqtt://"), &tls.Config{})
			cfg.Endpoint = g.endpoint("wss", "127.0.0.1")
			cfg.TLS = tlsConfig(t, mqttc.TLSOptions{CAFile: g.caFile(t)})
		} else {
			g = startGateway(t, strings.TrimPrefix(b.URL, "mqtt://"), nil)
			cfg.Endpoint = g.endpoint("ws", "127.0.0.1")
		}
		cfg.Transport.WSHeader = http.Header{"Authorization": {"Bearer t0ken"}, "X-Tenant": {"a", "b"}, "Host": {"gw.example"}}
		roundTrip(t, cfg)
		hs, _ := g.seen()
		if len(hs) != 1 {
			t.Fatalf("secure=%v: %d handshakes, want 1", secure, len(hs))
		}
		h := hs[0]
		if h.Get("Authorization") != "Bearer t0ken" || strings.Join(h.Values("X-Tenant"), ",") != "a,b" || h.Get("Host") != "gw.example" {
			t.Errorf("secure=%v: the gateway saw headers %v", secure, h)
		}
		if got := h.Get("Sec-Websocket-Protocol"); got != "mqtt" {
			t.Errorf("secure=%v: Sec-WebSocket-Protocol %q, want mqtt", secure, got)
		}
	}
}

func tlsConfig(t *testing.T, o mqttc.TLSOptions) *tls.Config {
	t.Helper()
	c, err := o.Config()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestWSSTLSOptions: the TLS options apply to wss:// as to mqtts://: the CA,
// the name checked, --insecure, and the same hints on failure.
func TestWSSTLSOptions(t *testing.T) {
	b := brokertest.Start(t, broker.Config{})
	g := startGateway(t, strings.TrimPrefix(b.URL, "mqtt://"), &tls.Config{})
	ca := g.caFile(t)
	for _, tc := range []struct {
		name string
		host string
		o    mqttc.TLSOptions
		err  string // "" for success; else in the error with its hint
	}{
		{"cafile", "127.0.0.1", mqttc.TLSOptions{CAFile: ca}, ""},
		{"server name", "127.0.0.1", mqttc.TLSOptions{CAFile: ca, ServerName: "example.com"}, ""},
		{"insecure", "127.0.0.1", mqttc.TLSOptions{Insecure: true}, ""},
		{"system roots", "127.0.0.1", mqttc.TLSOptions{}, "certificate signed by unknown authority (the broker's certificate is not signed by a CA we trust: give its CA with --cafile"},
		{"wrong name", "127.0.0.1", mqttc.TLSOptions{CAFile: ca, ServerName: "wrong.example"}, "not wrong.example (the certificate is for another name"},
		{"tls 1.3", "127.0.0.1", mqttc.TLSOptions{CAFile: ca, Version: "tlsv1.3"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := mqttc.Config{Endpoint: g.endpoint("wss", tc.host), TLS: tlsConfig(t, tc.o)}
			if tc.err == "" {
				roundTrip(t, cfg)
				return
			}
			cfg.ClientID = "x"
			_, err := mqttc.Dial(context.Background(), cfg)
			var ne *mqttc.NetError
			if !errors.As(err, &ne) || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("got %v, want a NetError with %q", err, tc.err)
			}
		})
	}
}

// tlsFront accepts TLS on a loopback port with the httptest certificate and
// relays each connection to target; conf sets ALPN and checks. It returns
// its port and the PEM file of its CA.
func tlsFront(t *testing.T, target string, conf *tls.Config) (port int, caFile string) {
	g := startGateway(t, target, &tls.Config{}) // for its certificate only
	conf.Certificates = g.srv.TLS.Certificates
	p := proxytest.Start(t, proxytest.Options{Kind: "tls", TLS: conf, Target: target})
	return p.Port, g.caFile(t)
}

// TestALPN: --tls-alpn is offered in the TLS handshake of mqtts:// and
// wss://, and a server that requires a protocol gets it.
func TestALPN(t *testing.T) {
	b := brokertest.Start(t, broker.Config{})
	target := strings.TrimPrefix(b.URL, "mqtt://")
	negotiated := make(chan string, 10)
	port, ca := tlsFront(t, target, &tls.Config{
		NextProtos: []string{"mqtt"},
		VerifyConnection: func(cs tls.ConnectionState) error {
			negotiated <- cs.NegotiatedProtocol
			if cs.NegotiatedProtocol != "mqtt" {
				return errors.New("ALPN mqtt required")
			}
			return nil
		},
	})
	ep := mqttc.Endpoint{Scheme: "mqtts", Host: "127.0.0.1", Port: port}
	roundTrip(t, mqttc.Config{Endpoint: ep, TLS: tlsConfig(t, mqttc.TLSOptions{CAFile: ca, ALPN: []string{"x-other", "mqtt"}})})
	if got := <-negotiated; got != "mqtt" {
		t.Errorf("negotiated %q, want mqtt", got)
	}
	// Without ALPN the server refuses the handshake.
	_, err := mqttc.Dial(context.Background(), mqttc.Config{Endpoint: ep, ClientID: "x", TLS: tlsConfig(t, mqttc.TLSOptions{CAFile: ca})})
	if err == nil {
		t.Error("connected without ALPN to a server that requires it")
	}
	if got := <-negotiated; got != "" {
		t.Errorf("negotiated %q without ALPN", got)
	}

	// An HTTP server serves only http/1.1 (or h2) after ALPN: that is what
	// a wss:// client offers when the server wants ALPN.
	g := startGateway(t, target, &tls.Config{})
	cfg := mqttc.Config{Endpoint: g.endpoint("wss", "127.0.0.1"), TLS: tlsConfig(t, mqttc.TLSOptions{CAFile: g.caFile(t), ALPN: []string{"http/1.1"}})}
	roundTrip(t, cfg)
	cfg.TLS = tlsConfig(t, mqttc.TLSOptions{CAFile: g.caFile(t)})
	roundTrip(t, cfg)
	if _, alpn := g.seen(); strings.Join(alpn, ",") != "http/1.1," {
		t.Errorf("wss negotiated %q, want http/1.1 with --tls-alpn and nothing without", alpn)
	}
}

// TestWSRefused: an HTTP answer other than 101 names the status and a remedy.
func TestWSRefused(t *testing.T) {
	b := brokertest.Start(t, broker.Config{})
	g := startGateway(t, strings.TrimPrefix(b.URL, "mqtt://"), nil)
	ep := g.endpoint("ws", "127.0.0.1")
	ep.Path = "/elsewhere"
	_, err := mqttc.Dial(context.Background(), mqttc.Config{Endpoint: ep, ClientID: "x"})
	want := "connect ws://127.0.0.1:" + strings.TrimPrefix(g.srv.URL, "http://127.0.0.1:") + "/elsewhere: WebSocket handshake refused: HTTP 404 Not Found (check the WebSocket path in the URL; the default is /mqtt)"
	if err == nil || err.Error() != want {
		t.Errorf("got %v\nwant %s", err, want)
	}
}
