// Package msgfmt renders received messages for `mqtk sub`: Plain and Pretty
// (payload, or topic and payload, optionally in colour), Format (the -F
// format language of mosquitto_sub) and AppendJSON (mqtk's own --json
// NDJSON). All of them are pure functions of an *mqttc.Message, and all but
// Plain append to a caller's buffer without allocating.
//
// # The -F format language
//
// Format implements mosquitto_sub's -F format language (mosquitto 2.0.11,
// libcjson 1.7.15, glibc 2.36; see `man mosquitto_sub`, OUTPUT FORMAT). What
// is written here was established by running mosquitto_sub -V 5 -F against
// messages published with mosquitto_pub -V 5; TestMosquittoCompat repeats
// those experiments whenever mosquitto is installed.
//
// Three characters start a sequence; every other byte is copied as is.
//
//	%%   a literal %
//	%A   topic alias (v5), if present
//	%C   content type (v5), if present
//	%D   correlation data (v5), raw bytes
//	%E   message expiry interval (v5), if present: what the broker sent, i.e.
//	     the time left, not the publisher's value
//	%F   payload format indicator (v5), if present
//	%I   the time, ISO 8601: 2026-11-22T10:48:30+0530 (strftime %FT%T%z)
//	%j   the message as JSON, payload quoted (below)
//	%J   the message as JSON, payload embedded as JSON (below)
//	%l   payload length in bytes
//	%m   packet identifier (0 at QoS 0)
//	%P   user properties (v5) as key:value, separated by one space, in
//	     order, repeated keys repeated: "k:v k:w z:1"
//	%p   payload, raw bytes
//	%q   QoS, one digit
//	%R   response topic (v5), if present
//	%r   retain flag, 0 or 1
//	%S   subscription identifier (v5), if present
//	%t   topic
//	%U   Unix time with nanoseconds: 1795324710.216601839
//	%x   payload in lower-case hex: 68656c6c6f
//	%X   payload in upper-case hex
//	@c   strftime(3) conversion %c, C locale (glibc): a A b B c C d D e F g
//	     G h H I j k l m M n p P r R s S t T u U V w W x X y Y z Z %
//	@N   nanoseconds within the second, 9 digits (mosquitto's extension)
//	@@   a literal @
//	\\ \0 \a \e \n \r \t \v   backslash, NUL, BEL, ESC, LF, CR, TAB, VT
//
// # Flags, width and precision
//
// A % may be followed by the flag -, then the flag 0, then a field width,
// then . and a precision (%-08.3t). Widths and precisions count bytes, as
// printf's do. mosquitto accepts all of them on every % sequence and ignores
// those that do not apply; so do we. What applies:
//
//	%A %E %F %S %l %m   integers: width; 0 pads with zeros (unless -); - aligns left
//	%C %I %R %t         strings: width and precision (the maximum length); - aligns left
//	%p                  width, which is both the minimum and the maximum: the
//	                    payload is cut to it; 0 pads with zeros (unless -)
//	%x %X               width in hex digits, likewise a minimum and a maximum
//	                    (whole bytes only: %5x shows 2 bytes and 1 pad); 0 and -
//
// An absent v5 property (%A %C %E %F %R %S) prints as width spaces.
//
// # Time
//
// All time conversions use the message's Received time in Format.Location
// (local time, as mosquitto_sub's localtime(3)). mosquitto reads the clock
// when it prints instead, separately for each %I %j %J %U and once for all
// @ conversions of a message, so its times can differ by microseconds within
// one line; ours are one instant.
//
// # Newline
//
// mosquitto_sub appends "\n" after a -F format unless -N is given (checked
// with mosquitto 2.0.11; the man page's "In all cases a new-line character
// is appended"), also after a %J that failed. Append adds nothing: the
// caller appends '\n' unless -N.
//
// # Errors
//
// Like mosquitto_sub, ParseFormat rejects an unknown % sequence, an unknown
// escape, and a format that ends inside a sequence. It also rejects what
// mosquitto would print as garbage: @ with a letter strftime does not know
// (glibc copies "%f" to the output), flags or width in the wrong place
// ("%0-5t", "%5.3.2t"), and a width or precision above 65535.
//
// # %j and %J
//
// Both print one JSON object like cJSON 1.7.15, as mosquitto 2.0.11 does:
//
//	{"tst":"2026-11-22T05:18:30.448217Z+0000","topic":"x/a","qos":1,"retain":1,
//	 "payloadlen":5,"mid":1,"properties":{"subscription-identifier":7,
//	 "payload-format-indicator":1,"content-type":"text/plain",
//	 "response-topic":"resp/t","correlation-data":"cd\"x",
//	 "user-properties":{"k":"v","z":"1"},"message-expiry-interval":3596},
//	 "payload":"hello"}
//
// (one line; split here). "tst" is local time with microseconds followed by
// "Z" AND the UTC offset, exactly as mosquitto prints it (a mosquitto quirk:
// the Z does not mean UTC). "mid" is there only at QoS > 0; "properties"
// only when the message has some. cJSON escapes only " \ and bytes below
// 0x20 (\b \f \n \r \t, else \u00XX); other bytes, including non-ASCII,
// are copied. With Format.Pretty (mosquitto_sub --pretty) the object is
// indented with tabs, "key":<TAB>value, arrays as [1, 2], like cJSON_Print.
//
// mosquitto emits properties in the order the broker sent them; we use a
// fixed order, the one mosquitto's broker produces for a publish from mqtk
// (paho.golang's order) or from mosquitto_pub -D in that order:
// subscription-identifier, payload-format-indicator, content-type,
// response-topic, correlation-data, topic-alias, user-properties,
// message-expiry-interval.
//
// %j: the payload is a JSON string; an empty payload is null.
// %J: the payload must itself be JSON (cJSON's grammar: whitespace is any
// byte 0x01-0x20, a UTF-8 BOM may open the payload, numbers like 01, 1. and
// -.5 are accepted, nesting up to 1000); it is re-printed the way cJSON
// prints it: compact or indented, \/ and \u escapes decoded, numbers as
// %1.15g (%1.17g when 15 digits do not round-trip), out-of-range numbers as
// null. An empty payload is null. When the payload is not JSON, %J prints
// nothing and AppendErr returns a *NotJSONError (mosquitto prints "Error:
// Message payload is not valid JSON on topic T." on stderr).
//
// # Where we differ from mosquitto_sub, and why
//
// Where mosquitto loses data or prints something its own manual does not
// promise, we keep mosquitto's shape and keep the data:
//
//   - %j payload: mosquitto hands the payload to cJSON as a C string, so it
//     stops at the first NUL byte ("\x00abc" prints as "") and copies bytes
//     that are not UTF-8 into the output, which is then not JSON. We print a
//     payload that is valid UTF-8 as a string, NUL as \u0000, and any other
//     payload as an array of byte values, [255,0,128]: the shape that newer
//     mosquitto sources (eclipse/mosquitto, sub_client_output.c) use for
//     payloads that are not printable. The same holds for correlation-data.
//   - %j/%J user-properties: mosquitto writes a repeated key twice in the
//     same object ({"k":"v","k":"w"}); JSON decoders keep only the last. We
//     write a key that occurs once as "k":"v", and a repeated key once, at
//     its first position, with an array of its values in order:
//     {"k":["v","w"],"z":"1"}. Likewise several subscription identifiers
//     are one array. (%P keeps the exact order of all pairs, as mosquitto.)
//   - %j/%J topic-alias: mosquitto reads it with the wrong property id and
//     prints 0 or a stale number; we print the alias.
//   - %J strings: cJSON cuts a string at an escaped NUL (\u0000) and reads
//     \u followed by non-hex digits as \u0000; we print \u0000 and keep the
//     rest, and reject \u with non-hex digits as not JSON.
//   - %E: mosquitto prints the interval as a signed int, so 4294967295 shows
//     as -1; we print the unsigned value.
//   - %S: mosquitto prints only the first subscription identifier; we print
//     all, separated by commas.
//   - An absent property with a width: mosquitto pads %A %E %F %S with the
//     pad character, so %05F prints 00000 for an absent indicator as for 0,
//     and does not pad an absent %R at all (%5R prints nothing, %5C five
//     spaces). We print width spaces for any absent property.
//   - %x and %X with a width: mosquitto halves the number of bytes after
//     cutting to the width, so %10x of "hello" prints "      6865". We print
//     min(len, width/2) bytes: "68656c6c6f".
//   - %-p, %-x and %-X without a width: mosquitto pads with as many spaces
//     as the payload has bytes; we print no padding.
//   - @ conversions that glibc does not know are errors here (glibc copies
//     them). Years before 0 are not glibc-exact, and %j's "tst" for years
//     that do not have four digits is not mosquitto's (mosquitto writes the
//     microseconds at a fixed offset that assumes four).
package msgfmt
