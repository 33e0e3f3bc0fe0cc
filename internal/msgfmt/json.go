package msgfmt

import (
	"encoding/base64"
	"strconv"
	"unicode/utf8"

	"mqtk/internal/mqttc"
)

// AppendJSON appends m to dst as one mqtk message object, without a
// trailing newline; pretty indents it with two spaces. This is the schema
// of `mqtk sub --json`, documented here so it can be copied to docs/:
//
// `mqtk sub --json` writes one JSON object per received message, one per
// line (NDJSON). The schema is stable: fields are only ever added, and they
// always come in the order below.
//
//	field                      type              present
//	type                       string            always: "message"
//	topic                      string            always
//	qos                        number 0..2       always
//	retain                     boolean           always
//	dup                        boolean           always
//	mid                        number            always: the packet identifier, 0 at QoS 0
//	received                   string            always: when mqtk received the message, RFC 3339
//	                                             in UTC with microseconds: "2026-11-22T05:18:30.448217Z"
//	payload                    string            always: the payload as text if it is valid UTF-8,
//	                                             otherwise in standard base64 (with padding);
//	                                             "" only for an empty payload
//	payload_encoding           string            only when payload is base64: "base64"
//	content_type               string            MQTT v5, when present
//	response_topic             string            MQTT v5, when present
//	correlation_data           string            MQTT v5, when present: text or base64, as payload
//	correlation_data_encoding  string            only when correlation_data is base64: "base64"
//	message_expiry             number            MQTT v5, when present: seconds left, as sent by the broker
//	payload_format             number 0..1       MQTT v5, when present: payload format indicator
//	topic_alias                number            MQTT v5, when present
//	subscription_ids           array of numbers  MQTT v5, when present
//	user_properties            array of          MQTT v5, when present: [key, value] pairs in the
//	                           [string, string]  order received; a key may repeat
//
// Example (one line; split here):
//
//	{"type":"message","topic":"sensors/t1","qos":1,"retain":false,"dup":false,"mid":7,
//	 "received":"2026-11-22T05:18:30.448217Z","payload":"21.5","content_type":"text/plain",
//	 "user_properties":[["unit","C"],["src","a"],["src","b"]]}
//
// A payload that is not UTF-8:
//
//	{"type":"message","topic":"raw","qos":0,"retain":true,"dup":false,"mid":0,
//	 "received":"2026-11-22T05:18:30.448217Z","payload":"/wCA","payload_encoding":"base64"}
//
// Text fields other than payload and correlation_data (topic, content_type,
// response_topic, user properties) are UTF-8 by the MQTT specification; a
// byte that is not is written as U+FFFD. With --pretty the same object is
// indented by two spaces, exactly as encoding/json's Indent(dst, src, "",
// "  ") would indent the compact form.
func AppendJSON(dst []byte, m *mqttc.Message, pretty bool) []byte {
	w := jw{b: dst, pretty: pretty}
	w.open('{')
	w.key("type")
	w.b = append(w.b, `"message"`...)
	w.key("topic")
	w.str(m.Topic)
	w.key("qos")
	w.b = strconv.AppendUint(w.b, uint64(m.QoS), 10)
	w.key("retain")
	w.b = strconv.AppendBool(w.b, m.Retain)
	w.key("dup")
	w.b = strconv.AppendBool(w.b, m.Dup)
	w.key("mid")
	w.b = strconv.AppendUint(w.b, uint64(m.PacketID), 10)
	w.key("received")
	w.b = append(w.b, '"')
	w.b = m.Received.UTC().AppendFormat(w.b, "2006-01-02T15:04:05.000000Z07:00")
	w.b = append(w.b, '"')
	w.binary("payload", "payload_encoding", m.Payload)

	p := &m.Props
	if p.ContentType != "" {
		w.key("content_type")
		w.str(p.ContentType)
	}
	if p.ResponseTopic != "" {
		w.key("response_topic")
		w.str(p.ResponseTopic)
	}
	if len(p.CorrelationData) > 0 {
		w.binary("correlation_data", "correlation_data_encoding", p.CorrelationData)
	}
	if p.MessageExpiry != nil {
		w.key("message_expiry")
		w.b = strconv.AppendUint(w.b, uint64(*p.MessageExpiry), 10)
	}
	if p.PayloadFormat != nil {
		w.key("payload_format")
		w.b = strconv.AppendUint(w.b, uint64(*p.PayloadFormat), 10)
	}
	if p.TopicAlias != 0 {
		w.key("topic_alias")
		w.b = strconv.AppendUint(w.b, uint64(p.TopicAlias), 10)
	}
	if len(p.SubscriptionIDs) > 0 {
		w.key("subscription_ids")
		w.open('[')
		for _, id := range p.SubscriptionIDs {
			w.elem()
			w.b = strconv.AppendInt(w.b, int64(id), 10)
		}
		w.close(']')
	}
	if len(p.User) > 0 {
		w.key("user_properties")
		w.open('[')
		for _, u := range p.User {
			w.elem()
			w.open('[')
			w.elem()
			w.str(u.Key)
			w.elem()
			w.str(u.Value)
			w.close(']')
		}
		w.close(']')
	}
	w.close('}')
	return w.b
}

// jw writes JSON laid out as encoding/json's Indent with prefix "" and
// indent "  " lays it out, or compact.
type jw struct {
	b      []byte
	pretty bool
	depth  int
	first  bool // nothing written yet in the innermost object or array
}

func (w *jw) open(c byte) {
	w.b = append(w.b, c)
	w.depth++
	w.first = true
}

func (w *jw) close(c byte) {
	w.depth--
	if w.pretty && !w.first {
		w.newline()
	}
	w.first = false
	w.b = append(w.b, c)
}

func (w *jw) newline() {
	w.b = append(w.b, '\n')
	for i := 0; i < w.depth; i++ {
		w.b = append(w.b, ' ', ' ')
	}
}

// elem starts an array element or an object member.
func (w *jw) elem() {
	if !w.first {
		w.b = append(w.b, ',')
	}
	w.first = false
	if w.pretty {
		w.newline()
	}
}

func (w *jw) key(k string) {
	w.elem()
	w.str(k)
	w.b = append(w.b, ':')
	if w.pretty {
		w.b = append(w.b, ' ')
	}
}

// binary writes name: b as text when b is UTF-8, else as base64 followed by
// encName: "base64".
func (w *jw) binary(name, encName string, b []byte) {
	w.key(name)
	if utf8.Valid(b) {
		w.b = appendJSONString(w.b, b)
		return
	}
	w.b = append(w.b, '"')
	w.b = base64.StdEncoding.AppendEncode(w.b, b)
	w.b = append(w.b, '"')
	w.key(encName)
	w.b = append(w.b, `"base64"`...)
}

func (w *jw) str(s string) { w.b = appendJSONString(w.b, s) }

// appendJSONString writes s as a JSON string: " \ and control characters
// escaped, bytes that are not UTF-8 as \ufffd, everything else as is.
func appendJSONString[S string | []byte](dst []byte, s S) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c >= utf8.RuneSelf {
			r, n := utf8.DecodeRune([]byte(s[i:min(i+utf8.UTFMax, len(s))]))
			if r != utf8.RuneError || n != 1 {
				i += n
				continue
			}
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		case '\b':
			dst = append(dst, '\\', 'b')
		case '\f':
			dst = append(dst, '\\', 'f')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hexLower[c>>4], hexLower[c&0xf])
		}
		i++
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
