package cli

import (
	"crypto/rand"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"mqtk/internal/mqttc"
	"mqtk/internal/topic"
)

// connFlags are the connection flags shared by pub, sub, bench and
// retain-clear, with mosquitto's names and short forms.
type connFlags struct {
	host           string
	port           int
	url            string
	id, idPrefix   string
	keepalive      int
	protocol       string
	noClean        bool
	sessionExpiry  string
	username       string
	password       string
	pwFile         string
	pwPrompt       bool
	tls            mqttc.TLSOptions
	willTopic      string
	willPayload    string
	willQoS        int
	willRetain     bool
	connectTimeout time.Duration
	debug          bool
	quiet          bool
	color          string
	unix           string   // transportflags.go
	wsHeaders      []string // transportflags.go
	proxy          string   // transportflags.go

	fs      *pflag.FlagSet
	fromEnv map[string]bool // flags whose value came from MQTK_*
}

// connFlagNames lists the shared flags in the order they are defined; each
// can also be set from the environment (see envName).
func connFlagNames() []string {
	var f connFlags
	fs := pflag.NewFlagSet("conn", pflag.ContinueOnError)
	fs.SortFlags = false
	f.addFlags(fs)
	var names []string
	fs.VisitAll(func(fl *pflag.Flag) { names = append(names, fl.Name) })
	return names
}

func (f *connFlags) addFlags(fs *pflag.FlagSet) {
	f.fs = fs

	fs.StringVarP(&f.host, "host", "h", "localhost", "broker `HOST`")
	fs.IntVarP(&f.port, "port", "p", 0, "broker `PORT` (default 1883, 8883 with TLS)")
	fs.StringVarP(&f.url, "url", "L", "", "broker `URL`: mqtt[s]://[user[:password]@]host[:port][/topic] or ws[s]://host[:port][/path]")
	fs.StringVar(&f.unix, "unix", "", "connect to a broker on the Unix domain socket `PATH` (instead of -L or -h/-p)")
	fs.StringArrayVar(&f.wsHeaders, "ws-header", nil, "add the HTTP header `\"NAME: VALUE\"` to the WebSocket handshake (ws://, wss://; repeatable)")
	fs.StringVar(&f.proxy, "proxy", "", "connect through the proxy `URL`: socks5://, socks5h:// (the proxy resolves names) or http:// (CONNECT), with user:password@ if needed (ws://, wss://: default HTTP_PROXY/HTTPS_PROXY)")
	fs.StringVarP(&f.id, "id", "i", "", "client identifier `ID` (default: mqtk- and random characters)")
	fs.StringVarP(&f.idPrefix, "id-prefix", "I", "", "client identifier `PREFIX`; the process id is appended")
	fs.IntVarP(&f.keepalive, "keepalive", "k", 60, "keep-alive interval in `SECONDS` (0 disables)")
	fs.StringVarP(&f.protocol, "protocol-version", "V", "5", "MQTT `VERSION`: 5 (mqttv5), 311 (mqttv311) or 31 (mqttv31); without -V, 5, then 3.1.1, then 3.1 if the broker refuses each (a -V given never falls back)")
	fs.BoolVarP(&f.noClean, "disable-clean-session", "c", false, "keep the session on the broker after disconnecting (needs -i)")
	fs.StringVarP(&f.sessionExpiry, "session-expiry", "x", "", "session expiry interval `D`: seconds or a duration such as 1h; -1 or ∞ never expires")
	fs.StringVarP(&f.username, "username", "u", "", "`USER` name")
	fs.StringVarP(&f.password, "pw", "P", "", "`PASSWORD` (prefer --pw-file or MQTK_PASSWORD: arguments are visible to other users)")
	fs.StringVar(&f.pwFile, "pw-file", "", "read the password from the first line of `FILE`")
	fs.BoolVar(&f.pwPrompt, "pw-prompt", false, "prompt for the password without echo (terminal only)")
	fs.StringVar(&f.tls.CAFile, "cafile", "", "PEM `FILE` of CA certificates to verify the broker (turns TLS on)")
	fs.StringVar(&f.tls.CAPath, "capath", "", "`DIR` of PEM CA certificates (turns TLS on)")
	fs.StringVar(&f.tls.CertFile, "cert", "", "client certificate PEM `FILE` (turns TLS on; needs --key)")
	fs.StringVar(&f.tls.KeyFile, "key", "", "client private key PEM `FILE`")
	fs.BoolVar(&f.tls.Insecure, "insecure", false, "do not verify the broker's certificate or name")
	fs.StringVar(&f.tls.Version, "tls-version", "", "minimum TLS `VERSION`: tlsv1.2 (default) or tlsv1.3")
	fs.StringVar(&f.tls.ServerName, "tls-server-name", "", "`NAME` to verify the broker's certificate against (default: the host)")
	fs.StringSliceVar(&f.tls.ALPN, "tls-alpn", nil, "offer the ALPN `PROTOCOL` in the TLS handshake (repeatable or comma-separated, preferred first)")
	fs.StringVar(&f.willTopic, "will-topic", "", "`TOPIC` of the will message the broker sends if we vanish without DISCONNECT")
	fs.StringVar(&f.willPayload, "will-payload", "", "`PAYLOAD` of the will message")
	fs.IntVar(&f.willQoS, "will-qos", 0, "`QOS` of the will message")
	fs.BoolVar(&f.willRetain, "will-retain", false, "retain the will message")
	secondsVar(fs, &f.connectTimeout, "connect-timeout", 10*time.Second, "give up connecting after `D` (seconds or a duration like 1.5s)")
	fs.BoolVarP(&f.debug, "debug", "d", false, "print a trace of MQTT packets on stderr")
	fs.BoolVar(&f.quiet, "quiet", false, "print no error messages or notices (the exit code still tells)")
	fs.StringVar(&f.color, "color", "auto", "colour `WHEN`: auto (terminal and no NO_COLOR), always or never")
}

// envName is the environment variable for a connection flag: MQTK_ and the
// flag's name in capitals, with "pw" spelled PASSWORD.
func envName(flag string) string {
	name := strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
	if name == "PW" || strings.HasPrefix(name, "PW_") {
		name = "PASSWORD" + strings.TrimPrefix(name, "PW")
	}
	return "MQTK_" + name
}

// applyEnv sets every connection flag not given on the command line from its
// environment variable, if set: a flag beats the variable.
func (f *connFlags) applyEnv(a *App) error {
	f.fromEnv = map[string]bool{}
	for _, name := range connFlagNames() {
		fl := f.fs.Lookup(name)
		if fl == nil || fl.Changed {
			continue
		}
		v, ok := a.LookupEnv(envName(name))
		if !ok {
			continue
		}
		if err := fl.Value.Set(v); err != nil {
			if reason := numberReason(err); reason != "" {
				err = errors.New(reason)
			}
			return usageErrorf("%s=%q: %v", envName(name), redactIf(name, v), err)
		}
		f.fromEnv[name] = true
	}
	a.IO.Color = f.color
	switch f.color {
	case "auto", "always", "never":
	default:
		return usageErrorf("--color %q: use auto, always or never", f.color)
	}
	return nil
}

func redactIf(flag, v string) string {
	if flag == "pw" {
		return "***"
	}
	return v
}

// given reports whether a flag was set, on the command line or from the
// environment.
func (f *connFlags) given(name string) bool {
	return f.fs.Changed(name) || f.fromEnv[name]
}

// pick chooses among flags that are alternatives to each other (-i and -I;
// -P, --pw-file and --pw-prompt): those on the command line beat those from
// the environment, and two at the same level conflict. It returns "" when
// none is set.
func (f *connFlags) pick(names ...string) (string, error) {
	for _, level := range []func(string) bool{f.fs.Changed, func(n string) bool { return f.fromEnv[n] }} {
		var set []string
		for _, n := range names {
			if level(n) {
				set = append(set, n)
			}
		}
		switch len(set) {
		case 0:
			continue
		case 1:
			return set[0], nil
		}
		var flags []string
		for _, n := range set {
			fl := f.fs.Lookup(n)
			if f.fs.Changed(n) {
				flags = append(flags, flagName(fl))
			} else {
				flags = append(flags, envName(n))
			}
		}
		return "", usageErrorf("%s conflict: give one", strings.Join(flags, " and "))
	}
	return "", nil
}

func flagName(fl *pflag.Flag) string {
	if fl.Shorthand != "" {
		return "-" + fl.Shorthand + "/--" + fl.Name
	}
	return "--" + fl.Name
}

// parseProtocol accepts mosquitto's spellings of -V.
func parseProtocol(s string) (int, error) {
	switch strings.ToLower(s) {
	case "5", "mqttv5", "v5":
		return mqttc.V5, nil
	case "311", "mqttv311", "3.1.1", "v311":
		return mqttc.V311, nil
	case "31", "mqttv31", "3.1", "v31":
		return mqttc.V31, nil
	}
	return 0, fmt.Errorf("-V %q: use 5 (mqttv5), 311 (mqttv311) or 31 (mqttv31)", s)
}

// v5OnlyKey marks, in a flag's annotations, an option that needs MQTT 5.
const v5OnlyKey = "mqtk_v5_only"

// markV5Only notes that the named flags of fs need MQTT 5: with -V 311 or
// 31 they are a usage error, and without -V they keep mqtk from falling
// back to MQTT 3.1.1.
func markV5Only(fs *pflag.FlagSet, names ...string) {
	for _, n := range names {
		if err := fs.SetAnnotation(n, v5OnlyKey, []string{"true"}); err != nil {
			panic(err) // a flag name misspelt in the code
		}
	}
}

// v5OnlyGiven names the options given that need MQTT 5, as they were given.
func (f *connFlags) v5OnlyGiven() []string {
	var names []string
	if f.given("session-expiry") {
		if f.fs.Changed("session-expiry") {
			names = append(names, "-x/--session-expiry")
		} else {
			names = append(names, envName("session-expiry"))
		}
	}
	f.fs.Visit(func(fl *pflag.Flag) {
		if _, ok := fl.Annotations[v5OnlyKey]; ok {
			names = append(names, flagName(fl))
		}
	})
	return names
}

// resolveVersion sets the protocol version in cfg: the one -V names, or,
// without -V, MQTT 5 with a fallback to 3.1.1 that a notice reports.
// Options that need MQTT 5 are refused with -V 311 or 31, and keep mqtk
// from falling back without -V.
func (f *connFlags) resolveVersion(a *App, cfg *mqttc.Config) error {
	v5Only := f.v5OnlyGiven()
	if f.given("protocol-version") {
		if cfg.ProtocolVersion != mqttc.V5 && len(v5Only) > 0 {
			asked := "-V " + f.protocol
			if !f.fs.Changed("protocol-version") {
				asked = envName("protocol-version") + "=" + f.protocol
			}
			return usageErrorf("%s needs MQTT 5, and %s asks for MQTT %s: drop %s, or use -V 5",
				v5Only[0], asked, mqttc.VersionName(cfg.ProtocolVersion), v5Only[0])
		}
		return nil
	}
	cfg.Fallback = &mqttc.Fallback{V5Only: v5Only, Notify: func(from, to int) {
		if !f.quiet {
			fmt.Fprintln(a.IO.Err, fallbackNotice(from, to))
		}
	}}
	return nil
}

// fallbackNotice is the line on stderr when mqtk falls back from one
// protocol version to another.
func fallbackNotice(from, to int) string {
	return fmt.Sprintf("mqtk: the broker refused MQTT %s; connected with MQTT %s instead (-V %s skips trying %s)",
		mqttc.VersionName(from), mqttc.VersionName(to), strings.ReplaceAll(mqttc.VersionName(to), ".", ""), mqttc.VersionName(from))
}

// parseSeconds reads a number of seconds or a Go duration ("90", "1.5s", "1h").
func parseSeconds(s string) (time.Duration, error) {
	if n, err := strconv.ParseFloat(s, 64); err == nil {
		if n < 0 || math.IsInf(n, 0) || math.IsNaN(n) {
			return 0, fmt.Errorf("%q is negative or not finite", s)
		}
		if n > float64(math.MaxInt64/time.Second) {
			return 0, fmt.Errorf("%q is too long (at most %d seconds)", s, math.MaxInt64/time.Second)
		}
		return time.Duration(n * float64(time.Second)), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is neither seconds nor a duration like 1.5s", s)
	}
	if d < 0 {
		return 0, fmt.Errorf("%q is negative", s)
	}
	return d, nil
}

// secondsValue is a duration flag that takes what -W takes: seconds
// ("90", "1.5") or a Go duration ("1m30s"). pflag's own duration flag
// refuses bare seconds, which mosquitto users type.
type secondsValue time.Duration

// secondsVar defines a secondsValue flag; p starts at def.
func secondsVar(fs *pflag.FlagSet, p *time.Duration, name string, def time.Duration, usage string) {
	secondsVarP(fs, p, name, "", def, usage)
}

// secondsVarP is secondsVar with a shorthand.
func secondsVarP(fs *pflag.FlagSet, p *time.Duration, name, shorthand string, def time.Duration, usage string) {
	*p = def
	fs.VarP((*secondsValue)(p), name, shorthand, usage)
}

func (d *secondsValue) Set(s string) error {
	v, err := parseSeconds(s)
	if err != nil {
		return err
	}
	*d = secondsValue(v)
	return nil
}

func (d *secondsValue) Type() string { return "duration" }

// String is "0" for none, which pflag's help takes for no default.
func (d *secondsValue) String() string {
	if *d == 0 {
		return "0"
	}
	return time.Duration(*d).String()
}

// parseExpiry reads a session or message expiry interval in whole seconds:
// seconds, a duration, or (if never is true) -1/∞/never for "no expiry".
func parseExpiry(s string, never bool) (uint32, error) {
	if never {
		switch strings.ToLower(s) {
		case "-1", "∞", "never", "4294967295":
			return math.MaxUint32, nil
		}
	}
	d, err := parseSeconds(s)
	if err != nil {
		return 0, err
	}
	secs := d / time.Second
	if secs > math.MaxUint32-1 || (d%time.Second != 0) {
		return 0, fmt.Errorf("%q must be whole seconds up to 4294967294", s)
	}
	return uint32(secs), nil
}

// connection is a resolved connection: the config for mqttc.Dial and the
// topic named in -L, if any.
type connection struct {
	cfg      mqttc.Config
	urlTopic string
}

// hostName is -h's host: a name or an address, IPv6 with or without
// brackets (and a zone: fe80::1%eth0). A port after it is refused with the
// flags that give one.
func (f *connFlags) hostName() (string, error) {
	h, name := f.host, "-h/--host"
	portFix := func(host, port string) string { return fmt.Sprintf("-h %s -p %s, or -L mqtt://%s", host, port, h) }
	if f.fromEnv["host"] {
		name = "MQTK_HOST"
		portFix = func(host, port string) string { return fmt.Sprintf("MQTK_HOST=%s MQTK_PORT=%s", host, port) }
	}
	if h == "" {
		return "", usageErrorf("%s is empty", name)
	}
	if inner, ok := strings.CutPrefix(h, "["); ok && strings.HasSuffix(inner, "]") {
		ip, err := netip.ParseAddr(strings.TrimSuffix(inner, "]"))
		switch {
		case err == nil && ip.Is6():
			return ip.String(), nil
		case err == nil:
			return "", usageErrorf("%s %q: brackets are for IPv6 addresses; use %s", name, h, ip)
		}
	}
	if _, err := netip.ParseAddr(h); err == nil {
		return h, nil
	}
	if host, port, err := net.SplitHostPort(h); err == nil && host != "" && isDigits(port) {
		return "", usageErrorf("%s %q holds a port: use %s", name, h, portFix(host, port))
	}
	if strings.ContainsAny(h, ":/[]") {
		return "", usageErrorf("%s %q is not a host name or address (for a URL use -L)", name, h)
	}
	return h, nil
}

func isDigits(s string) bool {
	return s != "" && strings.Trim(s, "0123456789") == ""
}

// resolve validates the flags and builds the connection config. Every check
// here happens before anything is sent.
func (f *connFlags) resolve(a *App) (*connection, error) {
	c := &connection{}
	cfg := &c.cfg
	var err error
	if cfg.ProtocolVersion, err = parseProtocol(f.protocol); err != nil {
		return nil, &UsageError{Err: err}
	}
	if err := f.resolveVersion(a, cfg); err != nil {
		return nil, err
	}

	// Where: --unix, -L, or -h/-p. A flag beats a variable; two flags conflict.
	useUnix, err := f.wantUnix()
	if err != nil {
		return nil, err
	}
	useURL := f.given("url") && !useUnix
	if useURL && f.fromEnv["url"] && (f.fs.Changed("host") || f.fs.Changed("port")) {
		useURL = false // -h/-p on the command line beat MQTK_URL
	}
	if useURL && !f.fromEnv["url"] && (f.fs.Changed("host") || f.fs.Changed("port")) {
		return nil, usageErrorf("-L/--url and -h/--host or -p/--port conflict: give one or the other")
	}
	tlsWanted := f.tls.Wanted() && !useUnix
	if useUnix {
		cfg.Endpoint = mqttc.UnixEndpoint(f.unix)
	} else if useURL {
		u, err := mqttc.ParseURL(f.url)
		if err != nil {
			return nil, &UsageError{Err: err}
		}
		if tlsWanted && u.Scheme == "mqtt" {
			u.Scheme = "mqtts"
			if !u.PortGiven {
				u.Port = mqttc.DefaultPort("mqtts")
			}
		}
		cfg.Endpoint = u.Endpoint
		c.urlTopic = u.Topic
		if u.HasUsername {
			cfg.Username, cfg.HasUsername = u.Username, true
		}
		if u.HasPassword {
			cfg.Password, cfg.HasPassword = u.Password, true
		}
	} else {
		host, err := f.hostName()
		if err != nil {
			return nil, err
		}
		scheme := "mqtt"
		if tlsWanted {
			scheme = "mqtts"
		}
		port := f.port
		if port == 0 {
			port = mqttc.DefaultPort(scheme)
		}
		if port < 1 || port > 65535 {
			return nil, usageErrorf("-p/--port %d: use a port from 1 to 65535", port)
		}
		cfg.Endpoint = mqttc.Endpoint{Scheme: scheme, Host: host, Port: port}
	}
	if cfg.Endpoint.Secure() {
		if cfg.TLS, err = f.tls.Config(); err != nil {
			return nil, &UsageError{Err: err}
		}
	} else if f.fs.Changed("insecure") || f.fs.Changed("tls-server-name") || f.fs.Changed("tls-version") || f.fs.Changed("key") || f.fs.Changed("tls-alpn") {
		return nil, usageErrorf("TLS options given but the URL is not mqtts:// or wss://; add --cafile or use an mqtts:// URL")
	}

	// Who.
	idFlag, err := f.pick("id", "id-prefix")
	if err != nil {
		return nil, err
	}
	switch idFlag {
	case "id":
		if f.id == "" {
			return nil, usageErrorf("-i/--id is empty")
		}
		cfg.ClientID = f.id
	case "id-prefix":
		cfg.ClientID = fmt.Sprintf("%s%d", f.idPrefix, os.Getpid())
	default:
		cfg.ClientID = "mqtk-" + randomID(12)
	}
	if len(cfg.ClientID) > 65535 {
		return nil, usageErrorf("client identifier is longer than 65535 bytes")
	}
	if f.keepalive < 0 || f.keepalive > 65535 {
		return nil, usageErrorf("-k/--keepalive %d: use 0 to 65535 seconds", f.keepalive)
	}
	cfg.KeepAlive = uint16(f.keepalive)
	cfg.CleanStart = !f.noClean
	if f.noClean && idFlag != "id" {
		return nil, usageErrorf("-c/--disable-clean-session needs a client identifier: give -i ID so the session can be found again")
	}
	if f.given("session-expiry") {
		x, err := parseExpiry(f.sessionExpiry, true)
		if err != nil {
			return nil, usageErrorf("-x/--session-expiry: %v", err)
		}
		cfg.SessionExpiry = &x
	} else if f.noClean && cfg.ProtocolVersion == mqttc.V5 {
		// As mosquitto: -c means the session never expires (with MQTT 3, it
		// just means no clean session).
		never := uint32(math.MaxUint32)
		cfg.SessionExpiry = &never
	}

	// Credentials. Sources of a password must not compete.
	if f.given("username") {
		cfg.Username, cfg.HasUsername = f.username, true
	}
	pwFlag, err := f.pick("pw", "pw-file", "pw-prompt")
	if err != nil {
		return nil, err
	}
	switch {
	case pwFlag == "pw-prompt" && f.pwPrompt:
		pw, err := a.IO.ReadPassword("Password: ")
		if err != nil {
			return nil, usageErrorf("--pw-prompt needs a terminal; use --pw-file or MQTK_PASSWORD instead")
		}
		cfg.Password, cfg.HasPassword = pw, true
	case pwFlag == "pw-file":
		b, err := os.ReadFile(f.pwFile)
		if err != nil {
			return nil, usageErrorf("--pw-file: %v", err)
		}
		line, _, _ := strings.Cut(string(b), "\n")
		cfg.Password, cfg.HasPassword = strings.TrimSuffix(line, "\r"), true
	case pwFlag == "pw":
		cfg.Password, cfg.HasPassword = f.password, true
	}
	if cfg.HasPassword && !cfg.HasUsername {
		return nil, usageErrorf("a password needs a user name: add -u USER")
	}

	// Will.
	if f.given("will-payload") || f.given("will-qos") || f.given("will-retain") {
		if !f.given("will-topic") {
			return nil, usageErrorf("--will-payload, --will-qos and --will-retain need --will-topic")
		}
	}
	if f.given("will-topic") {
		if err := topic.ValidateName(f.willTopic); err != nil {
			return nil, usageErrorf("--will-topic: %v", err)
		}
		if f.willQoS < 0 || f.willQoS > 2 {
			return nil, usageErrorf("--will-qos %d: use 0, 1 or 2", f.willQoS)
		}
		cfg.Will = &mqttc.Message{Topic: f.willTopic, Payload: []byte(f.willPayload), QoS: byte(f.willQoS), Retain: f.willRetain}
	}

	if err := f.resolveTransport(cfg); err != nil {
		return nil, err
	}

	if f.connectTimeout <= 0 {
		return nil, usageErrorf("--connect-timeout must be positive")
	}
	cfg.ConnectTimeout = f.connectTimeout
	if f.debug {
		cfg.Trace = a.IO.Err
	}
	return c, nil
}

func randomID(n int) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

// prepare is the PreRunE of commands with connection flags.
func (f *connFlags) prepare(a *App) func(*cobra.Command, []string) error {
	return func(*cobra.Command, []string) error { return f.applyEnv(a) }
}
