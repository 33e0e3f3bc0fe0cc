// Package proxytest runs a SOCKS5 proxy, an HTTP CONNECT proxy or a TLS
// terminator on an ephemeral loopback port, for tests: it records every
// tunnel it opens, so a test can check that a connection really went
// through it.
package proxytest

import (
	"bufio"
	"crypto/tls"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"
)

// Options configure a proxy.
type Options struct {
	// Kind is "socks5", "http" (CONNECT), or "tls": a TLS terminator that
	// relays every connection to Target after the handshake.
	Kind     string
	User     string // credentials the proxy demands; none when User is ""
	Password string
	// Target, if set, is where every tunnel goes, whatever the client asked
	// for: it lets a test name the broker by a host name no resolver knows
	// (broker.test), as the proxy would resolve it.
	Target string
	// OnTunnel is called with the address the client asked for, once the
	// tunnel is open and before any byte is relayed.
	OnTunnel func(target string)

	// TLS is the terminator's configuration (Kind "tls").
	TLS *tls.Config
	// OnTLS is called with each handshake the terminator completes, before
	// it relays anything: what was negotiated and who the client is.
	OnTLS func(tls.ConnectionState)

	// Serve, with Kind "custom", handles each connection itself (it may
	// relay it to Target with Tunnel, or be the server itself); the Proxy
	// listens, tracks and closes.
	Serve func(p *Proxy, c net.Conn)
}

// Proxy is a running proxy.
type Proxy struct {
	Addr string // 127.0.0.1:PORT
	Port int

	o  Options
	ln net.Listener
	wg sync.WaitGroup

	mu      sync.Mutex
	conns   map[net.Conn]bool
	targets []string
	closed  bool
}

// New starts a proxy on 127.0.0.1:0.
func New(o Options) (*Proxy, error) {
	switch {
	case o.Kind == "tls" && (o.TLS == nil || o.Target == ""):
		return nil, errors.New("proxytest: a TLS terminator needs TLS and Target")
	case o.Kind == "custom" && o.Serve == nil:
		return nil, errors.New("proxytest: a custom proxy needs Serve")
	case o.Kind != "socks5" && o.Kind != "http" && o.Kind != "tls" && o.Kind != "custom":
		return nil, errors.New("proxytest: Kind is socks5, http, tls or custom")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{Addr: ln.Addr().String(), Port: ln.Addr().(*net.TCPAddr).Port,
		o: o, ln: ln, conns: map[net.Conn]bool{}}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Start is New for Go tests: it fails the test on error and closes the proxy
// when the test ends.
func Start(t testing.TB, o Options) *Proxy {
	t.Helper()
	p, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// Targets are the addresses of the tunnels opened so far, as the clients
// asked for them, in order.
func (p *Proxy) Targets() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.targets...)
}

// Close stops the proxy and every tunnel.
func (p *Proxy) Close() error {
	p.mu.Lock()
	p.closed = true
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	err := p.ln.Close()
	p.wg.Wait()
	return err
}

// track registers c for Close; false if the proxy is closing.
func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		c.Close()
		return false
	}
	p.conns[c] = true
	return true
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		if !p.track(c) {
			continue
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			defer c.Close()
			switch p.o.Kind {
			case "socks5":
				p.serveSOCKS5(c)
			case "http":
				p.serveHTTP(c)
			case "custom":
				p.o.Serve(p, c)
			default:
				p.serveTLS(c)
			}
		}()
	}
}

// dial opens the connection to the target the client asked for.
func (p *Proxy) dial(target string) (net.Conn, error) {
	if p.o.Target != "" {
		target = p.o.Target
	}
	c, err := net.DialTimeout("tcp", target, 30*time.Second) // a bound against a hang only
	if err == nil && !p.track(c) {
		return nil, net.ErrClosed
	}
	return c, err
}

// relay records the tunnel and copies bytes both ways until one side ends.
func (p *Proxy) relay(client io.Reader, clientConn, target net.Conn, asked string) {
	defer target.Close()
	p.mu.Lock()
	p.targets = append(p.targets, asked)
	p.mu.Unlock()
	if p.o.OnTunnel != nil {
		p.o.OnTunnel(asked)
	}
	done := make(chan struct{})
	go func() {
		_, _ = io.Copy(clientConn, target)
		clientConn.Close()
		close(done)
	}()
	_, _ = io.Copy(target, client)
	target.Close()
	<-done
}

// Tunnel connects c to Target: it writes first there, then copies bytes
// both ways (reading c through r, which may hold bytes already buffered)
// until one side ends.
func (p *Proxy) Tunnel(r io.Reader, c net.Conn, first []byte) error {
	t, err := p.dial(p.o.Target)
	if err != nil {
		return err
	}
	if _, err := t.Write(first); err != nil {
		t.Close()
		return err
	}
	p.relay(r, c, t, p.o.Target)
	return nil
}

// serveSOCKS5 speaks the server side of RFC 1928 (CONNECT only) and RFC 1929.
func (p *Proxy) serveSOCKS5(c net.Conn) {
	var head [2]byte
	if _, err := io.ReadFull(c, head[:]); err != nil || head[0] != 5 {
		return
	}
	methods := make([]byte, head[1])
	if _, err := io.ReadFull(c, methods); err != nil {
		return
	}
	want := byte(0)
	if p.o.User != "" {
		want = 2
	}
	offered := false
	for _, m := range methods {
		offered = offered || m == want
	}
	if !offered {
		_, _ = c.Write([]byte{5, 0xFF})
		return
	}
	_, _ = c.Write([]byte{5, want})
	if want == 2 {
		user, pass, ok := readSOCKSAuth(c)
		if !ok {
			return
		}
		if user != p.o.User || pass != p.o.Password {
			_, _ = c.Write([]byte{1, 1})
			return
		}
		_, _ = c.Write([]byte{1, 0})
	}
	var req [4]byte
	if _, err := io.ReadFull(c, req[:]); err != nil || req[1] != 1 {
		return
	}
	var host string
	switch req[3] {
	case 1, 4:
		ip := make(net.IP, 4)
		if req[3] == 4 {
			ip = make(net.IP, 16)
		}
		if _, err := io.ReadFull(c, ip); err != nil {
			return
		}
		host = ip.String()
	case 3:
		var n [1]byte
		if _, err := io.ReadFull(c, n[:]); err != nil {
			return
		}
		name := make([]byte, n[0])
		if _, err := io.ReadFull(c, name); err != nil {
			return
		}
		host = string(name)
	default:
		_, _ = c.Write([]byte{5, 8, 0, 1, 0, 0, 0, 0, 0, 0})
		return
	}
	var port [2]byte
	if _, err := io.ReadFull(c, port[:]); err != nil {
		return
	}
	asked := net.JoinHostPort(host, strconv.Itoa(int(binary.BigEndian.Uint16(port[:]))))
	t, err := p.dial(asked)
	if err != nil {
		_, _ = c.Write([]byte{5, 5, 0, 1, 0, 0, 0, 0, 0, 0}) // connection refused
		return
	}
	bound := t.LocalAddr().(*net.TCPAddr)
	reply := append([]byte{5, 0, 0, 1}, bound.IP.To4()...)
	reply = binary.BigEndian.AppendUint16(reply, uint16(bound.Port))
	if _, err := c.Write(reply); err != nil {
		t.Close()
		return
	}
	p.relay(c, c, t, asked)
}

func readSOCKSAuth(r io.Reader) (user, pass string, ok bool) {
	var b [2]byte
	if _, err := io.ReadFull(r, b[:]); err != nil || b[0] != 1 {
		return "", "", false
	}
	u := make([]byte, b[1])
	if _, err := io.ReadFull(r, u); err != nil {
		return "", "", false
	}
	if _, err := io.ReadFull(r, b[:1]); err != nil {
		return "", "", false
	}
	pw := make([]byte, b[0])
	if _, err := io.ReadFull(r, pw); err != nil {
		return "", "", false
	}
	return string(u), string(pw), true
}

// serveHTTP answers one CONNECT request, checking Proxy-Authorization (Basic).
func (p *Proxy) serveHTTP(c net.Conn) {
	br := bufio.NewReader(c)
	req, err := http.ReadRequest(br)
	if err != nil {
		return
	}
	if req.Method != http.MethodConnect {
		_, _ = io.WriteString(c, "HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
		return
	}
	if p.o.User != "" {
		want := "Basic " + base64.StdEncoding.EncodeToString([]byte(p.o.User+":"+p.o.Password))
		if req.Header.Get("Proxy-Authorization") != want {
			_, _ = io.WriteString(c, "HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"proxytest\"\r\nContent-Length: 0\r\n\r\n")
			return
		}
	}
	t, err := p.dial(req.Host)
	if err != nil {
		_, _ = io.WriteString(c, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
		return
	}
	if _, err := io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		t.Close()
		return
	}
	p.relay(br, c, t, req.Host)
}

// serveTLS completes the TLS handshake and relays to Target.
func (p *Proxy) serveTLS(c net.Conn) {
	tc := tls.Server(c, p.o.TLS)
	if tc.Handshake() != nil {
		return
	}
	if p.o.OnTLS != nil {
		p.o.OnTLS(tc.ConnectionState())
	}
	t, err := p.dial(p.o.Target)
	if err != nil {
		return
	}
	p.relay(tc, tc, t, p.o.Target)
}
