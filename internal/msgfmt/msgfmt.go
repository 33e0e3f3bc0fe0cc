package msgfmt

import (
	"io"

	"mqtk/internal/mqttc"
)

// Plain writes the payload, preceded by the topic and a space when verbose,
// and followed by a newline unless noEOL, as mosquitto_sub does. The bytes of
// the payload are written unchanged.
func Plain(w io.Writer, m *mqttc.Message, verbose, noEOL bool) error {
	_, err := w.Write(AppendPlain(make([]byte, 0, len(m.Topic)+len(m.Payload)+2), m, verbose, noEOL))
	return err
}

// AppendPlain appends what Plain writes to dst.
func AppendPlain(dst []byte, m *mqttc.Message, verbose, noEOL bool) []byte {
	if verbose {
		dst = append(dst, m.Topic...)
		dst = append(dst, ' ')
	}
	dst = append(dst, m.Payload...)
	if !noEOL {
		dst = append(dst, '\n')
	}
	return dst
}
