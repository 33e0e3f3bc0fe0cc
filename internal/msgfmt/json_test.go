package msgfmt

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"mqtk/internal/mqttc"
)

// jsonMessage is the schema of AppendJSON, as a consumer decodes it.
type jsonMessage struct {
	Type                    string      `json:"type"`
	Topic                   string      `json:"topic"`
	QoS                     int         `json:"qos"`
	Retain                  bool        `json:"retain"`
	Dup                     bool        `json:"dup"`
	Mid                     int         `json:"mid"`
	Received                string      `json:"received"`
	Payload                 string      `json:"payload"`
	PayloadEncoding         string      `json:"payload_encoding,omitempty"`
	ContentType             string      `json:"content_type,omitempty"`
	ResponseTopic           string      `json:"response_topic,omitempty"`
	CorrelationData         string      `json:"correlation_data,omitempty"`
	CorrelationDataEncoding string      `json:"correlation_data_encoding,omitempty"`
	MessageExpiry           *uint32     `json:"message_expiry,omitempty"`
	PayloadFormat           *byte       `json:"payload_format,omitempty"`
	TopicAlias              uint16      `json:"topic_alias,omitempty"`
	SubscriptionIDs         []int       `json:"subscription_ids,omitempty"`
	UserProperties          [][2]string `json:"user_properties,omitempty"`
}

// decodeText returns the bytes of a text-or-base64 field.
func decodeText(t *testing.T, s, encoding string) []byte {
	t.Helper()
	switch encoding {
	case "":
		return []byte(s)
	case "base64":
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			t.Fatalf("bad base64 %q: %v", s, err)
		}
		return b
	}
	t.Fatalf("unknown encoding %q", encoding)
	return nil
}

func TestAppendJSON(t *testing.T) {
	full, bin, empty, _ := testMessages()
	full.Dup = true
	for _, tc := range []struct {
		m    *mqttc.Message
		want string
	}{
		{full, `{"type":"message","topic":"x/a","qos":1,"retain":true,"dup":true,"mid":7,` +
			`"received":"2026-11-22T05:18:30.448217Z","payload":"hello world","content_type":"text/plain",` +
			`"response_topic":"resp/t","correlation_data":"cd\"x","message_expiry":3600,"payload_format":1,` +
			`"topic_alias":3,"subscription_ids":[7],"user_properties":[["k","v"],["k","w"],["z","1"]]}`},
		{bin, `{"type":"message","topic":"bin","qos":0,"retain":false,"dup":false,"mid":0,` +
			`"received":"2026-11-22T05:18:30.448217Z","payload":"AP+AYQ==","payload_encoding":"base64",` +
			`"correlation_data":"/wA=","correlation_data_encoding":"base64"}`},
		{empty, `{"type":"message","topic":"e","qos":2,"retain":false,"dup":false,"mid":65535,` +
			`"received":"2026-11-22T05:18:30.448217Z","payload":""}`},
		{&mqttc.Message{Topic: "a\"\\\x01\u2028\xffé", Payload: []byte("\x00\n\t\x7f\"é"), Received: time.Date(2026, 1, 2, 3, 4, 5, 6000, ist)},
			`{"type":"message","topic":"a\"\\\u0001` + "\u2028" + `\ufffdé","qos":0,"retain":false,"dup":false,"mid":0,` +
				`"received":"2026-01-01T21:34:05.000006Z","payload":"\u0000\n\t` + "\x7f" + `\"é"}`},
	} {
		got := string(AppendJSON([]byte("x"), tc.m, false))
		if got != "x"+tc.want {
			t.Errorf("AppendJSON(%q):\n got %s\nwant %s", tc.m.Topic, got, "x"+tc.want)
		}
	}
	// pretty is exactly encoding/json's indentation of the compact form.
	var want bytes.Buffer
	if err := json.Indent(&want, AppendJSON(nil, full, false), "", "  "); err != nil {
		t.Fatal(err)
	}
	if got := AppendJSON(nil, full, true); !bytes.Equal(got, want.Bytes()) {
		t.Errorf("pretty:\n got %s\nwant %s", got, want.Bytes())
	}
}

func TestAppendJSONDecode(t *testing.T) {
	allBytes := make([]byte, 256)
	for i := range allBytes {
		allBytes[i] = byte(i)
	}
	full, bin, empty, jsonMsg := testMessages()
	binary := &mqttc.Message{
		Topic: "all/bytes", Payload: allBytes, QoS: 1, PacketID: 1, Received: recv,
		Props: mqttc.Properties{
			CorrelationData: allBytes[250:], SubscriptionIDs: []int{1, 268435455},
			User: []mqttc.UserProperty{{Key: "dup", Value: "1"}, {Key: "x", Value: ""}, {Key: "dup", Value: "2"}, {Key: "", Value: "é\n"}},
		},
	}
	for _, m := range []*mqttc.Message{full, bin, empty, jsonMsg, binary} {
		compact := AppendJSON(nil, m, false)
		pretty := AppendJSON(nil, m, true)
		if bytes.Contains(compact, []byte("\n")) {
			t.Errorf("%q: compact form has a newline: %s", m.Topic, compact)
		}
		var c, p jsonMessage
		if err := json.Unmarshal(compact, &c); err != nil {
			t.Fatalf("%q: %v\n%s", m.Topic, err, compact)
		}
		if err := json.Unmarshal(pretty, &p); err != nil {
			t.Fatalf("%q pretty: %v\n%s", m.Topic, err, pretty)
		}
		if !reflect.DeepEqual(c, p) {
			t.Errorf("%q: compact and pretty decode differently:\n%+v\n%+v", m.Topic, c, p)
		}
		// Nothing unknown: decoding into a map gives the same keys.
		var keys map[string]any
		dec := json.NewDecoder(bytes.NewReader(compact))
		dec.UseNumber()
		if err := dec.Decode(&keys); err != nil {
			t.Fatal(err)
		}
		check := func(what string, got, want any) {
			t.Helper()
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%q %s: got %#v, want %#v", m.Topic, what, got, want)
			}
		}
		check("type", c.Type, "message")
		check("topic", c.Topic, m.Topic)
		check("qos", c.QoS, int(m.QoS))
		check("retain", c.Retain, m.Retain)
		check("dup", c.Dup, m.Dup)
		check("mid", c.Mid, int(m.PacketID))
		received, err := time.Parse(time.RFC3339Nano, c.Received)
		if err != nil || !received.Equal(m.Received.Truncate(time.Microsecond)) || received.Location() != time.UTC {
			t.Errorf("%q received %q: %v", m.Topic, c.Received, err)
		}
		if p := decodeText(t, c.Payload, c.PayloadEncoding); !bytes.Equal(p, m.Payload) {
			t.Errorf("%q payload: got %q, want %q", m.Topic, p, m.Payload)
		}
		if cd := decodeText(t, c.CorrelationData, c.CorrelationDataEncoding); !bytes.Equal(cd, m.Props.CorrelationData) {
			t.Errorf("%q correlation data: got %q, want %q", m.Topic, cd, m.Props.CorrelationData)
		}
		check("content_type", c.ContentType, m.Props.ContentType)
		check("response_topic", c.ResponseTopic, m.Props.ResponseTopic)
		check("message_expiry", c.MessageExpiry, m.Props.MessageExpiry)
		check("payload_format", c.PayloadFormat, m.Props.PayloadFormat)
		check("topic_alias", c.TopicAlias, m.Props.TopicAlias)
		check("subscription_ids", c.SubscriptionIDs, m.Props.SubscriptionIDs)
		var user [][2]string
		for _, u := range m.Props.User {
			user = append(user, [2]string{u.Key, u.Value})
		}
		check("user_properties", c.UserProperties, user)
		for k := range keys {
			switch k {
			case "type", "topic", "qos", "retain", "dup", "mid", "received", "payload", "payload_encoding",
				"content_type", "response_topic", "correlation_data", "correlation_data_encoding", "message_expiry",
				"payload_format", "topic_alias", "subscription_ids", "user_properties":
			default:
				t.Errorf("%q: unknown field %q", m.Topic, k)
			}
		}
	}
}

func TestAppendJSONAllocs(t *testing.T) {
	full, bin, _, _ := testMessages()
	buf := make([]byte, 0, 4096)
	for _, m := range []*mqttc.Message{full, bin} {
		for _, pretty := range []bool{false, true} {
			if n := testing.AllocsPerRun(100, func() { buf = AppendJSON(buf[:0], m, pretty) }); n != 0 {
				t.Errorf("%q pretty %v: %v allocations per message, want 0", m.Topic, pretty, n)
			}
		}
	}
}

func FuzzAppendJSON(f *testing.F) {
	f.Add("t", []byte("hello"), []byte("cd"), "k", "v")
	f.Add("\xff", []byte{0, 0xff}, []byte{0x80}, "\x00", "\"")
	f.Fuzz(func(t *testing.T, topic string, payload, corr []byte, k, v string) {
		m := &mqttc.Message{Topic: topic, Payload: payload, Received: recv, Props: mqttc.Properties{
			CorrelationData: corr, User: []mqttc.UserProperty{{Key: k, Value: v}, {Key: k, Value: v}},
		}}
		var c, p jsonMessage
		compact, pretty := AppendJSON(nil, m, false), AppendJSON(nil, m, true)
		if err := json.Unmarshal(compact, &c); err != nil {
			t.Fatalf("%v\n%s", err, compact)
		}
		if err := json.Unmarshal(pretty, &p); err != nil {
			t.Fatalf("%v\n%s", err, pretty)
		}
		if !reflect.DeepEqual(c, p) {
			t.Fatalf("compact and pretty differ:\n%+v\n%+v", c, p)
		}
		if got := decodeText(t, c.Payload, c.PayloadEncoding); !bytes.Equal(got, payload) {
			t.Fatalf("payload %q came back as %q", payload, got)
		}
		if got := decodeText(t, c.CorrelationData, c.CorrelationDataEncoding); !bytes.Equal(got, corr) {
			t.Fatalf("correlation data %q came back as %q", corr, got)
		}
		if len(c.UserProperties) != 2 {
			t.Fatalf("user properties %q", c.UserProperties)
		}
	})
}

func BenchmarkAppendJSON(b *testing.B) {
	full, bin, _, _ := testMessages()
	for _, bc := range []struct {
		name   string
		m      *mqttc.Message
		pretty bool
	}{
		{"text+properties", full, false},
		{"binary", bin, false},
		{"pretty", full, true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			buf := make([]byte, 0, 4096)
			b.ReportAllocs()
			for b.Loop() {
				buf = AppendJSON(buf[:0], bc.m, bc.pretty)
			}
		})
	}
}
