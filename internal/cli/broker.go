package cli

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"mqtk/internal/broker"
)

type brokerOptions struct {
	config         string
	port           int
	listen         []string
	ws             []string
	tlsListen      []string
	tlsCert        string
	tlsKey         string
	tlsClientCA    string
	unix           []string
	allowAnonymous bool
	passwordFile   string
	aclFile        string
	persist        string
	connectTimeout time.Duration
	writeTimeout   time.Duration
	maxPacketSize  int
	maxConnections int
	maxKeepalive   int
	maxQueued      int
	queueWait      time.Duration
	maxInflight    int
	sysInterval    time.Duration
	verbose        bool
	logFormat      string
}

func newBrokerCmd(a *App) *cobra.Command {
	o := &brokerOptions{}
	cmd := &cobra.Command{
		Use:   "broker [flags]",
		Short: "Run an MQTT broker on this machine",
		Long: `Run an MQTT broker (mochi-mqtt underneath) with mosquitto 2's safe defaults:
it listens on 127.0.0.1 and [::1] only, where anonymous clients may connect.
--listen replaces these TCP listeners; --ws, --tls-listen and --unix add to
them.

A listener on any other address does not start unless --password-file (every
client then authenticates) or --allow-anonymous says who may connect. With a
password file, anonymous clients are refused unless --allow-anonymous.
Password and ACL files are mosquitto's formats (mosquitto_passwd, acl_file);
a line mqtk cannot read (a hash other than $7$ or $6$, say) is an error
naming the file and line, where mosquitto skips it.
As with mosquitto, a subscription wider than the ACL allows ('#' for a user
who may read site/#) is granted and each message checked as it is delivered;
one that the ACL lets nothing through is refused (SUBACK 0x87), and so is a
shared subscription ($share/...) to more than the user may read. SIGHUP reads
the files again: connections stay, under the new rules, except those
of users removed from the password file or whose line in it changed, which
are disconnected (as by mosquitto). A will the ACL does not let its client
publish is dropped, at connect and at each reload.

A client that reads more slowly than its messages come has up to --max-queued
waiting for it; what does not fit is dropped, counted in
$SYS/broker/messages/dropped and logged, and its publishers never wait for it.
With --queue-wait D a message waits up to D for room instead: a slow
subscriber then gets every message and slows its publishers (and their other
subscribers) to its pace, as mosquitto's single thread does; one that stopped
reading holds them up once, for D. A write that makes no progress for
--write-timeout closes the connection.

--persist DIR keeps retained messages, persistent sessions (their
subscriptions and queued QoS 1 and 2 messages) and messages being delivered
across a restart or a crash, with nothing acknowledged lost. Expiry runs on
while the broker is down: a session or message whose expiry passed meanwhile
is gone when it starts again.

The startup lines on stderr say what is exposed and how it is protected. The
broker runs until Ctrl-C or SIGTERM, then disconnects every client and exits
0 within a second.

Durations (D) take seconds (10, 0.5) or a Go duration (1m30s).

--config FILE takes the same settings from a file, one per line, mosquitto
style: the long flag name, a space, the value ("listen 0.0.0.0:1883",
"password-file /etc/mqtk/passwd", "allow-anonymous true"); # starts a
comment, at the start of a line or after a blank; a repeatable flag may
appear on several lines. Flags on the command
line beat the file.`,
		Example: `  mqtk broker                                  # mqtt://127.0.0.1:1883 and [::1]:1883
  mqtk broker --port 0                         # a free port, printed on stderr
  mqtk broker --listen 0.0.0.0:1883 --password-file passwd --acl-file acl
  mqtk broker --tls-listen 0.0.0.0:8883 --tls-cert server.pem --tls-key key.pem --password-file passwd
  mqtk broker --ws 127.0.0.1:8080 --unix /run/mqtk.sock --persist /var/lib/mqtk
  mqtk broker passwd passwd alice              # add or change alice's password`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.applyConfigFile(cmd.Flags()); err != nil {
				return err
			}
			return runBroker(cmd.Context(), a, o)
		},
	}
	fs := cmd.Flags()
	fs.SortFlags = false
	fs.StringVar(&o.config, "config", "", "read settings from `FILE` (flags beat it)")
	fs.IntVarP(&o.port, "port", "p", broker.DefaultPort, "`PORT` of the default loopback listeners (0 picks a free one)")
	fs.StringArrayVar(&o.listen, "listen", nil, "accept MQTT on `HOST:PORT` instead of the default (repeatable)")
	fs.StringArrayVar(&o.ws, "ws", nil, "accept MQTT over WebSocket on `HOST:PORT` (repeatable)")
	fs.StringArrayVar(&o.tlsListen, "tls-listen", nil, "accept MQTT over TLS on `HOST:PORT` (repeatable; needs --tls-cert and --tls-key)")
	fs.StringVar(&o.tlsCert, "tls-cert", "", "server certificate PEM `FILE` (with its chain)")
	fs.StringVar(&o.tlsKey, "tls-key", "", "server private key PEM `FILE`")
	fs.StringVar(&o.tlsClientCA, "tls-client-ca", "", "require TLS clients to present a certificate signed by a CA in `FILE`")
	fs.StringArrayVar(&o.unix, "unix", nil, "accept MQTT on the Unix socket `PATH` (repeatable)")
	fs.BoolVar(&o.allowAnonymous, "allow-anonymous", false, "let clients without a user name connect on every listener")
	fs.StringVar(&o.passwordFile, "password-file", "", "mosquitto_passwd `FILE`: clients must log in")
	fs.StringVar(&o.aclFile, "acl-file", "", "mosquitto acl_file `FILE`: who may publish and subscribe where")
	fs.StringVar(&o.persist, "persist", "", "keep retained messages, sessions and queued messages in `DIR` across restarts")
	secondsVar(fs, &o.connectTimeout, "connect-timeout", broker.DefaultConnectTimeout, "close a connection that sends no CONNECT within `D`")
	secondsVar(fs, &o.writeTimeout, "write-timeout", broker.DefaultWriteTimeout, "close a connection whose writes make no progress for `D` (a client that stopped reading)")
	fs.IntVar(&o.maxPacketSize, "max-packet-size", 0, "largest packet accepted, in `BYTES` (0: no limit)")
	fs.IntVar(&o.maxConnections, "max-connections", 0, "refuse clients beyond `N` connected (0: no limit)")
	fs.IntVar(&o.maxKeepalive, "max-keepalive", 0, "cap the keep-alive clients may ask for, in `SECONDS` (0: no cap; MQTT 3 clients asking for more, or 0, are refused)")
	fs.IntVar(&o.maxQueued, "max-queued", 0, "messages waiting to be written to one client before more are dropped, or wait (--queue-wait) (`N`; 0: 8192)")
	fs.IntVar(&o.maxInflight, "max-inflight", 0, "QoS 1/2 messages stored per client (`N`; 0: 8192)")
	secondsVar(fs, &o.queueWait, "queue-wait", 0, "let a message wait up to `D` for room in a client's full queue before it is dropped: slow subscribers then slow their publishers instead of losing messages (0: drop at once)")
	secondsVar(fs, &o.sysInterval, "sys-interval", 10*time.Second, "publish $SYS/broker/... topics every `D` (0: never, as mosquitto's sys_interval 0)")
	fs.BoolVarP(&o.verbose, "verbose", "v", false, "log every connect, subscribe and publish (never payloads or passwords)")
	fs.StringVar(&o.logFormat, "log-format", "text", "log `FORMAT` on stderr: text or json")
	cmd.AddCommand(newBrokerPasswdCmd(a))
	return cmd
}

// stripComment cuts a --config line at its comment: a # at the start or
// after a blank.
func stripComment(line string) string {
	for i := 0; i < len(line); i++ {
		if line[i] == '#' && (i == 0 || line[i-1] == ' ' || line[i-1] == '\t') {
			return line[:i]
		}
	}
	return line
}

// applyConfigFile sets every flag named in --config that the command line
// did not set.
func (o *brokerOptions) applyConfigFile(fs *pflag.FlagSet) error {
	if o.config == "" {
		return nil
	}
	f, err := os.Open(o.config)
	if err != nil {
		return usageErrorf("--config: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(stripComment(sc.Text()))
		if line == "" {
			continue
		}
		name, value, _ := strings.Cut(line, " ")
		value = strings.TrimSpace(value)
		fl := fs.Lookup(name)
		if fl == nil || name == "config" {
			hint := "settings are the long flag names of mqtk broker"
			if alt := strings.ReplaceAll(name, "_", "-"); alt != name && alt != "config" && fs.Lookup(alt) != nil {
				hint = "mqtk's name for it is " + alt // mosquitto.conf's spelling
			}
			return usageErrorf("%s:%d: unknown setting %q (%s)", o.config, n, name, hint)
		}
		if fs.Changed(name) {
			continue // the command line wins
		}
		if value == "" && fl.Value.Type() == "bool" {
			value = "true"
		}
		if err := fl.Value.Set(value); err != nil {
			if reason := numberReason(err); reason != "" {
				return usageErrorf("%s:%d: %s %q: %s", o.config, n, name, value, reason)
			}
			return usageErrorf("%s:%d: %s: %v", o.config, n, name, err)
		}
	}
	if err := sc.Err(); err != nil {
		return usageErrorf("--config: %v", err)
	}
	return nil
}

func (o *brokerOptions) brokerConfig(log *slog.Logger) (broker.Config, error) {
	cfg := broker.Config{
		Port: o.port, Loopback: len(o.listen) == 0, Listen: o.listen, WSListen: o.ws, TLSListen: o.tlsListen, Unix: o.unix,
		AllowAnonymous: o.allowAnonymous, PasswordFile: o.passwordFile, ACLFile: o.aclFile,
		PersistDir: o.persist, ConnectTimeout: o.connectTimeout, WriteTimeout: o.writeTimeout, SysInterval: o.sysInterval,
		Version:        versionString(),
		MaxConnections: o.maxConnections, MaxQueued: o.maxQueued, MaxInflight: o.maxInflight, QueueWait: o.queueWait,
		Verbose: o.verbose, Logger: log,
	}
	if o.port < 0 || o.port > 65535 {
		return cfg, usageErrorf("-p/--port %d: use 0 to 65535", o.port)
	}
	for _, l := range []struct {
		flag string
		v    int
	}{{"--max-packet-size", o.maxPacketSize}, {"--max-keepalive", o.maxKeepalive}, {"--max-connections", o.maxConnections}, {"--max-queued", o.maxQueued}, {"--max-inflight", o.maxInflight}} {
		if l.v < 0 {
			return cfg, usageErrorf("%s %d: use 0 (no limit, or the default) or more", l.flag, l.v)
		}
	}
	// The upper bounds: what the value is stored in, or what MQTT allows.
	for _, l := range []struct {
		flag   string
		v, max int
		unit   string
	}{
		{"--max-keepalive", o.maxKeepalive, 65535, " (seconds)"},
		{"--max-inflight", o.maxInflight, 65535, " (the packet identifiers there are)"},
		{"--max-queued", o.maxQueued, math.MaxInt32, ""},
		{"--max-packet-size", o.maxPacketSize, maxMQTTPacketSize, " (the largest packet MQTT has; 0: no limit)"},
	} {
		if l.v > l.max {
			return cfg, usageErrorf("%s %d: use 0 to %d%s", l.flag, l.v, l.max, l.unit)
		}
	}
	if o.maxPacketSize > 0 && o.maxPacketSize < minMaxPacketSize {
		return cfg, usageErrorf("--max-packet-size %d: no client could connect (the limit holds for CONNECT too); use at least %d, or 0 for no limit", o.maxPacketSize, minMaxPacketSize)
	}
	for _, l := range []struct {
		flag  string
		addrs []string
	}{{"--listen", o.listen}, {"--ws", o.ws}, {"--tls-listen", o.tlsListen}} {
		for _, addr := range l.addrs {
			if err := checkListenAddr(addr); err != nil {
				return cfg, usageErrorf("%s %q: %v", l.flag, addr, err)
			}
		}
	}
	cfg.MaximumPacketSize = uint32(o.maxPacketSize)
	cfg.MaxKeepalive = uint16(o.maxKeepalive)
	if o.connectTimeout <= 0 {
		return cfg, usageErrorf("--connect-timeout must be positive")
	}
	if o.writeTimeout <= 0 {
		return cfg, usageErrorf("--write-timeout must be positive")
	}
	switch {
	case o.sysInterval == 0:
		cfg.SysInterval = -1 // none
	case o.sysInterval < time.Second || o.sysInterval%time.Second != 0:
		return cfg, usageErrorf("--sys-interval %s: use whole seconds (0: no $SYS topics)", o.sysInterval)
	}
	if o.queueWait < 0 {
		return cfg, usageErrorf("--queue-wait must be 0 or positive")
	}
	if len(o.tlsListen) > 0 || o.tlsCert != "" || o.tlsKey != "" {
		if len(o.tlsListen) == 0 || o.tlsCert == "" || o.tlsKey == "" {
			return cfg, usageErrorf("--tls-listen, --tls-cert and --tls-key go together")
		}
		cert, err := tls.LoadX509KeyPair(o.tlsCert, o.tlsKey)
		if err != nil {
			return cfg, usageErrorf("--tls-cert/--tls-key: %v", err)
		}
		cfg.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		if o.tlsClientCA != "" {
			pem, err := os.ReadFile(o.tlsClientCA)
			if err != nil {
				return cfg, usageErrorf("--tls-client-ca: %v", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return cfg, usageErrorf("--tls-client-ca %s: no PEM certificate in it", o.tlsClientCA)
			}
			cfg.TLS.ClientCAs = pool
			cfg.TLS.ClientAuth = tls.RequireAndVerifyClientCert
		}
	} else if o.tlsClientCA != "" {
		return cfg, usageErrorf("--tls-client-ca needs --tls-listen")
	}
	return cfg, nil
}

// maxMQTTPacketSize is the largest packet MQTT has: a fixed header of 5
// bytes and the largest remaining length, 268,435,455.
const maxMQTTPacketSize = 5 + 268435455

// minMaxPacketSize is the smallest --max-packet-size: a CONNECT with a
// 23-character client ID, a user name and a password, in MQTT 5, takes
// about 60 bytes.
const minMaxPacketSize = 64

// checkListenAddr checks a listener's HOST:PORT before anything listens.
func checkListenAddr(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return errors.New("use HOST:PORT, [IPv6]:PORT or :PORT")
	}
	if port == "" {
		return nil // as 0: a free port
	}
	if _, err := net.LookupPort("tcp", port); err != nil { // a number, or a service name (mqtt)
		return fmt.Errorf("port %q: use 0 to 65535 (or a service name)", port)
	}
	return nil
}

func runBroker(ctx context.Context, a *App, o *brokerOptions) error {
	if _, set := a.LookupEnv("GOGC"); !set {
		// Collecting garbage at 4x the live heap instead of 2x cut the
		// broker's CPU per delivered message by about a fifth when fanning
		// out (docs/performance.md), for more memory under load only: an
		// idle broker makes little garbage.
		debug.SetGCPercent(400)
	}
	level := slog.LevelWarn
	if o.verbose {
		level = slog.LevelInfo
	}
	var handler slog.Handler
	switch o.logFormat {
	case "text":
		handler = slog.NewTextHandler(a.IO.Err, &slog.HandlerOptions{Level: level})
	case "json":
		handler = slog.NewJSONHandler(a.IO.Err, &slog.HandlerOptions{Level: level})
	default:
		return usageErrorf("--log-format %q: use text or json", o.logFormat)
	}
	// notice says what the broker is doing whatever the level: the
	// listeners, persistence, a reload. As a plain line in text (the first
	// is "listening on URL", which scripts read), as a record at INFO in
	// JSON, so that every line of the log parses.
	noticeJSON := slog.New(slog.NewJSONHandler(a.IO.Err, nil)) // INFO and up, whatever -v says
	notice := func(level slog.Level, text, msg string, args ...any) {
		if o.logFormat == "json" {
			noticeJSON.Log(context.Background(), level, msg, args...)
			return
		}
		fmt.Fprintln(a.IO.Err, text)
	}
	// A failure to start is, in JSON, a record like the rest of the log.
	failed := func(err error) error {
		if o.logFormat != "json" {
			return err
		}
		noticeJSON.Error("cannot start", "error", err.Error())
		return &loggedError{err}
	}
	cfg, err := o.brokerConfig(slog.New(handler))
	if err != nil {
		return failed(err)
	}
	s, err := broker.Start(cfg)
	if errors.Is(err, broker.ErrExposed) || errors.Is(err, broker.ErrAuthFile) {
		return failed(&UsageError{Err: err})
	}
	if err != nil {
		return failed(err)
	}
	protection := "anonymous clients allowed"
	switch {
	case cfg.PasswordFile != "" && cfg.AllowAnonymous:
		protection = "password file " + cfg.PasswordFile + ", anonymous clients allowed"
	case cfg.PasswordFile != "":
		protection = "password file " + cfg.PasswordFile + ", anonymous clients refused"
	}
	if cfg.ACLFile != "" {
		protection += ", ACL file " + cfg.ACLFile
	}
	for _, u := range s.URLs() {
		scope := "loopback only"
		if strings.HasPrefix(u, "unix://") {
			scope = "this machine"
		} else if _, hostport, _ := strings.Cut(u, "://"); !broker.IsLoopback(strings.TrimSuffix(hostport, "/mqtt")) {
			scope = "open to the network"
		}
		protection := protection
		if strings.HasPrefix(u, "mqtts://") && cfg.TLS != nil && cfg.TLS.ClientAuth == tls.RequireAndVerifyClientCert {
			protection = "client certificate required, " + protection
		}
		notice(slog.LevelInfo, fmt.Sprintf("listening on %s (%s; %s)", u, scope, protection),
			"listening", "url", u, "scope", scope, "protection", protection)
	}
	if cfg.PersistDir != "" {
		notice(slog.LevelInfo, "persisting to "+cfg.PersistDir, "persisting", "dir", cfg.PersistDir)
	}
	reloads := "the password file and the ACL file"
	switch {
	case cfg.PasswordFile == "" && cfg.ACLFile == "":
		reloads = ""
	case cfg.ACLFile == "":
		reloads = "the password file"
	case cfg.PasswordFile == "":
		reloads = "the ACL file"
	}

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-hup:
			if reloads == "" {
				notice(slog.LevelInfo, "SIGHUP: nothing to reload (no --password-file or --acl-file)", "nothing to reload")
				continue
			}
			n, err := s.Reload()
			switch {
			case err != nil:
				notice(slog.LevelError, fmt.Sprintf("mqtk: reload: %v (the previous files stay in force)", err),
					"reload failed; the previous files stay in force", "error", err.Error())
			case n > 0:
				notice(slog.LevelInfo, fmt.Sprintf("reloaded %s; disconnected %d %s whose user was removed or given a new password", reloads, n, plural(n, "client", "clients")),
					"reloaded", "files", reloads, "disconnected", n)
			default:
				notice(slog.LevelInfo, "reloaded "+reloads, "reloaded", "files", reloads)
			}
		case <-ctx.Done():
			return s.Close()
		}
	}
}
