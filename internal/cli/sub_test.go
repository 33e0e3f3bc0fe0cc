package cli

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"mqtk/internal/broker"
	"mqtk/internal/brokertest"
	"mqtk/internal/mqttc"
	"mqtk/internal/term"
)

// runSubFor runs `mqtk sub ARGS -t FILTER` until it exits, publishing msgs
// once it is subscribed, and returns its exit code.
func runSubFor(t *testing.T, io *term.IO, filter string, msgs []*mqttc.Message, args ...string) int {
	t.Helper()
	b := brokertest.Start(t, broker.Config{})
	a := &App{IO: io, LookupEnv: func(string) (string, bool) { return "", false }}
	code := make(chan int, 1)
	go func() {
		code <- a.Run(context.Background(), append([]string{"sub", "-p", fmt.Sprint(b.Port), "-t", filter, "-q", "1"}, args...))
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second) // a bound against a hang only
	defer cancel()
	if err := b.WaitSubscribed(ctx, filter, 1); err != nil {
		t.Fatal(err)
	}
	pub, err := mqttc.Dial(ctx, mqttc.Config{Endpoint: mqttc.Endpoint{Scheme: "mqtt", Host: b.Host, Port: b.Port}, ClientID: "pub", CleanStart: true})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Disconnect(ctx)
	for _, m := range msgs {
		if err := pub.Publish(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case c := <-code:
		return c
	case <-ctx.Done():
		t.Fatal("sub did not exit")
		return -1
	}
}

// TestSubJSON decodes --json output back: a binary payload round-trips byte
// for byte, repeated user-property keys survive in order.
func TestSubJSON(t *testing.T) {
	binary := make([]byte, 256)
	for i := range binary {
		binary[i] = byte(i)
	}
	exp := uint32(600)
	msgs := []*mqttc.Message{
		{Topic: "j/bin", Payload: binary, QoS: 1},
		{Topic: "j/text", Payload: []byte("héllo\n"), QoS: 1, Props: mqttc.Properties{
			ContentType: "text/plain", CorrelationData: []byte{0xff, 0x00}, MessageExpiry: &exp,
			User: []mqttc.UserProperty{{Key: "k", Value: "1"}, {Key: "j", Value: "2"}, {Key: "k", Value: "3"}},
		}},
		{Topic: "j/empty", Payload: nil, QoS: 1},
	}
	for _, pretty := range []bool{false, true} {
		io, stdout, stderr := term.Test("")
		args := []string{"--json", "-C", "3"}
		if pretty {
			args = append(args, "--pretty")
		}
		if code := runSubFor(t, io, "j/#", msgs, args...); code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		dec := json.NewDecoder(bytes.NewReader(stdout.Bytes()))
		var got []map[string]any
		for dec.More() {
			var v map[string]any
			if err := dec.Decode(&v); err != nil {
				t.Fatalf("decode: %v\n%s", err, stdout)
			}
			got = append(got, v)
		}
		if len(got) != 3 {
			t.Fatalf("pretty=%v: %d objects, want 3:\n%s", pretty, len(got), stdout)
		}
		if !pretty && strings.Count(stdout.String(), "\n") != 3 {
			t.Errorf("compact output is not one line per message:\n%s", stdout)
		}
		bin := got[0]
		if bin["type"] != "message" || bin["topic"] != "j/bin" || bin["payload_encoding"] != "base64" {
			t.Errorf("binary message: %v", bin)
		}
		if raw, err := base64.StdEncoding.DecodeString(bin["payload"].(string)); err != nil || !bytes.Equal(raw, binary) {
			t.Errorf("binary payload did not round-trip: %v", err)
		}
		txt := got[1]
		if txt["payload"] != "héllo\n" || txt["content_type"] != "text/plain" || txt["correlation_data_encoding"] != "base64" {
			t.Errorf("text message: %v", txt)
		}
		if fmt.Sprint(txt["user_properties"]) != "[[k 1] [j 2] [k 3]]" {
			t.Errorf("user properties: %v", txt["user_properties"])
		}
		if e, _ := txt["message_expiry"].(float64); e < 590 || e > 600 {
			t.Errorf("message_expiry %v", txt["message_expiry"])
		}
		if _, err := time.Parse(time.RFC3339Nano, txt["received"].(string)); err != nil || !strings.HasSuffix(txt["received"].(string), "Z") {
			t.Errorf("received %v: %v", txt["received"], err)
		}
		if got[2]["payload"] != "" || got[2]["payload_encoding"] != nil {
			t.Errorf("empty payload: %v", got[2])
		}
	}
}

// TestSubColour: colour on a terminal, plain bytes in a pipe, with NO_COLOR
// or with --color never; --color always forces it.
func TestSubColour(t *testing.T) {
	msgs := []*mqttc.Message{{Topic: "c/x", Payload: []byte("21.5"), QoS: 1}}
	for _, tc := range []struct {
		name    string
		tty     bool
		noColor bool
		flag    string
		colour  bool
	}{
		{"terminal", true, false, "", true},
		{"pipe", false, false, "", false},
		{"terminal with NO_COLOR", true, true, "", false},
		{"terminal --color never", true, false, "--color=never", false},
		{"pipe --color always", false, false, "--color=always", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			io, stdout, stderr := term.Test("")
			io.SetTTY(tc.tty, nil)
			io.NoColor = tc.noColor
			args := []string{"-v", "-C", "1"}
			if tc.flag != "" {
				args = append(args, tc.flag)
			}
			if code := runSubFor(t, io, "c/x", msgs, args...); code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			out := stdout.String()
			if got := strings.Contains(out, "\x1b["); got != tc.colour {
				t.Errorf("colour = %v, want %v: %q", got, tc.colour, out)
			}
			if !tc.colour && out != "c/x 21.5\n" {
				t.Errorf("plain output %q", out)
			}
			if tc.colour && !strings.Contains(out, "c/x") || !strings.Contains(out, "21.5") {
				t.Errorf("coloured output lacks topic or payload: %q", out)
			}
		})
	}
}
