package cli

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestTransportFlags(t *testing.T) {
	describe := func(c *connection) string {
		cfg := c.cfg
		s := cfg.Endpoint.String()
		if cfg.HasUsername {
			s += " user=" + cfg.Username
		}
		if p := cfg.Transport.Proxy; p != nil {
			s += fmt.Sprintf(" proxy=%s auth=%s:%s source=%s", p, p.Username, p.Password, p.Source)
		}
		if h := cfg.Transport.WSHeader; h != nil {
			s += fmt.Sprintf(" headers=%v", h)
		}
		if cfg.TLS != nil && cfg.TLS.NextProtos != nil {
			s += " alpn=" + strings.Join(cfg.TLS.NextProtos, ",")
		}
		return s
	}
	for _, tc := range []struct {
		env  map[string]string
		args []string
		want string
	}{
		{nil, []string{"--unix", "/run/mqtt.sock"}, "unix:///run/mqtt.sock"},
		{map[string]string{"MQTK_UNIX": "/run/e.sock"}, nil, "unix:///run/e.sock"},
		{map[string]string{"MQTK_UNIX": "/run/e.sock", "MQTK_HOST": "h"}, nil, "unix:///run/e.sock"},
		{map[string]string{"MQTK_UNIX": "/run/e.sock"}, []string{"-h", "flaghost"}, "mqtt://flaghost:1883"},
		{map[string]string{"MQTK_UNIX": "/run/e.sock"}, []string{"-L", "ws://h"}, "ws://h:80/mqtt"},
		{map[string]string{"MQTK_URL": "mqtt://u:p@envhost"}, []string{"--unix", "/run/f.sock"}, "unix:///run/f.sock"},
		{map[string]string{"MQTK_UNIX": ""}, nil, "mqtt://localhost:1883"},
		{map[string]string{"MQTK_CAFILE": "/nonexistent"}, []string{"--unix", "/s"}, "unix:///s"},
		{nil, []string{"-L", "ws://h:8080/p", "--ws-header", "Authorization: Bearer x:y", "--ws-header", "x-a:  1 ", "--ws-header", "X-A: 2"},
			"ws://h:8080/p headers=map[Authorization:[Bearer x:y] X-A:[1 2]]"},
		{map[string]string{"MQTK_WS_HEADER": "X-Env: 1"}, []string{"-L", "mqtt://h"}, "mqtt://h:1883"},
		{nil, []string{"-L", "mqtts://h", "--tls-alpn", "mqtt,x-b", "--tls-alpn", "x-c"}, "mqtts://h:8883 alpn=mqtt,x-b,x-c"},
		{nil, []string{"-L", "wss://h", "--tls-alpn", "http/1.1"}, "wss://h:443/mqtt alpn=http/1.1"},
		{nil, []string{"--proxy", "socks5h://bob:s%3Acret@proxy:9050"}, "mqtt://localhost:1883 proxy=socks5h://proxy:9050 auth=bob:s:cret source=--proxy"},
		{map[string]string{"MQTK_PROXY": "http://proxy:3128"}, []string{"-L", "wss://h"}, "wss://h:443/mqtt proxy=http://proxy:3128 auth=: source=MQTK_PROXY"},
		{map[string]string{"MQTK_PROXY": "http://proxy:3128"}, []string{"--proxy", "socks5://p2"}, "mqtt://localhost:1883 proxy=socks5://p2:1080 auth=: source=--proxy"},
		{map[string]string{"MQTK_PROXY": "http://proxy:3128"}, []string{"--unix", "/s"}, "unix:///s"},
		{map[string]string{"MQTK_PROXY": ""}, nil, "mqtt://localhost:1883"},
	} {
		c, err := resolveArgs(t, tc.env, tc.args...)
		if err != nil {
			t.Errorf("env %v args %q: %v", tc.env, tc.args, err)
			continue
		}
		if got := describe(c); got != tc.want {
			t.Errorf("env %v args %q:\n got %s\nwant %s", tc.env, tc.args, got, tc.want)
		}
	}
}

func TestTransportFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		args []string
		want string
	}{
		{nil, []string{"--unix", "/s", "-L", "mqtt://h"}, "--unix and -L/--url conflict: give one or the other"},
		{nil, []string{"--unix", "/s", "-h", "h"}, "--unix and -h/--host conflict"},
		{nil, []string{"--unix", "/s", "-p", "1"}, "--unix and -p/--port conflict"},
		{map[string]string{"MQTK_UNIX": "/s", "MQTK_URL": "mqtt://h"}, nil, "MQTK_UNIX and MQTK_URL conflict: unset one"},
		{nil, []string{"--unix", ""}, "--unix is empty"},
		{nil, []string{"--unix", "/s", "--capath", "/etc/ssl"}, "--unix and --capath conflict: a Unix socket has no TLS"},
		{nil, []string{"--unix", "/s", "--tls-alpn", "mqtt"}, "--unix and --tls-alpn conflict"},
		{nil, []string{"--unix", "/s", "--proxy", "http://p"}, "--unix and --proxy conflict"},
		{nil, []string{"--unix", "/s", "--ws-header", "A: b"}, "--ws-header needs a WebSocket broker"},
		{nil, []string{"--ws-header", "A: b"}, "--ws-header needs a WebSocket broker: -L ws://... or wss://..."},
		{nil, []string{"-L", "ws://h", "--ws-header", "Authorization"}, `--ws-header needs "NAME: VALUE"; there is no ':' in it`},
		{nil, []string{"-L", "ws://h", "--ws-header", ": v"}, `--ws-header "": not a valid HTTP header name`},
		{nil, []string{"-L", "ws://h", "--ws-header", "A(b): v"}, `--ws-header "A(b)": not a valid HTTP header name`},
		{nil, []string{"-L", "ws://h", "--ws-header", "A: b\r\nInjected: x"}, "--ws-header A: the value holds a line break or NUL"},
		{nil, []string{"-L", "wss://h", "--ws-header", "Sec-WebSocket-Key: x"}, "--ws-header Sec-WebSocket-Key: the WebSocket handshake sets this header itself"},
		{nil, []string{"-L", "wss://h", "--ws-header", "upgrade: h2c"}, "--ws-header upgrade: the WebSocket handshake sets this header itself"},
		{nil, []string{"--tls-alpn", "mqtt"}, "TLS options given but the URL is not mqtts:// or wss://"},
		{nil, []string{"-L", "mqtts://h", "--tls-alpn", ","}, `--tls-alpn "": a protocol name has 1 to 255 bytes`},
		{nil, []string{"--proxy", "ftp://u:secret@p"}, `--proxy "ftp://u:***@p": unsupported scheme "ftp"`},
		{nil, []string{"--proxy", ""}, `--proxy "" has no scheme`},
		{map[string]string{"MQTK_PROXY": "socks5://u:secret@p:0"}, nil, `MQTK_PROXY "socks5://u:***@p:0": the port is not a number from 1 to 65535`},
	} {
		_, err := resolveArgs(t, tc.env, tc.args...)
		var ue *UsageError
		if !errors.As(err, &ue) || err.Error() != tc.want && !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("env %v args %q: error %v, want a usage error starting %q", tc.env, tc.args, err, tc.want)
		}
	}
}
