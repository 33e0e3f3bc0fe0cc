package mqttc

import (
	"strings"
	"testing"
)

func TestParseURL(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want URL
	}{
		{"mqtt://localhost", URL{Endpoint: Endpoint{Scheme: "mqtt", Host: "localhost", Port: 1883}}},
		{"mqtts://broker.example", URL{Endpoint: Endpoint{Scheme: "mqtts", Host: "broker.example", Port: 8883}}},
		{"MQTT://h:1234/a/b", URL{Endpoint: Endpoint{Scheme: "mqtt", Host: "h", Port: 1234}, PortGiven: true, Topic: "a/b"}},
		{"mqtt://u:p@h/sensors/#", URL{Endpoint: Endpoint{Scheme: "mqtt", Host: "h", Port: 1883}, Username: "u", Password: "p", HasUsername: true, HasPassword: true, Topic: "sensors/#"}},
		{"mqtt://u@h", URL{Endpoint: Endpoint{Scheme: "mqtt", Host: "h", Port: 1883}, Username: "u", HasUsername: true}},
		{"mqtt://u:p:q@w@h", URL{Endpoint: Endpoint{Scheme: "mqtt", Host: "h", Port: 1883}, Username: "u", Password: "p:q@w", HasUsername: true, HasPassword: true}},
		{"mqtt://[::1]:1884/t", URL{Endpoint: Endpoint{Scheme: "mqtt", Host: "::1", Port: 1884}, PortGiven: true, Topic: "t"}},
		{"mqtt://h/a%20b?c", URL{Endpoint: Endpoint{Scheme: "mqtt", Host: "h", Port: 1883}, Topic: "a%20b?c"}},
		{"ws://h:8080", URL{Endpoint: Endpoint{Scheme: "ws", Host: "h", Port: 8080, Path: "/mqtt"}, PortGiven: true}},
		{"wss://h/custom/path", URL{Endpoint: Endpoint{Scheme: "wss", Host: "h", Port: 443, Path: "/custom/path"}}},
		{"tcp://h", URL{Endpoint: Endpoint{Scheme: "mqtt", Host: "h", Port: 1883}}},
	} {
		got, err := ParseURL(tc.in)
		if err != nil {
			t.Errorf("ParseURL(%q): %v", tc.in, err)
			continue
		}
		if got != tc.want {
			t.Errorf("ParseURL(%q) = %+v, want %+v", tc.in, got, tc.want)
		}
	}
}

func TestParseURLErrors(t *testing.T) {
	for _, in := range []string{"localhost", "http://h", "mqtt://", "mqtt://h:0", "mqtt://h:65536", "mqtt://h:x", "mqtt://[::1", "mqtt://u:secret@:1883", "mqtt://u:secret/x@h:x", "u:secret@h"} {
		_, err := ParseURL(in)
		if err == nil {
			t.Errorf("ParseURL(%q) succeeded, want an error", in)
			continue
		}
		if strings.Contains(err.Error(), "secret") {
			t.Errorf("ParseURL(%q) error shows the password: %v", in, err)
		}
	}
}

func TestEndpointString(t *testing.T) {
	if got := (Endpoint{Scheme: "mqtt", Host: "::1", Port: 1883}).String(); got != "mqtt://[::1]:1883" {
		t.Errorf("got %q", got)
	}
	if got := (Endpoint{Scheme: "wss", Host: "h", Port: 443, Path: "/mqtt"}).String(); got != "wss://h:443/mqtt" {
		t.Errorf("got %q", got)
	}
}
