package msgfmt

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/fatih/color"

	"mqtk/internal/mqttc"
)

// Pretty appends m for a person at a terminal.
//
// Without colorize it is Plain, byte for byte: the payload, preceded by the
// topic and a space when verbose, followed by "\n" unless noEOL.
//
// With colorize (the caller decides: stdout is a terminal, no NO_COLOR, or
// --color always) and verbose, a message is
//
//	TOPIC [q1|q2] [retained] PAYLOAD [  PROPERTIES]
//
// TOPIC in cyan; the QoS, only when it is above 0, in yellow; "retained"
// in magenta when the retain flag is set; the payload's bytes unchanged, or
// "(empty)" in faint when there are none; then, when the message has MQTT v5
// properties, two spaces and in faint:
//
//	content-type=T response-topic=T correlation-data=D message-expiry=N
//	payload-format=N topic-alias=N subscription-id=N[,N...] KEY=VALUE...
//
// each only when present, user properties last, in order, repeated keys
// repeated. A key or value that is empty or has spaces, '=', '"' or
// characters that are not printable is written as a Go-quoted string
// ("a b"); correlation data that is not UTF-8 is written as 0x and hex.
//
// Without verbose the output is the payload alone, colour or not: a
// payload is data, and colouring it would change it.
func Pretty(dst []byte, m *mqttc.Message, verbose, noEOL bool, colorize bool) []byte {
	if !verbose || !colorize {
		return AppendPlain(dst, m, verbose, noEOL)
	}
	dst = topicColor.wrap(dst, m.Topic)
	dst = append(dst, ' ')
	if m.QoS > 0 {
		dst = append(dst, qosColor.on...)
		dst = append(dst, 'q', '0'+m.QoS)
		dst = append(dst, qosColor.off...)
		dst = append(dst, ' ')
	}
	if m.Retain {
		dst = retainColor.wrap(dst, "retained")
		dst = append(dst, ' ')
	}
	if len(m.Payload) == 0 {
		dst = propsColor.wrap(dst, "(empty)")
	} else {
		dst = append(dst, m.Payload...)
	}
	if hasProps(&m.Props) {
		dst = append(dst, ' ', ' ')
		dst = append(dst, propsColor.on...)
		dst = appendPropsText(dst, &m.Props)
		dst = append(dst, propsColor.off...)
	}
	if !noEOL {
		dst = append(dst, '\n')
	}
	return dst
}

// sgr is a colour as the escape sequences that turn it on and off.
type sgr struct{ on, off string }

func (c sgr) wrap(dst []byte, s string) []byte {
	dst = append(dst, c.on...)
	dst = append(dst, s...)
	return append(dst, c.off...)
}

// newSGR takes the sequences from a fatih/color object with colour enabled
// on it, once, so that rendering a message does not allocate.
func newSGR(attrs ...color.Attribute) sgr {
	c := color.New(attrs...)
	c.EnableColor() // never fatih/color's global NoColor: the caller decided
	s := c.Sprint("\x00")
	i := strings.IndexByte(s, 0)
	return sgr{on: s[:i], off: s[i+1:]}
}

var (
	topicColor  = newSGR(color.FgCyan)
	qosColor    = newSGR(color.FgYellow)
	retainColor = newSGR(color.FgMagenta)
	propsColor  = newSGR(color.Faint)
)

// appendPropsText appends the v5 properties as name=value words.
func appendPropsText(dst []byte, p *mqttc.Properties) []byte {
	sep := false
	word := func(name string) {
		if sep {
			dst = append(dst, ' ')
		}
		sep = true
		dst = append(dst, name...)
		dst = append(dst, '=')
	}
	if p.ContentType != "" {
		word("content-type")
		dst = appendWord(dst, p.ContentType)
	}
	if p.ResponseTopic != "" {
		word("response-topic")
		dst = appendWord(dst, p.ResponseTopic)
	}
	if len(p.CorrelationData) > 0 {
		word("correlation-data")
		if utf8.Valid(p.CorrelationData) {
			dst = appendWord(dst, p.CorrelationData)
		} else {
			dst = append(dst, '0', 'x')
			for _, b := range p.CorrelationData {
				dst = append(dst, hexLower[b>>4], hexLower[b&0xf])
			}
		}
	}
	if p.MessageExpiry != nil {
		word("message-expiry")
		dst = strconv.AppendUint(dst, uint64(*p.MessageExpiry), 10)
	}
	if p.PayloadFormat != nil {
		word("payload-format")
		dst = strconv.AppendUint(dst, uint64(*p.PayloadFormat), 10)
	}
	if p.TopicAlias != 0 {
		word("topic-alias")
		dst = strconv.AppendUint(dst, uint64(p.TopicAlias), 10)
	}
	if len(p.SubscriptionIDs) > 0 {
		word("subscription-id")
		for i, id := range p.SubscriptionIDs {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = strconv.AppendInt(dst, int64(id), 10)
		}
	}
	for _, u := range p.User {
		if sep {
			dst = append(dst, ' ')
		}
		sep = true
		dst = appendWord(dst, u.Key)
		dst = append(dst, '=')
		dst = appendWord(dst, u.Value)
	}
	return dst
}

// appendWord writes s as is when it is a plain word, else Go-quoted.
func appendWord[S string | []byte](dst []byte, s S) []byte {
	if isPlainWord(string(s)) {
		return append(dst, s...)
	}
	return strconv.AppendQuote(dst, string(s))
}

func isPlainWord(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r == '=' || r == '"' || r == utf8.RuneError || !unicode.IsGraphic(r) || unicode.IsSpace(r) {
			return false
		}
	}
	return true
}
