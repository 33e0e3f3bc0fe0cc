package mqttc

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"syscall"

	"github.com/gorilla/websocket"

	"mqtk/internal/wsconn"
)

// Transport is how the connection reaches the broker beyond its Endpoint.
type Transport struct {
	// WSHeader is added to the WebSocket handshake (ws, wss).
	WSHeader http.Header
	// Proxy, if not nil, carries mqtt, mqtts, ws and wss connections.
	// Without it, ws and wss use HTTP_PROXY/HTTPS_PROXY and NO_PROXY from
	// the environment, as net/http does (never for localhost or loopback).
	Proxy *Proxy
}

// dialTransport opens the byte stream to the broker described by cfg: TCP,
// TLS over TCP, a WebSocket (subprotocol "mqtt") over either, or a Unix
// socket, directly or through a proxy. Every protocol backend dials through
// here, so transports work the same whatever the MQTT version.
func dialTransport(ctx context.Context, cfg Config) (net.Conn, error) {
	ep, tlsConf := cfg.Endpoint, cfg.TLS
	if ep.Scheme == "unix" {
		var d net.Dialer
		return d.DialContext(ctx, "unix", ep.Host)
	}
	if ep.Secure() {
		if tlsConf == nil {
			tlsConf = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		tlsConf = tlsConf.Clone()
		if tlsConf.ServerName == "" {
			tlsConf.ServerName = ep.Host
		}
	}
	proxy := cfg.Transport.Proxy
	if proxy == nil && ep.WebSocket() {
		var err error
		if proxy, err = proxyFromEnvironment(ep); err != nil {
			return nil, err
		}
	}
	dial := func(ctx context.Context, _, addr string) (net.Conn, error) {
		if proxy != nil {
			return proxy.dial(ctx, addr)
		}
		var d net.Dialer
		return d.DialContext(ctx, "tcp", addr)
	}
	if ep.WebSocket() {
		// gorilla does the TLS handshake over what dial returns, with tlsConf.
		d := websocket.Dialer{Subprotocols: []string{wsconn.Subprotocol}, TLSClientConfig: tlsConf, NetDialContext: dial}
		ws, resp, err := d.DialContext(ctx, ep.String(), cfg.Transport.WSHeader)
		if resp != nil && resp.Body != nil {
			resp.Body.Close()
		}
		var proxyErr *ProxyError
		switch {
		case errors.As(err, &proxyErr):
			return nil, err // the proxy failed, not the handshake
		case errors.Is(err, websocket.ErrBadHandshake) && resp != nil:
			return nil, &wsHandshakeError{status: resp.StatusCode, msg: "WebSocket handshake refused: HTTP " + resp.Status}
		case !ep.Secure() && (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)):
			return nil, &wsHandshakeError{msg: "no answer to the WebSocket handshake"}
		}
		if err != nil {
			return nil, err
		}
		return wsconn.New(ws), nil
	}
	conn, err := dial(ctx, "tcp", ep.Address())
	if err != nil || !ep.Secure() {
		return conn, err
	}
	tc := tls.Client(conn, tlsConf)
	if err := tc.HandshakeContext(ctx); err != nil {
		conn.Close()
		return nil, err
	}
	return tc, nil
}

// wsHandshakeError is an HTTP answer other than 101 to the WebSocket
// handshake (status), or none at all over plain TCP (status 0).
type wsHandshakeError struct {
	status int
	msg    string
}

func (e *wsHandshakeError) Error() string { return e.msg }

func (e *wsHandshakeError) hint() string {
	switch {
	case e.status == 0:
		return "the server closed the connection: is this a WebSocket port? (if it speaks TLS, use wss://)"
	case e.status == http.StatusNotFound:
		return "check the WebSocket path in the URL; the default is /mqtt"
	case e.status == http.StatusUnauthorized || e.status == http.StatusForbidden:
		return "the server wants credentials: a gateway may take them with --ws-header"
	}
	return ""
}

// netHint suggests a remedy for common connection failures of a
// connection made with cfg.
func netHint(err error, cfg Config) string {
	var unknownCA x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var invalid x509.CertificateInvalidError
	var dnsErr *net.DNSError
	var recErr tls.RecordHeaderError
	var proxyErr *ProxyError
	var wsErr *wsHandshakeError
	switch {
	case errors.As(err, &proxyErr):
		return proxyErr.hint
	case errors.As(err, &wsErr):
		return wsErr.hint()
	case errors.Is(err, syscall.ENOENT):
		return "no socket at that path: is the broker running, and is it the path it listens on?"
	case errors.Is(err, syscall.EACCES):
		return "permission denied: for a Unix socket, check the permissions of the socket and its directory"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "is a broker running? `mqtk broker` starts one"
	case errors.As(err, &unknownCA):
		return "the broker's certificate is not signed by a CA we trust: give its CA with --cafile, or --insecure to skip verification"
	case errors.As(err, &hostErr):
		return "the certificate is for another name: connect by that name or set --tls-server-name"
	case errors.As(err, &invalid):
		return "the broker's certificate is not valid; --insecure skips verification"
	case errors.As(err, &recErr):
		return "the broker does not speak TLS on this port"
	case errors.Is(err, io.EOF), errors.Is(err, syscall.ECONNRESET):
		if cfg.TLS != nil {
			return "the broker closed the connection before answering: if this port does not speak TLS, use mqtt:// or ws:// and no --cafile (nor MQTK_CAFILE)"
		}
		return "the broker closed the connection before answering CONNECT: if this port speaks TLS, use mqtts:// or --cafile; if not, the broker's log says why it refused the CONNECT"
	case errors.As(err, &dnsErr):
		return "check the host name"
	case errors.Is(err, context.DeadlineExceeded):
		return "no answer within --connect-timeout"
	}
	return ""
}
