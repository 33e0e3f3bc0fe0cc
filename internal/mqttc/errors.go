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
	Addr   string
	Code   byte
	Reason string // the broker's reason string, if any
}

func (e *ConnectError) Error() string {
	return withReason(fmt.Sprintf("connect %s: broker refused the connection", e.Addr), e.Code, e.Reason)
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

func invalidf(format string, args ...any) error {
	return &invalidError{msg: fmt.Sprintf(format, args...)}
}

// ErrUnsupportedVersion is returned by Dial for a protocol version that has no
// backend.
var ErrUnsupportedVersion = errors.New("unsupported protocol version")
