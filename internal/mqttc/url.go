package mqttc

import (
	"errors"
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
		return u, fmt.Errorf("URL %q has no scheme: use mqtt://, mqtts://, ws:// or wss://", redact(s))
	}
	switch scheme = strings.ToLower(scheme); scheme {
	case "mqtt", "mqtts", "ws", "wss":
	case "tcp":
		scheme = "mqtt"
	case "ssl", "tls":
		scheme = "mqtts"
	default:
		return u, fmt.Errorf("URL %q: unknown scheme %q: use mqtt://, mqtts://, ws:// or wss://", redact(s), scheme)
	}
	u.Scheme = scheme
	authority, path, hasPath := strings.Cut(rest, "/")
	a, err := parseAuthority(authority)
	u.Username, u.HasUsername = a.username, a.hasUsername
	u.Password, u.HasPassword = a.password, a.hasPassword
	if err != nil {
		return u, fmt.Errorf("URL %q: %v", redact(s), err)
	}
	u.Host = a.host
	u.Port = DefaultPort(scheme)
	if a.port != 0 {
		u.Port, u.PortGiven = a.port, true
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

// authority is the [user[:password]@]host[:port] part of a URL.
type authority struct {
	username, password       string
	hasUsername, hasPassword bool
	host                     string // without the brackets of an IPv6 address
	port                     int    // 0 when not given
}

// parseAuthority splits s at its last '@' (a password may hold '@') and the
// host from the port. Its errors quote nothing of s: in a malformed URL a
// password can end up where the port or host should be.
func parseAuthority(s string) (authority, error) {
	var a authority
	if i := strings.LastIndex(s, "@"); i >= 0 {
		user, pass, hasPass := strings.Cut(s[:i], ":")
		a.username, a.hasUsername = user, true
		a.password, a.hasPassword = pass, hasPass
		s = s[i+1:]
	}
	host, port := s, ""
	if strings.HasPrefix(s, "[") {
		end := strings.Index(s, "]")
		if end < 0 {
			return a, errors.New("unclosed [ in IPv6 address")
		}
		host = s[1:end]
		if after := s[end+1:]; after != "" {
			if !strings.HasPrefix(after, ":") {
				return a, errors.New("unexpected text after the IPv6 address")
			}
			port = after[1:]
		}
	} else if h, p, ok := strings.Cut(s, ":"); ok {
		host, port = h, p
	}
	if host == "" {
		return a, errors.New("no host")
	}
	a.host = host
	if port != "" {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 {
			return a, errors.New("the port is not a number from 1 to 65535")
		}
		a.port = n
	}
	return a, nil
}

// redact hides the password in the user information of a URL-like s, for
// error messages: everything after the first ':' that precedes the last '@'.
// It errs on the side of hiding (a topic may hold '@' too), since the
// password may hold '/' or '@' where the URL is malformed.
func redact(s string) string {
	start := 0
	if i := strings.Index(s, "://"); i >= 0 {
		start = i + 3
	}
	at := strings.LastIndex(s[start:], "@")
	if at < 0 {
		return s
	}
	colon := strings.Index(s[start:start+at], ":")
	if colon < 0 {
		return s
	}
	return s[:start+colon+1] + "***" + s[start+at:]
}
