package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"mqtk/internal/bench"
)

// addHelpTopics adds `mqtk help exit-codes` and `mqtk help environment`.
func addHelpTopics(root *cobra.Command) {
	root.AddCommand(&cobra.Command{
		Use:   "exit-codes",
		Short: "What mqtk's exit codes mean",
		Long:  exitCodesHelp(),
	}, &cobra.Command{
		Use:   "environment",
		Short: "Environment variables mqtk reads",
		Long:  environmentHelp(),
	}, &cobra.Command{
		Use:   "format",
		Short: "The -F format language of mqtk sub (mosquitto_sub's)",
		Long:  formatHelp,
	}, &cobra.Command{
		Use:   "json",
		Short: "The JSON that mqtk sub --json prints",
		Long:  jsonHelp,
	}, &cobra.Command{
		Use:   "bench-output",
		Short: "The report, NDJSON, CSV and --assert of mqtk bench",
		Long:  bench.Doc,
	})
}

const formatHelp = `mqtk sub -F FORMAT prints each message as FORMAT, in mosquitto_sub's format
language, followed by a newline (none with -N). Every other byte of FORMAT is
copied as it is. An unknown sequence is a usage error (exit 2).

  %%   a literal %
  %t   topic
  %p   payload, raw bytes
  %x   payload in lower-case hex
  %X   payload in upper-case hex
  %l   payload length in bytes
  %q   QoS
  %r   retain flag, 0 or 1
  %m   packet identifier (0 at QoS 0)
  %I   receive time, ISO 8601 (2026-11-22T10:48:30+0100)
  %U   receive time, Unix seconds with nanoseconds (1795324710.216601839)
  %j   the message as JSON, payload as a string (mosquitto's shape)
  %J   the message as JSON, payload embedded as JSON (it must be JSON)
  %A   topic alias (v5)
  %C   content type (v5)
  %D   correlation data (v5), raw bytes
  %E   message expiry interval (v5): the seconds left
  %F   payload format indicator (v5)
  %P   user properties (v5) as key:value, space-separated, in order
  %R   response topic (v5)
  %S   subscription identifiers (v5), comma-separated
  @X   strftime(3) conversion %X of the receive time (@Y-@m-@d @H:@M:@S)
  @N   nanoseconds within the second
  @@   a literal @
  \n   newline; also \\ \0 \a \e \r \t \v

A % may take the flag -, then 0, then a width, then . and a precision, as in
printf: %-20t pads the topic to 20 bytes, %08l pads the length with zeros,
%.10t cuts the topic to 10 bytes. As in mosquitto_sub, the width of %p is
both its minimum and its maximum (%10p cuts the payload to 10 bytes, and
pads a shorter one). The width of %x and %X counts hex digits the same way
(%010x of "hello" is 68656c6c6f, where mosquitto_sub 2.0 prints 0000006865);
they take no precision. A v5 property that is absent prints as nothing (or
width spaces).

Where mosquitto_sub loses data, mqtk keeps its shape but not the loss: in %j
a payload with a NUL byte stays whole and one that is not UTF-8 is an array
of byte values, and repeated user-property keys become one key with an
array of values (%P keeps every pair in order). For machine-readable output,
prefer --json (mqtk help json).`

const jsonHelp = `mqtk sub --json prints one JSON object per message, one per line (NDJSON),
binary-safe: nothing is ever lost or merged. Fields are only ever added, and
they come in this order (v5 properties only when the message has them):

  type                       "message"
  topic                      string
  qos                        0, 1 or 2
  retain                     true or false
  dup                        true when the broker sent the message again (DUP flag)
  mid                        packet identifier, 0 at QoS 0
  received                   when mqtk received it: RFC 3339, UTC, microseconds
  payload                    the payload as text if it is valid UTF-8, else base64
  payload_encoding           "base64", only when payload is base64
  content_type               string
  response_topic             string
  correlation_data           text or base64, as payload
  correlation_data_encoding  "base64", only when correlation_data is base64
  message_expiry             seconds left, as the broker sent it
  payload_format             0 or 1, the payload format indicator
  topic_alias                number
  subscription_ids           array of numbers
  user_properties            array of [key, value] pairs in order; a key may repeat

Example:

  {"type":"message","topic":"sensors/t1","qos":1,"retain":false,"dup":false,"mid":7,"received":"2026-11-22T05:18:30.448217Z","payload":"21.5","content_type":"text/plain","user_properties":[["unit","C"],["src","a"],["src","b"]]}

--pretty indents each object by two spaces (it then spans several lines).`

func exitCodesHelp() string {
	var b strings.Builder
	b.WriteString("mqtk's exit codes are an API: each has one meaning, in every command.\n\n")
	for _, e := range exitCodes {
		fmt.Fprintf(&b, "  %3d  %s\n", e.Code, e.Meaning)
	}
	b.WriteString(`
Unlike mosquitto_pub, a publish the broker rejects is an error (exit 5), not a
warning with exit 0. That takes MQTT 5: MQTT 3.1.1 and 3.1 acknowledge a
publish without a reason code, so a broker that denies one either
acknowledges it all the same (mosquitto and mqtk's broker: exit 0) or closes
the connection (exit 3). See mqtk pub --help.

mqtk bench prints its report in full, then exits non-zero if a QoS level's
run counted errors. When it counted several kinds, the code is the first
that applies: 5 if the broker rejected a publish, 3 if a connection was lost
or the broker stalled, 27 if an acknowledgement was still missing after the
drain, otherwise 1 (2 for a message the broker cannot take). Ctrl-C (130)
comes before all of them, and all of them before a failed --assert (1).`)
	return b.String()
}

func environmentHelp() string {
	var b strings.Builder
	b.WriteString(`Every connection flag of pub, sub, bench and retain-clear can also come from
the environment, as MQTK_ and the flag's long name in capitals with - as _
(the password is MQTK_PASSWORD). A flag on the command line beats the variable. Booleans take
true or false. MQTK_URL is one setting: -h or -p on the command line sets it
aside whole (its host, port, scheme and any credentials) rather than mix parts
of it with theirs, so its credentials never go to a host it does not name.

`)
	for _, name := range connFlagNames() {
		fmt.Fprintf(&b, "  %-28s --%s\n", envName(name), name)
	}
	b.WriteString(`
Also read:
  NO_COLOR                     when set and not empty, no colour (unless --color always)
  HTTP_PROXY                   the proxy for ws:// without --proxy (never for localhost or loopback)
  HTTPS_PROXY                  the proxy for wss:// without --proxy (never for localhost or loopback)
  NO_PROXY                     hosts that ws:// and wss:// reach without HTTP_PROXY/HTTPS_PROXY
  GOGC                         garbage collection target; bench and broker use 400 unless set`)
	return b.String()
}
