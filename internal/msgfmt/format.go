package msgfmt

import (
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"

	"mqtk/internal/mqttc"
)

// Format is a compiled -F format. Its methods are safe for concurrent use
// as long as its fields are not changed.
type Format struct {
	// Location is the zone of all time conversions; nil means time.Local,
	// as mosquitto_sub's localtime(3). Tests set it.
	Location *time.Location
	// Pretty indents %j and %J like mosquitto_sub --pretty.
	Pretty bool

	src string
	ops []op
	lit []byte // literal text of all opLit ops
}

type opKind uint8

const (
	opLit  opKind = iota // lit[start:end]
	opMsg                // a % sequence
	opTime               // an @ sequence
)

type op struct {
	kind       opKind
	verb       byte
	left, zero bool
	width      int
	prec       int // -1: none
	start, end int // opLit
}

// maxWidth bounds widths and precisions, so that a format cannot ask for
// gigabytes per message.
const maxWidth = 65535

// FormatError is a format string that ParseFormat rejects.
type FormatError struct {
	Format string
	Offset int    // byte offset of the sequence in Format
	Seq    string // the offending sequence, e.g. "%k", "\\q", "@f", "%5"
	Reason string // e.g. "unknown specifier"
}

func (e *FormatError) Error() string {
	return fmt.Sprintf("format %q: %s %q at offset %d", e.Format, e.Reason, e.Seq, e.Offset)
}

// ParseFormat compiles a mosquitto_sub -F format string (see the package
// documentation for the language).
func ParseFormat(s string) (*Format, error) {
	f := &Format{src: s}
	litStart := 0 // start of the pending literal in f.lit
	flush := func() {
		if len(f.lit) > litStart {
			f.ops = append(f.ops, op{kind: opLit, start: litStart, end: len(f.lit)})
			litStart = len(f.lit)
		}
	}
	fail := func(at, end int, reason string) (*Format, error) {
		// The sequence ends with the byte that made it wrong; if that byte
		// starts a multi-byte character, name the whole character.
		if last := end - 1; last > at && s[last] >= utf8.RuneSelf {
			_, n := utf8.DecodeRuneInString(s[last:])
			end = last + n
		}
		return nil, &FormatError{Format: s, Offset: at, Seq: s[at:end], Reason: reason}
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '%':
			at := i
			o := op{kind: opMsg, prec: -1}
			i++
			if i < len(s) && s[i] == '-' {
				o.left = true
				i++
			}
			if i < len(s) && s[i] == '0' {
				o.zero = true
				i++
			}
			for ; i < len(s) && isDigit(s[i]); i++ {
				o.width = o.width*10 + int(s[i]-'0')
				if o.width > maxWidth {
					return fail(at, i+1, "width above 65535 in")
				}
			}
			if i < len(s) && s[i] == '.' {
				i++
				o.prec = 0
				for ; i < len(s) && isDigit(s[i]); i++ {
					o.prec = o.prec*10 + int(s[i]-'0')
					if o.prec > maxWidth {
						return fail(at, i+1, "precision above 65535 in")
					}
				}
			}
			if i == len(s) {
				return fail(at, i, "incomplete specifier")
			}
			switch v := s[i]; v {
			case '%', 'A', 'C', 'D', 'E', 'F', 'I', 'j', 'J', 'l', 'm', 'P', 'p', 'q', 'R', 'r', 'S', 't', 'U', 'x', 'X':
				o.verb = v
			case '-', '.', '0':
				return fail(at, i+1, "malformed flags, width or precision in")
			default:
				return fail(at, i+1, "unknown specifier")
			}
			if o.verb == '%' {
				f.lit = append(f.lit, '%')
				continue
			}
			flush()
			f.ops = append(f.ops, o)
		case '@':
			if i+1 == len(s) {
				return fail(i, i+1, "incomplete time conversion")
			}
			i++
			switch v := s[i]; {
			case v == '@':
				f.lit = append(f.lit, '@')
			case v == '%':
				f.lit = append(f.lit, '%')
			case v == 'n':
				f.lit = append(f.lit, '\n')
			case v == 't':
				f.lit = append(f.lit, '\t')
			case v < utf8.RuneSelf && timeVerbs[v]:
				flush()
				f.ops = append(f.ops, op{kind: opTime, verb: v, prec: -1})
			default:
				return fail(i-1, i+1, "unknown time conversion")
			}
		case '\\':
			if i+1 == len(s) {
				return fail(i, i+1, "incomplete escape")
			}
			i++
			var b byte
			switch s[i] {
			case '\\':
				b = '\\'
			case '0':
				b = 0
			case 'a':
				b = '\a'
			case 'e':
				b = 0x1b
			case 'n':
				b = '\n'
			case 'r':
				b = '\r'
			case 't':
				b = '\t'
			case 'v':
				b = '\v'
			default:
				return fail(i-1, i+1, "unknown escape")
			}
			f.lit = append(f.lit, b)
		default:
			f.lit = append(f.lit, c)
		}
	}
	flush()
	return f, nil
}

// String returns the format string f was compiled from.
func (f *Format) String() string { return f.src }

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// NotJSONError is returned by AppendErr when a format has %J and the
// payload is not JSON.
type NotJSONError struct{ Topic string }

func (e *NotJSONError) Error() string {
	return "message payload is not valid JSON on topic " + e.Topic
}

// Append renders m by f and appends it to dst. It adds no newline.
func (f *Format) Append(dst []byte, m *mqttc.Message) []byte {
	dst, _ = f.AppendErr(dst, m)
	return dst
}

// AppendErr is Append that also reports a %J whose payload is not JSON, as
// a *NotJSONError. That %J then adds nothing; the rest of the format is
// rendered all the same, as mosquitto does.
func (f *Format) AppendErr(dst []byte, m *mqttc.Message) ([]byte, error) {
	var err error
	var ck clock
	for i := range f.ops {
		o := &f.ops[i]
		switch o.kind {
		case opLit:
			dst = append(dst, f.lit[o.start:o.end]...)
		case opTime:
			dst = appendStrftime(dst, o.verb, f.clock(&ck, m))
		case opMsg:
			switch o.verb {
			case 'A':
				if a := m.Props.TopicAlias; a != 0 {
					dst = appendIntField(dst, uint64(a), o)
				} else {
					dst = appendRepeat(dst, ' ', o.width)
				}
			case 'C':
				if ct := m.Props.ContentType; ct != "" {
					dst = appendStrField(dst, ct, o)
				} else {
					dst = appendRepeat(dst, ' ', o.width)
				}
			case 'D':
				dst = append(dst, m.Props.CorrelationData...)
			case 'E':
				if e := m.Props.MessageExpiry; e != nil {
					dst = appendIntField(dst, uint64(*e), o)
				} else {
					dst = appendRepeat(dst, ' ', o.width)
				}
			case 'F':
				if pf := m.Props.PayloadFormat; pf != nil {
					dst = appendIntField(dst, uint64(*pf), o)
				} else {
					dst = appendRepeat(dst, ' ', o.width)
				}
			case 'I':
				var buf [64]byte
				dst = appendStrField(dst, appendISO(buf[:0], f.clock(&ck, m)), o)
			case 'j', 'J':
				var jerr error
				dst, jerr = appendMosqJSON(dst, m, f.clock(&ck, m), o.verb == 'J', f.Pretty)
				if jerr != nil && err == nil {
					err = jerr
				}
			case 'l':
				dst = appendIntField(dst, uint64(len(m.Payload)), o)
			case 'm':
				dst = appendIntField(dst, uint64(m.PacketID), o)
			case 'P':
				for i, u := range m.Props.User {
					if i > 0 {
						dst = append(dst, ' ')
					}
					dst = append(dst, u.Key...)
					dst = append(dst, ':')
					dst = append(dst, u.Value...)
				}
			case 'p':
				dst = appendPayload(dst, m.Payload, o, 0)
			case 'q':
				dst = append(dst, '0'+m.QoS)
			case 'R':
				if rt := m.Props.ResponseTopic; rt != "" {
					dst = appendStrField(dst, rt, o)
				} else {
					dst = appendRepeat(dst, ' ', o.width)
				}
			case 'r':
				if m.Retain {
					dst = append(dst, '1')
				} else {
					dst = append(dst, '0')
				}
			case 'S':
				dst = appendSubIDs(dst, m.Props.SubscriptionIDs, o)
			case 't':
				dst = appendStrField(dst, m.Topic, o)
			case 'U':
				c := f.clock(&ck, m)
				dst = strconv.AppendInt(dst, c.unix, 10)
				dst = append(dst, '.')
				dst = appendZeroPad(dst, uint64(c.nsec), 9)
			case 'x':
				dst = appendPayload(dst, m.Payload, o, 'x')
			case 'X':
				dst = appendPayload(dst, m.Payload, o, 'X')
			}
		}
	}
	return dst, err
}

// clock fills ck from m.Received the first time a message's time is needed.
func (f *Format) clock(ck *clock, m *mqttc.Message) *clock {
	if !ck.ok {
		loc := f.Location
		if loc == nil {
			loc = time.Local
		}
		ck.set(m.Received.In(loc))
	}
	return ck
}

// appendIntField writes v with o's width and flags, as printf's %d, %-*d
// and %0*d.
func appendIntField(dst []byte, v uint64, o *op) []byte {
	var buf [20]byte
	digits := strconv.AppendUint(buf[:0], v, 10)
	pad := o.width - len(digits)
	switch {
	case o.left:
		dst = append(dst, digits...)
		return appendRepeat(dst, ' ', pad)
	case o.zero:
		dst = appendRepeat(dst, '0', pad)
	default:
		dst = appendRepeat(dst, ' ', pad)
	}
	return append(dst, digits...)
}

// appendStrField writes s with o's width and precision, as printf's
// %*.*s and %-*.*s: the precision cuts s to that many bytes, the width pads
// it with spaces. The 0 flag does not apply.
func appendStrField[S string | []byte](dst []byte, s S, o *op) []byte {
	if o.prec >= 0 && len(s) > o.prec {
		s = s[:o.prec]
	}
	pad := o.width - len(s)
	if o.left {
		dst = append(dst, s...)
		return appendRepeat(dst, ' ', pad)
	}
	dst = appendRepeat(dst, ' ', pad)
	return append(dst, s...)
}

const hexLower, hexUpper = "0123456789abcdef", "0123456789ABCDEF"

// appendPayload writes p raw (hex 0) or in hex ('x', 'X'). A width is both
// the minimum and the maximum number of output bytes, as in mosquitto's
// write_payload; for hex only whole bytes are shown (see the package
// documentation for how this differs from mosquitto's hex).
func appendPayload(dst, p []byte, o *op, hex byte) []byte {
	n, per := len(p), 1
	if hex != 0 {
		per = 2
	}
	pad := 0
	if o.width > 0 {
		if n*per > o.width {
			n = o.width / per
		}
		pad = o.width - n*per
	}
	if !o.left {
		if o.zero {
			dst = appendRepeat(dst, '0', pad)
		} else {
			dst = appendRepeat(dst, ' ', pad)
		}
	}
	switch hex {
	case 0:
		dst = append(dst, p[:n]...)
	default:
		digits := hexLower
		if hex == 'X' {
			digits = hexUpper
		}
		for _, b := range p[:n] {
			dst = append(dst, digits[b>>4], digits[b&0x0f])
		}
	}
	if o.left {
		dst = appendRepeat(dst, ' ', pad)
	}
	return dst
}

// appendSubIDs writes %S: one identifier as an integer field, several
// joined by commas and padded as one field.
func appendSubIDs(dst []byte, ids []int, o *op) []byte {
	switch len(ids) {
	case 0:
		return appendRepeat(dst, ' ', o.width)
	case 1:
		return appendIntField(dst, uint64(max(ids[0], 0)), o)
	}
	var buf [64]byte
	s := buf[:0]
	for i, id := range ids {
		if i > 0 {
			s = append(s, ',')
		}
		s = strconv.AppendInt(s, int64(id), 10)
	}
	pad := o.width - len(s)
	switch {
	case o.left:
		dst = append(dst, s...)
		return appendRepeat(dst, ' ', pad)
	case o.zero:
		dst = appendRepeat(dst, '0', pad)
	default:
		dst = appendRepeat(dst, ' ', pad)
	}
	return append(dst, s...)
}

// appendRepeat appends n copies of c (nothing when n <= 0).
func appendRepeat(dst []byte, c byte, n int) []byte {
	for ; n > 0; n-- {
		dst = append(dst, c)
	}
	return dst
}

// appendZeroPad writes v in decimal with at least width digits.
func appendZeroPad(dst []byte, v uint64, width int) []byte {
	var buf [20]byte
	digits := strconv.AppendUint(buf[:0], v, 10)
	dst = appendRepeat(dst, '0', width-len(digits))
	return append(dst, digits...)
}
