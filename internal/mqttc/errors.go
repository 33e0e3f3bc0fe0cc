package mqttc

import (
	"errors"
	"fmt"
	"strings"
)

// NetError is a failure of the network or TLS: DNS, refused, unreachable,
// handshake, certificate, or a connection lost midway.
type NetError struct {
	Op   string // "connect", "publish", ...
	Addr string // broker URL without credentials
	Err  error
	Hint string // a remedy, if one helps

	// unanswered: the broker closed the connection after CONNECT without
	// a byte in reply, which some MQTT 3.1.1 brokers do to MQTT 5.
	unanswered bool
}

func (e *NetError) Error() string {
	s := fmt.Sprintf("%s %s: %v", e.Op, e.Addr, e.Err)
	if e.Hint != "" {
		s += " (" + e.Hint + ")"
	}
	return s
}

func (e *NetError) Unwrap() error { return e.Err }

// ConnectError is a CONNACK refusal.
type ConnectError struct {
	Addr string
	// Version is the protocol of the CONNACK, which gives Code its meaning:
	// V5 (or 0) for an MQTT 5 reason code, V311 or V31 for a 3.1.1 or 3.1
	// return code (1 to 5).
	Version int
	Code    byte
	Reason  string // the broker's reason string, if any (MQTT 5 only)
	Hint    string // a remedy, if one helps
}

func (e *ConnectError) Error() string {
	s := fmt.Sprintf("connect %s: broker refused the connection", e.Addr)
	if e.Version == V311 || e.Version == V31 {
		s += fmt.Sprintf(": %s (return code %d)", ConnackName(e.Version, e.Code), e.Code)
	} else {
		s = withReason(s, e.Code, e.Reason)
	}
	if e.Hint != "" {
		s += " (" + e.Hint + ")"
	}
	return s
}

// Temporary reports whether the refusal is one that may pass: the server
// is unavailable or busy for now.
func (e *ConnectError) Temporary() bool {
	if e.Version == V311 || e.Version == V31 {
		return e.Code == 3 // server unavailable
	}
	return e.Code == 0x88 || e.Code == 0x89 || e.Code == 0x9F
}

// RejectedError is an operation the broker answered with a reason code >=
// 0x80: a SUBACK, UNSUBACK, PUBACK, PUBREC or PUBCOMP failure.
type RejectedError struct {
	Op     string // "publish", "subscribe", "unsubscribe"
	Topic  string // topic or filter
	Code   byte
	Reason string // the broker's reason string, if any
}

func (e *RejectedError) Error() string {
	return withReason(fmt.Sprintf("%s %q: broker rejected it", e.Op, e.Topic), e.Code, e.Reason)
}

// withReason appends the reason code by name and the broker's reason string,
// unless that only repeats the name.
func withReason(s string, code byte, reason string) string {
	s += fmt.Sprintf(": %s (0x%02x)", ReasonName(code), code)
	if reason != "" && !strings.EqualFold(reason, ReasonName(code)) {
		s += ": " + reason
	}
	return s
}

// DisconnectError is a DISCONNECT sent by the broker.
type DisconnectError struct {
	Code   byte
	Reason string
}

func (e *DisconnectError) Error() string {
	return withReason("broker closed the connection", e.Code, e.Reason)
}

// TimeoutError is an acknowledgement that did not arrive in time.
type TimeoutError struct {
	Op    string
	Topic string
}

func (e *TimeoutError) Error() string {
	return fmt.Sprintf("%s %q: timed out waiting for the broker's acknowledgement", e.Op, e.Topic)
}

// ErrInvalid marks a request that is wrong before anything is sent (too large
// for the broker, a topic alias it does not allow, a protocol feature it
// lacks). Errors wrapping it are usage errors.
var ErrInvalid = errors.New("invalid request")

type invalidError struct{ msg string }

func (e *invalidError) Error() string        { return e.msg }
func (e *invalidError) Is(target error) bool { return target == ErrInvalid }

// Invalidf is an error that is an ErrInvalid (exit 2, without the usage
// lines), for a request its caller checks itself.
func Invalidf(format string, args ...any) error { return invalidf(format, args...) }

func invalidf(format string, args ...any) error {
	return &invalidError{msg: fmt.Sprintf(format, args...)}
}

// maxRemaining is the largest Remaining Length MQTT can encode (four bytes
// of variable byte integer), and maxPacket the largest packet.
const (
	maxRemaining = 268_435_455
	maxPacket    = 1 + 4 + maxRemaining
)

// ErrTooLarge is wrapped by the error for a PUBLISH larger than the broker
// or MQTT takes: a fault of that message, not of the connection (pub -l
// skips it and goes on). It is also an ErrInvalid.
var ErrTooLarge = errors.New("message too large")

type tooLargeError struct{ invalidError }

func (e *tooLargeError) Is(target error) bool { return target == ErrTooLarge || target == ErrInvalid }

func tooLargef(format string, args ...any) error {
	return &tooLargeError{invalidError{msg: fmt.Sprintf(format, args...)}}
}

// tooLargeForMQTT is the error for a PUBLISH of size bytes, more than any
// MQTT packet can be.
func tooLargeForMQTT(size int) error {
	return tooLargef("the message is a %d-byte packet, larger than MQTT allows (at most 268,435,455 bytes of topic, properties and payload)", size)
}

// ErrUnsupportedVersion is returned by Dial for a protocol version that has no
// backend.
var ErrUnsupportedVersion = errors.New("unsupported protocol version")
