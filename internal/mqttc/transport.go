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

// dialTransport opens the byte stream to the broker described by cfg: TCP,
// TLS over TCP, a WebSocket (subprotocol "mqtt") over either, or a Unix
// socket. Every protocol backend dials through here, so transports work the
// same whatever the MQTT version.
func dialTransport(ctx context.Context, cfg Config) (net.Conn, error) {
	ep, tlsConf := cfg.Endpoint, cfg.TLS
	if ep.Secure() {
		if tlsConf == nil {
			tlsConf = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		tlsConf = tlsConf.Clone()
		if tlsConf.ServerName == "" {
			tlsConf.ServerName = ep.Host
		}
	}
	if ep.WebSocket() {
		d := websocket.Dialer{Subprotocols: []string{wsconn.Subprotocol}, TLSClientConfig: tlsConf, Proxy: http.ProxyFromEnvironment}
		ws, resp, err := d.DialContext(ctx, ep.String(), nil)
		if resp != nil && resp.Body != nil {
			resp.Body.Close()
		}
		if err != nil {
			return nil, err
		}
		return wsconn.New(ws), nil
	}
	var d net.Dialer
	if ep.Scheme == "unix" {
		return d.DialContext(ctx, "unix", ep.Host)
	}
	if ep.Secure() {
		td := tls.Dialer{NetDialer: &d, Config: tlsConf}
		return td.DialContext(ctx, "tcp", ep.Address())
	}
	return d.DialContext(ctx, "tcp", ep.Address())
}

// netHint suggests a remedy for common connection failures.
func netHint(err error) string {
	var unknownCA x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var invalid x509.CertificateInvalidError
	var dnsErr *net.DNSError
	var recErr tls.RecordHeaderError
	switch {
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
		return "the broker closed the connection before answering CONNECT: if this port speaks TLS, use mqtts:// or --cafile"
	case errors.As(err, &dnsErr):
		return "check the host name"
	case errors.Is(err, context.DeadlineExceeded):
		return "no answer within --connect-timeout"
	}
	return ""
}
