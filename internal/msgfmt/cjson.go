package msgfmt

import (
	"math"
	"strconv"
	"unicode/utf8"

	"mqtk/internal/mqttc"
)

// This file writes %j and %J the way mosquitto_sub 2.0.11 does through
// cJSON 1.7.15 (see the package documentation for the shape and for where
// we differ). cjw is a minimal cJSON printer: compact, or indented like
// cJSON_Print (objects one member a line, indented by tabs, "key":<TAB>value;
// arrays on one line as [a, b]).

type cjw struct {
	b      []byte
	pretty bool
	depth  int    // cJSON's output depth: members of the root object are at 1
	n      [8]int // members written so far in the open object or array at each depth
}

func (w *cjw) tabs(n int) {
	for ; n > 0; n-- {
		w.b = append(w.b, '\t')
	}
}

func (w *cjw) openObject() {
	w.b = append(w.b, '{')
	w.depth++
	w.n[w.depth] = 0
	if w.pretty {
		w.b = append(w.b, '\n')
	}
}

func (w *cjw) closeObject() {
	members := w.n[w.depth]
	if w.pretty {
		if members > 0 {
			w.b = append(w.b, '\n')
		}
		w.tabs(w.depth - 1)
	}
	w.depth--
	w.b = append(w.b, '}')
}

// key starts a member of the innermost object.
func (w *cjw) key(k string) {
	if w.n[w.depth] > 0 {
		w.b = append(w.b, ',')
		if w.pretty {
			w.b = append(w.b, '\n')
		}
	}
	w.n[w.depth]++
	if w.pretty {
		w.tabs(w.depth)
	}
	w.b = appendCJSONString(w.b, k)
	w.b = append(w.b, ':')
	if w.pretty {
		w.b = append(w.b, '\t')
	}
}

func (w *cjw) openArray() {
	w.b = append(w.b, '[')
	w.depth++
	w.n[w.depth] = 0
}

// elem starts an element of the innermost array.
func (w *cjw) elem() {
	if w.n[w.depth] > 0 {
		w.b = append(w.b, ',')
		if w.pretty {
			w.b = append(w.b, ' ')
		}
	}
	w.n[w.depth]++
}

func (w *cjw) closeArray() {
	w.depth--
	w.b = append(w.b, ']')
}

func (w *cjw) uint(v uint64) { w.b = strconv.AppendUint(w.b, v, 10) }

// bytes writes b as a string when it is UTF-8, otherwise as an array of
// byte values.
func (w *cjw) bytes(b []byte) {
	if utf8.Valid(b) {
		w.b = appendCJSONString(w.b, b)
		return
	}
	w.openArray()
	for _, c := range b {
		w.elem()
		w.uint(uint64(c))
	}
	w.closeArray()
}

// appendCJSONString writes s quoted as cJSON's print_string_ptr does: "
// and \ escaped, bytes below 0x20 as \b \f \n \r \t or \u00xx, all other
// bytes copied.
func appendCJSONString[S string | []byte](dst []byte, s S) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		dst = append(dst, s[start:i]...)
		dst = appendCJSONEscape(dst, c)
		start = i + 1
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

func appendCJSONEscape(dst []byte, c byte) []byte {
	switch c {
	case '"':
		return append(dst, '\\', '"')
	case '\\':
		return append(dst, '\\', '\\')
	case '\b':
		return append(dst, '\\', 'b')
	case '\f':
		return append(dst, '\\', 'f')
	case '\n':
		return append(dst, '\\', 'n')
	case '\r':
		return append(dst, '\\', 'r')
	case '\t':
		return append(dst, '\\', 't')
	}
	return append(dst, '\\', 'u', '0', '0', hexLower[c>>4], hexLower[c&0xf])
}

// appendMosqJSON appends %j (payloadJSON false) or %J. For %J with a
// payload that is not JSON it appends nothing and returns a *NotJSONError.
func appendMosqJSON(dst []byte, m *mqttc.Message, c *clock, payloadJSON, pretty bool) ([]byte, error) {
	mark := len(dst)
	w := cjw{b: dst, pretty: pretty}
	w.openObject()

	w.key("tst")
	// strftime "%Y-%m-%dT%H:%M:%S.000000Z%z" with the microseconds written
	// over the zeros: local time, then "Z", then the offset.
	w.b = append(w.b, '"')
	w.b = appendDate(w.b, c)
	w.b = append(w.b, 'T')
	w.b = appendHMS(w.b, c)
	w.b = append(w.b, '.')
	w.b = appendZeroPad(w.b, uint64(c.nsec/1000), 6)
	w.b = append(w.b, 'Z')
	w.b = appendOffset(w.b, c.offset)
	w.b = append(w.b, '"')

	w.key("topic")
	w.b = appendCJSONString(w.b, m.Topic)
	w.key("qos")
	w.uint(uint64(m.QoS))
	w.key("retain")
	if m.Retain {
		w.uint(1)
	} else {
		w.uint(0)
	}
	w.key("payloadlen")
	w.uint(uint64(len(m.Payload)))
	if m.QoS > 0 {
		w.key("mid")
		w.uint(uint64(m.PacketID))
	}

	if p := &m.Props; hasProps(p) {
		w.key("properties")
		w.openObject()
		switch len(p.SubscriptionIDs) {
		case 0:
		case 1:
			w.key("subscription-identifier")
			w.b = strconv.AppendInt(w.b, int64(p.SubscriptionIDs[0]), 10)
		default:
			w.key("subscription-identifier")
			w.openArray()
			for _, id := range p.SubscriptionIDs {
				w.elem()
				w.b = strconv.AppendInt(w.b, int64(id), 10)
			}
			w.closeArray()
		}
		if p.PayloadFormat != nil {
			w.key("payload-format-indicator")
			w.uint(uint64(*p.PayloadFormat))
		}
		if p.ContentType != "" {
			w.key("content-type")
			w.b = appendCJSONString(w.b, p.ContentType)
		}
		if p.ResponseTopic != "" {
			w.key("response-topic")
			w.b = appendCJSONString(w.b, p.ResponseTopic)
		}
		if len(p.CorrelationData) > 0 {
			w.key("correlation-data")
			w.bytes(p.CorrelationData)
		}
		if p.TopicAlias != 0 {
			w.key("topic-alias")
			w.uint(uint64(p.TopicAlias))
		}
		if len(p.User) > 0 {
			w.key("user-properties")
			w.userProperties(p.User)
		}
		if p.MessageExpiry != nil {
			w.key("message-expiry-interval")
			w.uint(uint64(*p.MessageExpiry))
		}
		w.closeObject()
	}

	w.key("payload")
	switch {
	case len(m.Payload) == 0:
		w.b = append(w.b, "null"...)
	case !payloadJSON:
		w.bytes(m.Payload)
	default:
		var ok bool
		w.b, ok = appendCJSONPayload(w.b, m.Payload, w.depth, pretty)
		if !ok {
			return dst[:mark], &NotJSONError{Topic: m.Topic}
		}
	}
	w.closeObject()
	return w.b, nil
}

func hasProps(p *mqttc.Properties) bool {
	return p.ContentType != "" || p.ResponseTopic != "" || len(p.CorrelationData) > 0 ||
		p.MessageExpiry != nil || p.PayloadFormat != nil || p.TopicAlias != 0 ||
		len(p.SubscriptionIDs) > 0 || len(p.User) > 0
}

// userProperties writes the user-properties object: a key that occurs once
// as "k":"v", a repeated key once, at its first position, as "k":["v","w"].
func (w *cjw) userProperties(user []mqttc.UserProperty) {
	w.openObject()
	for i, u := range user {
		if seenBefore(user, i) {
			continue
		}
		w.key(u.Key)
		if !repeatedAfter(user, i) {
			w.b = appendCJSONString(w.b, u.Value)
			continue
		}
		w.openArray()
		for _, v := range user[i:] {
			if v.Key == u.Key {
				w.elem()
				w.b = appendCJSONString(w.b, v.Value)
			}
		}
		w.closeArray()
	}
	w.closeObject()
}

func seenBefore(user []mqttc.UserProperty, i int) bool {
	for _, u := range user[:i] {
		if u.Key == user[i].Key {
			return true
		}
	}
	return false
}

func repeatedAfter(user []mqttc.UserProperty, i int) bool {
	for _, u := range user[i+1:] {
		if u.Key == user[i].Key {
			return true
		}
	}
	return false
}

// cJSON's grammar, as cJSON_ParseWithOpts(payload, &end, true) reads it,
// re-printed as cJSON_Print/cJSON_PrintUnformatted would.

// cjsonMaxNesting is CJSON_NESTING_LIMIT: arrays and objects nest at most
// this deep.
const cjsonMaxNesting = 1000

// appendCJSONPayload parses p as cJSON does and appends it re-printed at
// output depth depth. ok is false when p is not JSON to cJSON; dst is then
// garbage beyond its original length.
func appendCJSONPayload(dst, p []byte, depth int, pretty bool) (_ []byte, ok bool) {
	for _, c := range p {
		if c == 0 { // mosquitto parses the payload as a C string
			return dst, false
		}
	}
	i := 0
	if len(p) >= 3 && p[0] == 0xEF && p[1] == 0xBB && p[2] == 0xBF {
		i = 3
	}
	pr := cjsonParser{p: p, pretty: pretty}
	i = pr.skip(i)
	dst, i, ok = pr.value(dst, i, depth, 0)
	if !ok {
		return dst, false
	}
	return dst, pr.skip(i) == len(p)
}

type cjsonParser struct {
	p      []byte
	pretty bool
}

// skip skips cJSON's whitespace: every byte up to and including 0x20.
func (pr *cjsonParser) skip(i int) int {
	for i < len(pr.p) && pr.p[i] <= ' ' {
		i++
	}
	return i
}

func (pr *cjsonParser) literal(i int, lit string) bool {
	return len(pr.p)-i >= len(lit) && string(pr.p[i:i+len(lit)]) == lit
}

func (pr *cjsonParser) value(dst []byte, i, depth, nest int) ([]byte, int, bool) {
	if i >= len(pr.p) {
		return dst, i, false
	}
	switch c := pr.p[i]; {
	case c == 'n' && pr.literal(i, "null"):
		return append(dst, "null"...), i + 4, true
	case c == 'f' && pr.literal(i, "false"):
		return append(dst, "false"...), i + 5, true
	case c == 't' && pr.literal(i, "true"):
		return append(dst, "true"...), i + 4, true
	case c == '"':
		return pr.string(dst, i)
	case c == '-' || isDigit(c):
		return pr.number(dst, i)
	case c == '[':
		return pr.array(dst, i, depth, nest)
	case c == '{':
		return pr.object(dst, i, depth, nest)
	}
	return dst, i, false
}

func (pr *cjsonParser) array(dst []byte, i, depth, nest int) ([]byte, int, bool) {
	if nest >= cjsonMaxNesting {
		return dst, i, false
	}
	dst = append(dst, '[')
	i = pr.skip(i + 1)
	if i < len(pr.p) && pr.p[i] == ']' {
		return append(dst, ']'), i + 1, true
	}
	for n := 0; ; n++ {
		if n > 0 {
			dst = append(dst, ',')
			if pr.pretty {
				dst = append(dst, ' ')
			}
		}
		var ok bool
		if dst, i, ok = pr.value(dst, i, depth+1, nest+1); !ok {
			return dst, i, false
		}
		i = pr.skip(i)
		if i < len(pr.p) && pr.p[i] == ',' {
			i = pr.skip(i + 1)
			continue
		}
		if i < len(pr.p) && pr.p[i] == ']' {
			return append(dst, ']'), i + 1, true
		}
		return dst, i, false
	}
}

func (pr *cjsonParser) object(dst []byte, i, depth, nest int) ([]byte, int, bool) {
	if nest >= cjsonMaxNesting {
		return dst, i, false
	}
	depth++
	dst = append(dst, '{')
	if pr.pretty {
		dst = append(dst, '\n')
	}
	i = pr.skip(i + 1)
	n := 0
	if i >= len(pr.p) || pr.p[i] != '}' {
		for ; ; n++ {
			if n > 0 {
				dst = append(dst, ',')
				if pr.pretty {
					dst = append(dst, '\n')
				}
			}
			if pr.pretty {
				for t := 0; t < depth; t++ {
					dst = append(dst, '\t')
				}
			}
			if i >= len(pr.p) || pr.p[i] != '"' {
				return dst, i, false
			}
			var ok bool
			if dst, i, ok = pr.string(dst, i); !ok {
				return dst, i, false
			}
			i = pr.skip(i)
			if i >= len(pr.p) || pr.p[i] != ':' {
				return dst, i, false
			}
			dst = append(dst, ':')
			if pr.pretty {
				dst = append(dst, '\t')
			}
			i = pr.skip(i + 1)
			if dst, i, ok = pr.value(dst, i, depth, nest+1); !ok {
				return dst, i, false
			}
			i = pr.skip(i)
			if i < len(pr.p) && pr.p[i] == ',' {
				i = pr.skip(i + 1)
				continue
			}
			if i < len(pr.p) && pr.p[i] == '}' {
				n++
				break
			}
			return dst, i, false
		}
	}
	if pr.pretty {
		if n > 0 {
			dst = append(dst, '\n')
		}
		for t := 0; t < depth-1; t++ {
			dst = append(dst, '\t')
		}
	}
	return append(dst, '}'), i + 1, true
}

// string reads the string at p[i] (a '"') and appends it re-escaped.
func (pr *cjsonParser) string(dst []byte, i int) ([]byte, int, bool) {
	p := pr.p
	// Find the closing quote as cJSON does: a backslash skips the next byte.
	end := i + 1
	for end < len(p) && p[end] != '"' {
		if p[end] == '\\' {
			if end+1 >= len(p) {
				return dst, i, false
			}
			end++
		}
		end++
	}
	if end >= len(p) {
		return dst, i, false
	}
	dst = append(dst, '"')
	for j := i + 1; j < end; {
		c := p[j]
		if c != '\\' {
			if c < 0x20 || c == '"' {
				dst = appendCJSONEscape(dst, c)
			} else {
				dst = append(dst, c)
			}
			j++
			continue
		}
		switch p[j+1] {
		case 'b':
			dst = append(dst, '\\', 'b')
		case 'f':
			dst = append(dst, '\\', 'f')
		case 'n':
			dst = append(dst, '\\', 'n')
		case 'r':
			dst = append(dst, '\\', 'r')
		case 't':
			dst = append(dst, '\\', 't')
		case '"':
			dst = append(dst, '\\', '"')
		case '\\':
			dst = append(dst, '\\', '\\')
		case '/':
			dst = append(dst, '/')
		case 'u':
			r, n, ok := utf16Literal(p[j:end])
			if !ok {
				return dst, i, false
			}
			if r < 0x20 {
				dst = appendCJSONEscape(dst, byte(r))
			} else {
				dst = utf8.AppendRune(dst, r)
			}
			j += n
			continue
		default:
			return dst, i, false
		}
		j += 2
	}
	return append(dst, '"'), end + 1, true
}

// utf16Literal decodes \uXXXX, or a surrogate pair \uXXXX\uXXXX, at the
// start of s, as cJSON's utf16_literal_to_utf8 does, except that it
// rejects non-hex digits (cJSON reads them as U+0000).
func utf16Literal(s []byte) (r rune, n int, ok bool) {
	if len(s) < 6 {
		return 0, 0, false
	}
	first, ok := hex4(s[2:6])
	if !ok || 0xDC00 <= first && first <= 0xDFFF {
		return 0, 0, false
	}
	if first < 0xD800 || first > 0xDBFF {
		return rune(first), 6, true
	}
	if len(s) < 12 || s[6] != '\\' || s[7] != 'u' {
		return 0, 0, false
	}
	second, ok := hex4(s[8:12])
	if !ok || second < 0xDC00 || second > 0xDFFF {
		return 0, 0, false
	}
	return 0x10000 + rune((first&0x3FF)<<10|(second&0x3FF)), 12, true
}

func hex4(s []byte) (uint32, bool) {
	var v uint32
	for _, c := range s[:4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		v = v<<4 | uint32(c)
	}
	return v, true
}

// number reads a number as cJSON does (the longest prefix strtod accepts
// among the bytes 0-9 + - e E .) and appends it as cJSON prints numbers.
func (pr *cjsonParser) number(dst []byte, i int) ([]byte, int, bool) {
	p := pr.p
	j := i
	if j < len(p) && (p[j] == '-' || p[j] == '+') {
		j++
	}
	digits := 0
	for ; j < len(p) && isDigit(p[j]); j++ {
		digits++
	}
	if j < len(p) && p[j] == '.' {
		j++
		for ; j < len(p) && isDigit(p[j]); j++ {
			digits++
		}
	}
	if digits == 0 {
		return dst, i, false
	}
	if j < len(p) && (p[j] == 'e' || p[j] == 'E') {
		k := j + 1
		if k < len(p) && (p[k] == '-' || p[k] == '+') {
			k++
		}
		if k < len(p) && isDigit(p[k]) {
			for k < len(p) && isDigit(p[k]) {
				k++
			}
			j = k
		}
	}
	// The syntax is checked above; ParseFloat's range errors give ±Inf
	// and 0, as strtod's do.
	d, _ := strconv.ParseFloat(string(p[i:j]), 64)
	return appendCJSONNumber(dst, d), j, true
}

// appendCJSONNumber prints d as cJSON 1.7.15's print_number: null for NaN
// and ±Inf, else %1.15g, or %1.17g when the 15-digit form does not read
// back as d (to within DBL_EPSILON, relatively).
func appendCJSONNumber(dst []byte, d float64) []byte {
	if math.IsNaN(d) || math.IsInf(d, 0) {
		return append(dst, "null"...)
	}
	start := len(dst)
	dst = strconv.AppendFloat(dst, d, 'g', 15, 64)
	// Like sscanf, ParseFloat gives ±Inf when the rounded digits are above
	// the largest double (DBL_MAX prints as 1.79769313486232e+308); and
	// like cJSON's compare_double, Inf <= Inf then keeps the 15 digits.
	back, _ := strconv.ParseFloat(string(dst[start:]), 64)
	if !(math.Abs(back-d) <= math.Max(math.Abs(back), math.Abs(d))*epsilon) {
		dst = strconv.AppendFloat(dst[:start], d, 'g', 17, 64)
	}
	return dst
}

const epsilon = 2.220446049250313e-16 // DBL_EPSILON
