package mqttc

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"time"
)

// Protocol versions, as the protocol level byte of CONNECT.
const (
	V31  = 3
	V311 = 4
	V5   = 5
)

// Config is everything Dial needs to open a session.
type Config struct {
	Endpoint        Endpoint
	TLS             *tls.Config // used when Endpoint.Secure(); nil = system roots
	ProtocolVersion int         // V5 (default), V311, V31
	ClientID        string
	KeepAlive       uint16 // seconds
	CleanStart      bool
	SessionExpiry   *uint32 // seconds; nil = not sent

	Username, Password       string
	HasUsername, HasPassword bool

	Will           *Message
	ConnectTimeout time.Duration // default 10s

	// Trace, if set, receives one line per packet sent or received.
	Trace io.Writer
	// OnMessage is called for each received PUBLISH, one at a time, in the
	// order they arrive; the ack is sent after it returns. Set it before
	// Dial so that messages arriving right after SUBACK are not missed.
	OnMessage func(*Message)
}

func (c Config) connectTimeout() time.Duration {
	if c.ConnectTimeout > 0 {
		return c.ConnectTimeout
	}
	return 10 * time.Second
}

// Dial connects to the broker and completes the CONNECT/CONNACK exchange.
// Errors are *NetError (network, TLS, timeout) or *ConnectError (refused).
func Dial(ctx context.Context, cfg Config) (Client, error) {
	switch cfg.ProtocolVersion {
	case 0, V5:
		return dialV5(ctx, cfg)
	case V311, V31:
		return nil, fmt.Errorf("%w: MQTT %s is not supported yet; use -V 5", ErrUnsupportedVersion, VersionName(cfg.ProtocolVersion))
	}
	return nil, fmt.Errorf("%w: %d", ErrUnsupportedVersion, cfg.ProtocolVersion)
}

// VersionName is the usual name of a protocol level: 5, 3.1.1 or 3.1.
func VersionName(v int) string {
	switch v {
	case V311:
		return "3.1.1"
	case V31:
		return "3.1"
	}
	return "5"
}
