package mqttc

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Proxy is a proxy that carries the connection to the broker: SOCKS5
// (RFC 1928, with RFC 1929 user name and password) or an HTTP proxy's
// CONNECT method. Both are written here rather than taken from
// golang.org/x/net/proxy, which has no HTTP CONNECT and reports a SOCKS
// failure only as text: one small dialer gives one error type for both.
type Proxy struct {
	// Scheme is socks5 (broker names resolved here), socks5h (resolved by
	// the proxy) or http (CONNECT; names resolved by the proxy).
	Scheme   string
	Host     string
	Port     int
	Username string
	Password string
	HasAuth  bool
	// Source is where the proxy was given, for hints: --proxy when empty.
	Source string
}

// String is the proxy's URL without credentials: safe to print.
func (p *Proxy) String() string {
	return p.Scheme + "://" + net.JoinHostPort(p.Host, strconv.Itoa(p.Port))
}

func proxyDefaultPort(scheme string) int {
	if scheme == "http" {
		return 80
	}
	return 1080
}

// ParseProxy parses a --proxy value:
// socks5://[user:password@]host[:port], socks5h://... or http://...;
// user and password may be %-escaped. Its errors never show the password.
func ParseProxy(s string) (*Proxy, error) {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		return nil, fmt.Errorf("%q has no scheme: use socks5://, socks5h:// or http://", redact(s))
	}
	p := &Proxy{Scheme: strings.ToLower(scheme)}
	switch p.Scheme {
	case "socks5", "socks5h", "http":
	default:
		return nil, fmt.Errorf("%q: unsupported scheme %q: use socks5://, socks5h:// or http://", redact(s), scheme)
	}
	rest = strings.TrimSuffix(rest, "/")
	if strings.ContainsAny(rest, "/?#") {
		return nil, fmt.Errorf("%q: a proxy URL has no path, query or fragment", redact(s))
	}
	a, err := parseAuthority(rest)
	if err != nil {
		return nil, fmt.Errorf("%q: %v", redact(s), err)
	}
	p.Host, p.Port = a.host, a.port
	if p.Port == 0 {
		p.Port = proxyDefaultPort(p.Scheme)
	}
	if a.hasUsername {
		user, err1 := url.PathUnescape(a.username)
		pass, err2 := url.PathUnescape(a.password)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("%q: bad %%-escape in the user name or password", redact(s))
		}
		p.Username, p.Password, p.HasAuth = user, pass, true
	}
	if err := p.checkAuth(); err != nil {
		return nil, err
	}
	return p, nil
}

// checkAuth checks what SOCKS5 can carry (RFC 1929: 1 to 255 bytes each).
func (p *Proxy) checkAuth() error {
	if !p.HasAuth || p.Scheme == "http" {
		return nil
	}
	if len(p.Username) == 0 || len(p.Username) > 255 || len(p.Password) > 255 {
		return fmt.Errorf("%s: a SOCKS5 user name must have 1 to 255 bytes, a password at most 255", p)
	}
	return nil
}

// proxyFromEnvironment is the proxy net/http would use for the WebSocket
// endpoint ep: HTTP_PROXY for ws://, HTTPS_PROXY for wss://, none for hosts
// in NO_PROXY or for localhost and loopback addresses. nil means none.
func proxyFromEnvironment(ep Endpoint) (*Proxy, error) {
	scheme := "http"
	if ep.Secure() {
		scheme = "https"
	}
	u, err := http.ProxyFromEnvironment(&http.Request{URL: &url.URL{Scheme: scheme, Host: ep.Address()}})
	if err != nil || u == nil {
		if err != nil { // its message quotes the variable's value, password and all
			return nil, invalidf("%s_PROXY is not a proxy URL; fix it, or list %s in NO_PROXY", strings.ToUpper(scheme), ep.Host)
		}
		return nil, nil
	}
	source := strings.ToUpper(scheme) + "_PROXY"
	p, err := ParseProxy(u.String())
	if err != nil {
		return nil, invalidf("%s %v", source, err)
	}
	p.Source = source
	return p, nil
}

// ProxyError is a failure at the proxy: it could not be reached, did not
// accept our credentials, could not reach the broker, or did not speak its
// protocol. It names the proxy without credentials.
type ProxyError struct {
	Proxy string // the proxy's URL, without credentials
	Err   error
	hint  string
}

func (e *ProxyError) Error() string { return "proxy " + e.Proxy + ": " + e.Err.Error() }
func (e *ProxyError) Unwrap() error { return e.Err }

// The kinds of proxy failure, each with its remedy.
const (
	proxyUnreachable = iota
	proxyAuth
	proxyTarget
	proxyProtocol
)

func (p *Proxy) fail(kind int, err error) *ProxyError {
	where := p.Source
	if where == "" {
		where = "--proxy"
	}
	var hint string
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		hint = "the proxy did not answer within --connect-timeout"
	case kind == proxyUnreachable:
		hint = "is the proxy running? check " + where
	case kind == proxyAuth && p.HasAuth:
		hint = "check the user name and password in " + where
	case kind == proxyAuth:
		hint = "the proxy wants a user name and password: " + p.Scheme + "://USER:PASSWORD@" + net.JoinHostPort(p.Host, strconv.Itoa(p.Port))
	case kind == proxyTarget:
		hint = "the proxy could not connect to the broker: check the broker's address as the proxy sees it"
	case kind == proxyProtocol && p.Scheme == "http":
		hint = "is it an HTTP proxy? check " + where
	case kind == proxyProtocol:
		hint = "is it a SOCKS5 proxy? check " + where
	}
	return &ProxyError{Proxy: p.String(), Err: err, hint: hint}
}

// dial opens a connection to addr (host:port) through the proxy. The
// handshake with the proxy is bounded by ctx.
func (p *Proxy) dial(ctx context.Context, addr string) (net.Conn, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, err
	}
	if p.Scheme == "socks5" && net.ParseIP(host) == nil {
		// socks5:// resolves the broker's name here, as curl does;
		// socks5h:// leaves it to the proxy.
		ips, err := net.DefaultResolver.LookupIPAddr(ctx, host)
		if err != nil {
			return nil, err
		}
		host = ips[0].IP.String()
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort(p.Host, strconv.Itoa(p.Port)))
	if err != nil {
		return nil, p.fail(proxyUnreachable, err)
	}
	// Cancelling ctx, or its deadline, ends a handshake that hangs.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	tunnel, err := p.handshake(conn, host, port)
	if !stop() {
		conn.Close()
		return nil, p.fail(proxyUnreachable, ctx.Err())
	}
	if err != nil {
		conn.Close()
		return nil, err
	}
	return tunnel, nil
}

func (p *Proxy) handshake(conn net.Conn, host string, port int) (net.Conn, error) {
	if p.Scheme == "http" {
		return p.httpConnect(conn, net.JoinHostPort(host, strconv.Itoa(port)))
	}
	return conn, p.socks5Connect(conn, host, port)
}

// httpConnect asks an HTTP proxy for a tunnel to addr.
func (p *Proxy) httpConnect(conn net.Conn, addr string) (net.Conn, error) {
	req := "CONNECT " + addr + " HTTP/1.1\r\nHost: " + addr + "\r\n"
	if p.HasAuth {
		req += "Proxy-Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte(p.Username+":"+p.Password)) + "\r\n"
	}
	if _, err := io.WriteString(conn, req+"\r\n"); err != nil {
		return nil, p.fail(proxyUnreachable, err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil {
		return nil, p.fail(proxyProtocol, fmt.Errorf("no HTTP answer to CONNECT: %w", err))
	}
	resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusProxyAuthRequired:
		return nil, p.fail(proxyAuth, fmt.Errorf("CONNECT %s: %s", addr, resp.Status))
	case resp.StatusCode == http.StatusBadGateway || resp.StatusCode == http.StatusServiceUnavailable || resp.StatusCode == http.StatusGatewayTimeout:
		return nil, p.fail(proxyTarget, fmt.Errorf("CONNECT %s: %s", addr, resp.Status))
	case resp.StatusCode/100 != 2:
		return nil, p.fail(proxyProtocol, fmt.Errorf("CONNECT %s: %s", addr, resp.Status))
	}
	if br.Buffered() > 0 { // the broker spoke first; keep what was read ahead
		return &readAheadConn{Conn: conn, r: br}, nil
	}
	return conn, nil
}

type readAheadConn struct {
	net.Conn
	r io.Reader
}

func (c *readAheadConn) Read(b []byte) (int, error) { return c.r.Read(b) }

// socks5Connect asks a SOCKS5 proxy for a connection to host:port, with
// user name and password authentication if we have them.
func (p *Proxy) socks5Connect(conn net.Conn, host string, port int) error {
	methods := []byte{5, 1, 0} // version 5, one method: no authentication
	if p.HasAuth {
		methods = []byte{5, 2, 0, 2} // or user name and password
	}
	if _, err := conn.Write(methods); err != nil {
		return p.fail(proxyUnreachable, err)
	}
	var reply [2]byte
	if _, err := io.ReadFull(conn, reply[:]); err != nil {
		return p.fail(proxyProtocol, fmt.Errorf("no SOCKS5 answer: %w", err))
	}
	switch {
	case reply[0] != 5:
		return p.fail(proxyProtocol, fmt.Errorf("not a SOCKS5 answer (version %d)", reply[0]))
	case reply[1] == 0xFF:
		return p.fail(proxyAuth, errors.New("no acceptable authentication method"))
	case reply[1] == 2 && p.HasAuth:
		msg := append([]byte{1, byte(len(p.Username))}, p.Username...)
		msg = append(append(msg, byte(len(p.Password))), p.Password...)
		if _, err := conn.Write(msg); err != nil {
			return p.fail(proxyUnreachable, err)
		}
		if _, err := io.ReadFull(conn, reply[:]); err != nil {
			return p.fail(proxyProtocol, fmt.Errorf("no answer to the user name and password: %w", err))
		}
		if reply[1] != 0 {
			return p.fail(proxyAuth, errors.New("user name and password refused"))
		}
	case reply[1] != 0:
		return p.fail(proxyProtocol, fmt.Errorf("unknown authentication method %d", reply[1]))
	}

	req := []byte{5, 1, 0} // version 5, CONNECT, reserved
	if ip := net.ParseIP(host); ip == nil {
		if len(host) > 255 {
			return p.fail(proxyTarget, fmt.Errorf("host name %.20q... is too long for SOCKS5", host))
		}
		req = append(append(req, 3, byte(len(host))), host...)
	} else if ip4 := ip.To4(); ip4 != nil {
		req = append(append(req, 1), ip4...)
	} else {
		req = append(append(req, 4), ip.To16()...)
	}
	req = append(req, byte(port>>8), byte(port))
	if _, err := conn.Write(req); err != nil {
		return p.fail(proxyUnreachable, err)
	}
	// Reply: version, code, reserved, address type, bound address, port.
	var head [4]byte
	if _, err := io.ReadFull(conn, head[:]); err != nil {
		return p.fail(proxyProtocol, fmt.Errorf("no answer to CONNECT: %w", err))
	}
	if head[1] != 0 {
		target := net.JoinHostPort(host, strconv.Itoa(port))
		kind := proxyTarget
		if head[1] == 7 || head[1] == 8 {
			kind = proxyProtocol
		}
		return p.fail(kind, fmt.Errorf("CONNECT %s: %s", target, socks5Reply(head[1])))
	}
	var skip int
	switch head[3] {
	case 1:
		skip = 4 + 2
	case 4:
		skip = 16 + 2
	case 3:
		var n [1]byte
		if _, err := io.ReadFull(conn, n[:]); err != nil {
			return p.fail(proxyProtocol, err)
		}
		skip = int(n[0]) + 2
	default:
		return p.fail(proxyProtocol, fmt.Errorf("unknown address type %d in the answer to CONNECT", head[3]))
	}
	if _, err := io.CopyN(io.Discard, conn, int64(skip)); err != nil {
		return p.fail(proxyProtocol, err)
	}
	return nil
}

// socks5Reply names a SOCKS5 reply code (RFC 1928, section 6).
func socks5Reply(code byte) string {
	names := []string{1: "general SOCKS server failure", 2: "connection not allowed by ruleset",
		3: "network unreachable", 4: "host unreachable", 5: "connection refused", 6: "TTL expired",
		7: "command not supported", 8: "address type not supported"}
	if int(code) < len(names) {
		return names[code]
	}
	return fmt.Sprintf("reply code %d", code)
}
