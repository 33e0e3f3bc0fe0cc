package msgfmt

import (
	"bytes"
	"testing"

	"mqtk/internal/mqttc"
)

func TestPlain(t *testing.T) {
	m := &mqttc.Message{Topic: "a/b", Payload: []byte("x\x00\xffy")}
	for _, tc := range []struct {
		verbose, noEOL bool
		want           string
	}{
		{false, false, "x\x00\xffy\n"},
		{true, false, "a/b x\x00\xffy\n"},
		{true, true, "a/b x\x00\xffy"},
	} {
		var b bytes.Buffer
		if err := Plain(&b, m, tc.verbose, tc.noEOL); err != nil {
			t.Fatal(err)
		}
		if b.String() != tc.want {
			t.Errorf("Plain(verbose=%v, noEOL=%v) = %q, want %q", tc.verbose, tc.noEOL, b.String(), tc.want)
		}
	}
}
