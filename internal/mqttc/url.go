package mqttc

import (
	"fmt"
	"net"
	"strconv"
	"strings"
)

// Endpoint is where a broker is: scheme, host, port and, for WebSockets, the
// HTTP path. It never carries credentials, so it is safe to print.
type Endpoint struct {
	Scheme string // mqtt, mqtts, ws, wss, unix
	Host   string // the socket's path for unix
	Port   int
	Path   string // ws/wss only
}

// Secure reports whether the endpoint uses TLS.
func (e Endpoint) Secure() bool { return e.Scheme == "mqtts" || e.Scheme == "wss" }

// WebSocket reports whether the endpoint is a WebSocket URL.
func (e Endpoint) WebSocket() bool { return e.Scheme == "ws" || e.Scheme == "wss" }

// Address is host:port for dialling.
func (e Endpoint) Address() string { return net.JoinHostPort(e.Host, strconv.Itoa(e.Port)) }

// UnixEndpoint is a broker on a Unix domain socket at path.
func UnixEndpoint(path string) Endpoint { return Endpoint{Scheme: "unix", Host: path} }

func (e Endpoint) String() string {
	if e.Scheme == "unix" {
		return "unix://" + e.Host
	}
	s := e.Scheme + "://" + e.Address()
	if e.WebSocket() {
		s += e.Path
	}
	return s
}

// DefaultPort is the port a scheme uses when none is given.
func DefaultPort(scheme string) int {
	switch scheme {
	case "mqtts":
		return 8883
	case "ws":
		return 80
	case "wss":
		return 443
	}
	return 1883
}

// URL is a parsed -L/--url value, in mosquitto's form
// scheme://[username[:password]@]host[:port][/topic]. For ws and wss the path
// is the WebSocket path (default /mqtt) and no topic is taken from it.
type URL struct {
	Endpoint
	Username, Password       string
	HasUsername, HasPassword bool
	PortGiven                bool
	Topic                    string // mqtt/mqtts only; "" when absent
}

// ParseURL parses s by hand rather than with net/url, because a topic may hold
// '#', '?' and '%' which must reach the broker unchanged.
func ParseURL(s string) (URL, error) {
	var u URL
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		return u, fmt.Errorf("URL %q has no scheme: use mqtt://, mqtts://, ws:// or wss://", s)
	}
	switch scheme = strings.ToLower(scheme); scheme {
	case "mqtt", "mqtts", "ws", "wss":
	case "tcp":
		scheme = "mqtt"
	case "ssl", "tls":
		scheme = "mqtts"
	default:
		return u, fmt.Errorf("URL %q: unknown scheme %q: use mqtt://, mqtts://, ws:// or wss://", s, scheme)
	}
	u.Scheme = scheme
	authority, path, hasPath := strings.Cut(rest, "/")
	if i := strings.LastIndex(authority, "@"); i >= 0 {
		userinfo := authority[:i]
		authority = authority[i+1:]
		user, pass, hasPass := strings.Cut(userinfo, ":")
		u.Username, u.HasUsername = user, true
		if hasPass {
			u.Password, u.HasPassword = pass, true
		}
	}
	if authority == "" {
		return u, fmt.Errorf("URL %q has no host", redact(s, u))
	}
	host, port := authority, ""
	if strings.HasPrefix(authority, "[") {
		end := strings.Index(authority, "]")
		if end < 0 {
			return u, fmt.Errorf("URL %q: unclosed [ in IPv6 address", redact(s, u))
		}
		host = authority[1:end]
		if after := authority[end+1:]; after != "" {
			if !strings.HasPrefix(after, ":") {
				return u, fmt.Errorf("URL %q: unexpected %q after IPv6 address", redact(s, u), after)
			}
			port = after[1:]
		}
	} else if h, p, ok := strings.Cut(authority, ":"); ok {
		host, port = h, p
	}
	if host == "" {
		return u, fmt.Errorf("URL %q has no host", redact(s, u))
	}
	u.Host = host
	u.Port = DefaultPort(scheme)
	if port != "" {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 {
			return u, fmt.Errorf("URL %q: port %q is not a number from 1 to 65535", redact(s, u), port)
		}
		u.Port, u.PortGiven = n, true
	}
	if u.WebSocket() {
		u.Path = "/mqtt"
		if hasPath {
			u.Path = "/" + path
		}
	} else if hasPath {
		u.Topic = path
	}
	return u, nil
}

// redact removes the password from s for error messages.
func redact(s string, u URL) string {
	if !u.HasPassword {
		return s
	}
	return strings.Replace(s, ":"+u.Password+"@", ":***@", 1)
}
