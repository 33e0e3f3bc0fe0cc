package cli

import (
	"net/http"
	"strings"

	"mqtk/internal/mqttc"
)

// wantUnix reports whether to connect to the Unix socket of --unix. On the
// command line it conflicts with -L, -h and -p; MQTK_UNIX gives way to them
// there, and beats MQTK_HOST/MQTK_PORT as MQTK_URL does. An empty MQTK_UNIX
// (or MQTK_PROXY) counts as unset, so a shell can clear it. A Unix socket has
// no TLS, so TLS flags with it are an error rather than ignored.
func (f *connFlags) wantUnix() (bool, error) {
	if !f.fs.Changed("unix") && f.unix == "" {
		return false, nil // an empty MQTK_UNIX is as none
	}
	where := []string{"url", "host", "port"}
	if f.fs.Changed("unix") {
		for _, n := range where {
			if f.fs.Changed(n) {
				return false, usageErrorf("--unix and %s conflict: give one or the other", flagName(f.fs.Lookup(n)))
			}
		}
	} else {
		for _, n := range where {
			if f.fs.Changed(n) {
				return false, nil
			}
		}
		if f.fromEnv["url"] {
			return false, usageErrorf("%s and %s conflict: unset one", envName("unix"), envName("url"))
		}
	}
	if f.unix == "" {
		return false, usageErrorf("--unix is empty: give the socket's path")
	}
	for _, n := range tlsFlagNames {
		if f.fs.Changed(n) {
			return false, usageErrorf("--unix and --%s conflict: a Unix socket has no TLS", n)
		}
	}
	return true, nil
}

// tlsFlagNames are the flags that configure TLS.
var tlsFlagNames = []string{"cafile", "capath", "cert", "key", "insecure", "tls-version", "tls-server-name", "tls-alpn"}

// resolveTransport applies the transport flags (WebSocket headers, proxy) to
// cfg, after the endpoint and TLS are resolved. Flags that do not fit the
// endpoint are errors when given on the command line; from MQTK_* variables
// they are ignored, as those serve many brokers.
func (f *connFlags) resolveTransport(cfg *mqttc.Config) error {
	ep := cfg.Endpoint
	switch {
	case !ep.WebSocket() && f.fs.Changed("ws-header"):
		return usageErrorf("--ws-header needs a WebSocket broker: -L ws://... or wss://...")
	case ep.WebSocket() && len(f.wsHeaders) > 0:
		cfg.Transport.WSHeader = http.Header{}
		for _, h := range f.wsHeaders {
			name, value, err := parseWSHeader(h)
			if err != nil {
				return err
			}
			cfg.Transport.WSHeader.Add(name, value)
		}
	}

	switch {
	case ep.Scheme == "unix" && f.fs.Changed("proxy"):
		return usageErrorf("--unix and --proxy conflict: a Unix socket is reached without a proxy")
	case ep.Scheme != "unix" && (f.fs.Changed("proxy") || f.proxy != ""): // an empty MQTK_PROXY is as none
		source := "--proxy"
		if f.fromEnv["proxy"] {
			source = envName("proxy")
		}
		p, err := mqttc.ParseProxy(f.proxy)
		if err != nil {
			return usageErrorf("%s %v", source, err)
		}
		p.Source = source
		cfg.Transport.Proxy = p
	}
	return nil
}

// parseWSHeader reads a --ws-header value, "Name: value". The value is never
// quoted in errors: it may hold a token.
func parseWSHeader(s string) (name, value string, err error) {
	name, value, ok := strings.Cut(s, ":")
	name, value = strings.TrimSpace(name), strings.TrimSpace(value)
	switch {
	case !ok:
		return "", "", usageErrorf("--ws-header needs \"NAME: VALUE\"; there is no ':' in it")
	case !validHeaderName(name):
		return "", "", usageErrorf("--ws-header %q: not a valid HTTP header name", name)
	case strings.ContainsAny(value, "\r\n\x00"):
		return "", "", usageErrorf("--ws-header %s: the value holds a line break or NUL", name)
	}
	canon := http.CanonicalHeaderKey(name)
	switch {
	case canon == "Upgrade", canon == "Connection", strings.HasPrefix(canon, "Sec-Websocket-"):
		return "", "", usageErrorf("--ws-header %s: the WebSocket handshake sets this header itself", name)
	}
	return name, value, nil
}

// validHeaderName reports whether s is an HTTP token (RFC 9110, 5.6.2).
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range []byte(s) {
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}
