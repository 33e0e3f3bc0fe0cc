package cli

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"mqtk/internal/bench"
	"mqtk/internal/mqttc"
)

// Exit codes are an API: scripts depend on them, so a code never changes
// meaning. `mqtk help exit-codes` and docs/exit-codes.md list them.
const (
	ExitOK          = 0
	ExitError       = 1
	ExitUsage       = 2
	ExitNetwork     = 3
	ExitRefused     = 4
	ExitRejected    = 5
	ExitTimeout     = 27
	ExitInterrupted = 130
)

// exitCodes documents each code; help and docs are generated from it.
var exitCodes = []struct {
	Code    int
	Meaning string
}{
	{ExitOK, "success"},
	{ExitError, "a failure without a code of its own: a failed bench --assert, a topic retain-clear found retained again, a confirmation declined or new retained topics still appearing after --max-passes, an unexpected error"},
	{ExitUsage, "usage error: a bad flag, topic, QoS or payload, conflicting options, an unreadable file, a message larger than the broker accepts or than MQTT allows (256 MiB)"},
	{ExitNetwork, "network or TLS failure: DNS, connection refused, unreachable, handshake, certificate, no CONNACK in time, connection lost (in bench: any client's, or a broker that stalled)"},
	{ExitRefused, "the broker refused the connection (CONNACK reason >= 0x80, or MQTT 3.1.1/3.1 return code 1 to 5, printed by name, e.g. \"not authorized\")"},
	{ExitRejected, "the broker rejected an operation (SUBACK, UNSUBACK, PUBACK, PUBREC or PUBCOMP reason >= 0x80, printed by name; with MQTT 3.1.1 and 3.1 only SUBACK has one); bench: a publish or subscription rejected"},
	{ExitTimeout, "timed out (as mosquitto_sub -W), or an acknowledgement did not arrive in time (bench: by the end of the drain)"},
	{ExitInterrupted, "interrupted (Ctrl-C, SIGTERM) before the work was done"},
}

// UsageError is a mistake in how mqtk was called. It is printed with the
// command's usage line and exits 2.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

func usageErrorf(format string, args ...any) error {
	return &UsageError{Err: fmt.Errorf(format, args...)}
}

// flagError is the usage error for a command line pflag or cobra could not
// parse. A bad value names the flag and the value, in words rather than
// strconv's ("strconv.ParseInt: parsing "x": invalid syntax").
func flagError(err error) error {
	var bad *pflag.InvalidValueError
	if !errors.As(err, &bad) {
		return &UsageError{Err: err}
	}
	name := "--" + bad.GetFlag().Name
	if sh := bad.GetFlag().Shorthand; sh != "" {
		name = "-" + sh + "/" + name
	}
	cause := bad.Unwrap()
	if reason := numberReason(cause); reason != "" {
		return usageErrorf("%s %q: %s", name, bad.GetValue(), reason)
	}
	if strings.Contains(cause.Error(), strconv.Quote(bad.GetValue())) {
		return usageErrorf("%s: %v", name, cause) // the reason names the value
	}
	return usageErrorf("%s %q: %v", name, bad.GetValue(), cause)
}

// numberReason says why strconv refused a number or boolean ("" if err is
// not strconv's).
func numberReason(err error) string {
	var ne *strconv.NumError
	switch {
	case !errors.As(err, &ne):
		return ""
	case errors.Is(ne.Err, strconv.ErrRange):
		return "out of range"
	case ne.Func == "ParseBool":
		return "not true or false"
	}
	return "not a number"
}

// loggedError is an error the command has already reported (the broker's,
// as a JSON log record): it keeps its exit code, and is not printed again.
type loggedError struct{ error }

func (e *loggedError) Unwrap() error { return e.error }

// timeoutExpired is the cause of a run cut short by -W: a
// context.DeadlineExceeded (exit 27) that says which.
type timeoutExpired struct{ d time.Duration }

func (e *timeoutExpired) Error() string { return fmt.Sprintf("-W/--timeout %s expired", e.d) }
func (e *timeoutExpired) Unwrap() error { return context.DeadlineExceeded }

// errInterrupted is the cause of the root context's cancellation on SIGINT
// or SIGTERM.
var errInterrupted = errors.New("interrupted")

// exitCode maps an error returned by a command to its exit code.
func exitCode(err error) int {
	var (
		usage    *UsageError
		netErr   *mqttc.NetError
		refused  *mqttc.ConnectError
		rejected *mqttc.RejectedError
		timeout  *mqttc.TimeoutError
		discon   *mqttc.DisconnectError
		stalled  *bench.StallError
	)
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, &usage), errors.Is(err, mqttc.ErrInvalid), errors.Is(err, mqttc.ErrUnsupportedVersion):
		return ExitUsage
	case errors.As(err, &refused):
		return ExitRefused
	case errors.As(err, &rejected):
		return ExitRejected
	case errors.As(err, &timeout), errors.Is(err, context.DeadlineExceeded):
		return ExitTimeout
	case errors.Is(err, errInterrupted):
		return ExitInterrupted
	case errors.As(err, &netErr), errors.As(err, &discon), errors.As(err, &stalled):
		return ExitNetwork
	}
	return ExitError
}
