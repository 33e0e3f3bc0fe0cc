package mqttc

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
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
	Transport       Transport   // WebSocket headers, proxy (transport.go)
	ProtocolVersion int         // V5 (default), V311, V31
	ClientID        string
	KeepAlive       uint16 // seconds
	CleanStart      bool
	SessionExpiry   *uint32 // seconds; nil = not sent

	// Fallback, if set, lets Dial connect with MQTT 3.1.1 when the broker
	// refuses MQTT 5 (ProtocolVersion V5 or 0); see Fallback.
	Fallback *Fallback

	Username, Password       string
	HasUsername, HasPassword bool

	Will           *Message
	ConnectTimeout time.Duration // default 10s

	// MaxInflight, if above 0, bounds the QoS 1 and 2 publishes awaiting
	// their acknowledgement, below the broker's Receive Maximum (MQTT 3
	// has none: then it replaces the client's own windows, see v3Client).
	MaxInflight int

	// Trace, if set, receives one line per packet sent or received.
	Trace io.Writer
	// OnMessage is called for each received PUBLISH, one at a time, in the
	// order they arrive; the ack is sent after it returns. Set it before
	// Dial so that messages arriving right after SUBACK are not missed.
	OnMessage func(*Message)
	// OnMessageAck, if set, is called instead of OnMessage and says whether
	// to acknowledge the message: one it did not take (a subscriber that
	// has printed all it was asked for) is left unacknowledged, so that the
	// broker keeps it for the session and sends it to its next connection.
	OnMessageAck func(*Message) bool
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
		if cfg.Fallback != nil {
			return cfg.Fallback.dial(ctx, cfg)
		}
		c, err := dialV5(ctx, cfg)
		var ce *ConnectError
		if errors.As(err, &ce) && refusesV5(err) {
			ce.Hint = "the broker does not speak MQTT 5: use -V 311"
		}
		return c, err
	case V311, V31:
		return dialV3(ctx, cfg, cfg.ProtocolVersion)
	}
	return nil, fmt.Errorf("%w: %d", ErrUnsupportedVersion, cfg.ProtocolVersion)
}

// Fallback is the choice of protocol version when none was asked for: MQTT 5
// first, and MQTT 3.1.1 if the broker refuses it. It is shared by copies of
// a Config, so once one connection has fallen back, the next ones connect
// with MQTT 3.1.1 straight away, and Notify is called once.
//
// A broker refuses MQTT 5 with CONNACK reason 0x84 "unsupported protocol
// version" (an MQTT 5 broker that has it turned off), with an MQTT 3.1.1
// CONNACK (4 bytes, return code 1 "unacceptable protocol version", which is
// what the 3.1.1 specification asks of it), or by closing the connection
// after CONNECT without a byte in reply.
type Fallback struct {
	// V5Only names options in use that need MQTT 5 (e.g. "--no-local"):
	// with them Dial does not fall back, and the refusal says why.
	V5Only []string
	// Notify, if set, is called when the first connection falls back.
	Notify func(from, to int)

	mu      sync.Mutex
	version int // V311 once a connection fell back
}

func (f *Fallback) settled() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.version
}

func (f *Fallback) dial(ctx context.Context, cfg Config) (Client, error) {
	if v := f.settled(); v != 0 {
		return dialV3(ctx, cfg, v)
	}
	c, err := dialV5(ctx, cfg)
	if err == nil || !refusesV5(err) {
		return c, err
	}
	if len(f.V5Only) > 0 {
		verb := "need"
		if len(f.V5Only) == 1 {
			verb = "needs"
		}
		hint := fmt.Sprintf("the broker does not speak MQTT 5 and %s %s it, so mqtk did not fall back to MQTT 3.1.1",
			strings.Join(f.V5Only, ", "), verb)
		var ce *ConnectError
		var ne *NetError
		switch {
		case errors.As(err, &ce):
			ce.Hint = hint
		case errors.As(err, &ne) && ne.Hint != "":
			ne.Hint += "; or " + hint
		case errors.As(err, &ne):
			ne.Hint = hint
		}
		return nil, err
	}
	// MQTT 3.1.1, and 3.1 if the broker refuses that too.
	var ce *ConnectError
	v := V311
	c, err3 := dialV3(ctx, cfg, v)
	if errors.As(err3, &ce) && ce.Code == 1 {
		v = V31
		c, err3 = dialV3(ctx, cfg, v)
	}
	if err3 != nil && !errors.As(err3, &ce) {
		return nil, err // no MQTT 3 broker either: the first failure says more
	}
	// The broker answered in MQTT 3: that is the version from now on.
	f.mu.Lock()
	first := f.version == 0
	f.version = v
	f.mu.Unlock()
	if first && f.Notify != nil {
		f.Notify(V5, v)
	}
	return c, err3
}

// refusesV5 reports whether err is a broker's refusal of MQTT 5 itself.
func refusesV5(err error) bool {
	var ce *ConnectError
	var ne *NetError
	switch {
	case errors.As(err, &ce):
		return ce.Version == V311 || ce.Version == V31 || ce.Code == 0x84
	case errors.As(err, &ne):
		return ne.unanswered
	}
	return false
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
