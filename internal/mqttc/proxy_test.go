package mqttc_test

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"mqtk/internal/broker"
	"mqtk/internal/brokertest"
	"mqtk/internal/mqttc"
	"mqtk/internal/proxytest"
)

func TestParseProxy(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want mqttc.Proxy
	}{
		{"socks5://127.0.0.1", mqttc.Proxy{Scheme: "socks5", Host: "127.0.0.1", Port: 1080}},
		{"SOCKS5H://proxy.example:9050/", mqttc.Proxy{Scheme: "socks5h", Host: "proxy.example", Port: 9050}},
		{"http://proxy:3128", mqttc.Proxy{Scheme: "http", Host: "proxy", Port: 3128}},
		{"http://proxy", mqttc.Proxy{Scheme: "http", Host: "proxy", Port: 80}},
		{"http://u:p%40ss:w@[::1]:8080", mqttc.Proxy{Scheme: "http", Host: "::1", Port: 8080, Username: "u", Password: "p@ss:w", HasAuth: true}},
		{"socks5://u:@h:1", mqttc.Proxy{Scheme: "socks5", Host: "h", Port: 1, Username: "u", HasAuth: true}},
	} {
		got, err := mqttc.ParseProxy(tc.in)
		if err != nil {
			t.Errorf("ParseProxy(%q): %v", tc.in, err)
			continue
		}
		if *got != tc.want {
			t.Errorf("ParseProxy(%q) = %+v, want %+v", tc.in, *got, tc.want)
		}
	}
	for _, in := range []string{"", "127.0.0.1:1080", "https://u:secret@h", "socks4://h", "http://u:secret@h:x",
		"http://u:secret@", "socks5://u:secret@h/path", "http://u:secret@h?q", "socks5://:secret@h", "http://u:secret%zz@h",
		"socks5://u:" + strings.Repeat("secret", 50) + "@h", "http://u:secret/x@h", "http://u:x@secret@h:x", "socks5://u:secret@h:1/p@q"} {
		_, err := mqttc.ParseProxy(in)
		if err == nil {
			t.Errorf("ParseProxy(%q) succeeded, want an error", in)
			continue
		}
		if strings.Contains(err.Error(), "secret") {
			t.Errorf("ParseProxy(%q) error shows the password: %v", in, err)
		}
	}
}

// TestProxyRoundTrip connects through SOCKS5 and HTTP CONNECT proxies, with
// and without credentials, over mqtt, mqtts, ws and wss, and checks that
// the proxy carried the connection to the address we named.
func TestProxyRoundTrip(t *testing.T) {
	b := brokertest.Start(t, broker.Config{})
	brokerAddr := strings.TrimPrefix(b.URL, "mqtt://")
	gw := startGateway(t, brokerAddr, nil)
	gws := startGateway(t, brokerAddr, &tls.Config{})
	tlsPort, tlsCA := tlsFront(t, brokerAddr, &tls.Config{})

	type target struct {
		name string
		cfg  mqttc.Config
		addr string // where the proxy dials
	}
	targets := func(host string) []target {
		return []target{
			{"mqtt", mqttc.Config{Endpoint: mqttc.Endpoint{Scheme: "mqtt", Host: host, Port: b.Port}}, brokerAddr},
			{"mqtts", mqttc.Config{Endpoint: mqttc.Endpoint{Scheme: "mqtts", Host: host, Port: tlsPort},
				TLS: tlsConfig(t, mqttc.TLSOptions{CAFile: tlsCA, ServerName: "example.com"})}, "127.0.0.1:" + strconv.Itoa(tlsPort)},
			{"ws", mqttc.Config{Endpoint: gw.endpoint("ws", host)}, "127.0.0.1:" + strconv.Itoa(gw.port)},
			{"wss", mqttc.Config{Endpoint: gws.endpoint("wss", host),
				TLS: tlsConfig(t, mqttc.TLSOptions{CAFile: gws.caFile(t), ServerName: "example.com"})}, "127.0.0.1:" + strconv.Itoa(gws.port)},
		}
	}
	for _, kind := range []string{"socks5", "socks5h", "http"} {
		for _, auth := range []bool{false, true} {
			// socks5h and http send the name to the proxy, which resolves
			// broker.test (to the target's address); socks5 resolves it here,
			// so it gets a name the resolver knows.
			host := "broker.test"
			if kind == "socks5" {
				host = "localhost"
			}
			for _, tg := range targets(host) {
				name := kind + "/" + tg.name
				if auth {
					name += "/auth"
				}
				t.Run(name, func(t *testing.T) {
					o := proxytest.Options{Kind: strings.TrimSuffix(kind, "h"), Target: tg.addr}
					if auth {
						o.User, o.Password = "al ice", "p@ss:word"
					}
					p := proxytest.Start(t, o)
					cfg := tg.cfg
					cfg.Transport.Proxy = &mqttc.Proxy{Scheme: kind, Host: "127.0.0.1", Port: port(t, p.Addr),
						Username: o.User, Password: o.Password, HasAuth: auth}
					roundTrip(t, cfg)
					got := p.Targets()
					if len(got) != 1 {
						t.Fatalf("the proxy carried %d connections, want 1: %q", len(got), got)
					}
					h, _, _ := net.SplitHostPort(got[0])
					switch {
					case kind == "socks5" && net.ParseIP(h) == nil:
						t.Errorf("socks5:// sent the name %q to the proxy, want an address resolved here", got[0])
					case kind != "socks5" && got[0] != net.JoinHostPort("broker.test", strconv.Itoa(cfg.Endpoint.Port)):
						t.Errorf("the proxy was asked for %q", got[0])
					}
				})
			}
		}
	}
}

func port(t *testing.T, addr string) int {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(p)
	return n
}

// TestProxyErrors: a proxy that cannot be reached, refuses our credentials,
// cannot reach the broker, or is no proxy at all gives a *NetError naming
// the proxy without credentials, and a remedy.
func TestProxyErrors(t *testing.T) {
	b := brokertest.Start(t, broker.Config{})
	closed := closedPort(t)
	for _, tc := range []struct {
		name  string
		proxy proxytest.Options // Kind "" for no proxy listening
		url   string            // --proxy, with PORT for the proxy's port
		to    string            // broker host:port
		want  string            // regexp of the whole message after "connect mqtt://...: "
	}{
		{"refused", proxytest.Options{}, "socks5://u:secret@127.0.0.1:" + closed, b.Host + ":" + strconv.Itoa(b.Port),
			`^proxy socks5://127\.0\.0\.1:\d+: dial tcp 127\.0\.0\.1:\d+: connect: connection refused \(is the proxy running\? check --proxy\)$`},
		{"socks auth", proxytest.Options{Kind: "socks5", User: "u", Password: "right"}, "socks5://u:secret@PROXY", "127.0.0.1:1883",
			`^proxy socks5://127\.0\.0\.1:\d+: user name and password refused \(check the user name and password in --proxy\)$`},
		{"socks no auth", proxytest.Options{Kind: "socks5", User: "u", Password: "right"}, "socks5://PROXY", "127.0.0.1:1883",
			`^proxy socks5://127\.0\.0\.1:\d+: no acceptable authentication method \(the proxy wants a user name and password: socks5://USER:PASSWORD@127\.0\.0\.1:\d+\)$`},
		{"http auth", proxytest.Options{Kind: "http", User: "u", Password: "right"}, "http://u:secret@PROXY", "broker.test:1883",
			`^proxy http://127\.0\.0\.1:\d+: CONNECT broker\.test:1883: 407 Proxy Authentication Required \(check the user name and password in --proxy\)$`},
		{"socks target", proxytest.Options{Kind: "socks5"}, "socks5h://u:secret@PROXY", "127.0.0.1:" + closed,
			`^proxy socks5h://127\.0\.0\.1:\d+: CONNECT 127\.0\.0\.1:\d+: connection refused \(the proxy could not connect to the broker: check the broker's address as the proxy sees it\)$`},
		{"http target", proxytest.Options{Kind: "http"}, "http://PROXY", "127.0.0.1:" + closed,
			`^proxy http://127\.0\.0\.1:\d+: CONNECT 127\.0\.0\.1:\d+: 502 Bad Gateway \(the proxy could not connect to the broker`},
		{"not socks", proxytest.Options{}, "socks5://" + b.Host + ":" + strconv.Itoa(b.Port), "127.0.0.1:1883",
			`^proxy socks5://127\.0\.0\.1:\d+: .* \(is it a SOCKS5 proxy\? check --proxy\)$`},
		{"not http", proxytest.Options{}, "http://" + b.Host + ":" + strconv.Itoa(b.Port), "broker.test:1883",
			`^proxy http://127\.0\.0\.1:\d+: no HTTP answer to CONNECT: .* \(is it an HTTP proxy\? check --proxy\)$`},
		// For ws:// too: the proxy's silence is not the broker's (it said
		// "no answer to the WebSocket handshake: is this a WebSocket port?").
		{"not http, ws", proxytest.Options{}, "http://" + b.Host + ":" + strconv.Itoa(b.Port), "ws:broker.test:80",
			`^proxy http://127\.0\.0\.1:\d+: no HTTP answer to CONNECT: .* \(is it an HTTP proxy\? check --proxy\)$`},
		{"silent", proxytest.Options{}, "http://u:secret@" + silentListener(t), "broker.test:1883",
			`^proxy http://127\.0\.0\.1:\d+: context deadline exceeded \(the proxy did not answer within --connect-timeout\)$`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url := tc.url
			if tc.proxy.Kind != "" {
				url = strings.Replace(url, "PROXY", proxytest.Start(t, tc.proxy).Addr, 1)
			}
			p, err := mqttc.ParseProxy(url)
			if err != nil {
				t.Fatal(err)
			}
			to, ws := strings.CutPrefix(tc.to, "ws:")
			scheme := "mqtt"
			if ws {
				scheme = "ws"
			}
			host, portStr, _ := net.SplitHostPort(to)
			n, _ := strconv.Atoi(portStr)
			cfg := mqttc.Config{Endpoint: mqttc.Endpoint{Scheme: scheme, Host: host, Port: n, Path: "/mqtt"}, ClientID: "x"}
			if tc.name == "silent" {
				cfg.ConnectTimeout = 100 * time.Millisecond // it never answers: how long we wait does not matter
			}
			cfg.Transport.Proxy = p
			_, err = mqttc.Dial(context.Background(), cfg)
			var ne *mqttc.NetError
			if !errors.As(err, &ne) {
				t.Fatalf("got %v (%T), want a *NetError", err, err)
			}
			msg := strings.TrimPrefix(err.Error(), "connect "+cfg.Endpoint.String()+": ")
			if !regexp.MustCompile(tc.want).MatchString(msg) {
				t.Errorf("got  %s\nwant %s", msg, tc.want)
			}
			if strings.Contains(err.Error(), "secret") || strings.Contains(err.Error(), "right") {
				t.Errorf("the error shows a password: %s", err)
			}
		})
	}
}

// silentListener is a listening port that never accepts: the kernel
// completes the connection, and nothing ever answers.
func silentListener(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln.Addr().String()
}

// closedPort is a loopback port nothing listens on.
func closedPort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, p, _ := net.SplitHostPort(ln.Addr().String())
	ln.Close()
	return p
}
