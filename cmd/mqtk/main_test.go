package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"mqtk/internal/broker"
	"mqtk/internal/brokertest"
	"mqtk/internal/cli"
	"mqtk/internal/proxytest"
)

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"mqtk": func() { os.Exit(cli.Main()) },
	})
}

// waitLimit bounds every wait for a condition in the scripts; it is a
// safety net against hangs, never a synchronisation.
const waitLimit = 60 * time.Second

// TestScripts runs the end-to-end scripts in testdata/script: the real mqtk
// command against an in-process broker (and mosquitto, when installed).
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/script",
		RequireExplicitExec: true,
		// Scripts start from testscript's minimal environment (PATH, HOME,
		// TMPDIR...), so the developer's MQTK_* variables never reach mqtk.
		// (Setting them to "" would not hide them: mqtk reads a variable
		// that is set and empty as an empty value, e.g. an empty host.)
		Setup: func(env *testscript.Env) error {
			env.Setenv("NO_COLOR", "1")
			env.Values[brokersKey{}] = map[string]*brokertest.Broker{}
			env.Values[mosqKey{}] = &mosqHolder{}
			return nil
		},
		Condition: func(cond string) (bool, error) {
			switch cond {
			case "mosquitto":
				return haveMosquitto(), nil
			case "mosquitto-websockets": // built WITH_WEBSOCKETS
				port, err := freePortNumber()
				if err != nil {
					return false, err
				}
				return mosquittoAccepts("listener "+strconv.Itoa(port)+" 127.0.0.1", "protocol websockets"), nil
			case "mosquitto-unix": // 2.0 or later, built WITH_UNIX_SOCKETS
				return mosquittoAccepts("listener 0 " + filepath.Join(os.TempDir(), "mqtk-probe.sock")), nil
			}
			return false, fmt.Errorf("unknown condition %q", cond)
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"broker":            cmdBroker,
			"waitsub":           cmdWaitSub,
			"mosquitto":         cmdMosquitto,
			"mosquitto-restart": cmdMosquittoRestart,
			"waitlog":           cmdWaitLog,
			"status":            cmdStatus,
			"genbytes":          cmdGenBytes,
			"gencerts":          cmdGenCerts,
			"mutebroker":        cmdMuteBroker,
			"kick":              cmdKick,
			"waitacked":         cmdWaitAcked,
			"writefile":         cmdWriteFile,
			"retainfill":        cmdRetainFill,
			"retainbroker":      cmdRetainBroker,
			"tlsfront":          cmdTLSFront,
			"proxy":             cmdProxy,
			"freeport":          cmdFreePort,
			"v3front":           cmdV3Front,
		},
	})
}

func haveMosquitto() bool {
	for _, p := range []string{"mosquitto", "mosquitto_pub", "mosquitto_sub"} {
		if _, err := lookMosquitto(p); err != nil {
			return false
		}
	}
	return true
}

// lookMosquitto finds mosquitto's programs; Debian puts the broker in /usr/sbin.
func lookMosquitto(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	p := filepath.Join("/usr/sbin", name)
	if _, err := os.Stat(p); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("%s not found", name)
}

// brokersKey holds a script's in-process brokers by name.
type brokersKey struct{}

func brokers(ts *testscript.TestScript) map[string]*brokertest.Broker {
	return ts.Value(brokersKey{}).(map[string]*brokertest.Broker)
}

// broker [-name NAME] [-user USER:PASS]... [-allow-anonymous]
//
//	[-deny-write FILTER]... [-deny-read FILTER]... [-max-packet N] [-tls]
//	[-ws] [-unix PATH]
//
// starts mqtk's broker in this process on a free 127.0.0.1 port and sets
// $NAME_PORT and $NAME_URL (NAME defaults to BROKER). With -tls it listens
// with TLS using the certificates from gencerts, in $WORK/certs. -ws adds a
// WebSocket listener on another free port and sets $NAME_WS_URL
// (ws://127.0.0.1:PORT/mqtt) and $NAME_WS_PORT; -unix adds a Unix socket.
func cmdBroker(ts *testscript.TestScript, neg bool, args []string) {
	if neg {
		ts.Fatalf("unsupported: ! broker")
	}
	fs := flag.NewFlagSet("broker", flag.ContinueOnError)
	name := fs.String("name", "BROKER", "")
	var users, denyW, denyR multi
	fs.Var(&users, "user", "")
	fs.Var(&denyW, "deny-write", "")
	fs.Var(&denyR, "deny-read", "")
	anon := fs.Bool("allow-anonymous", false, "")
	maxPacket := fs.Uint("max-packet", 0, "")
	useTLS := fs.Bool("tls", false, "")
	useWS := fs.Bool("ws", false, "")
	unixPath := fs.String("unix", "", "")
	ts.Check(fs.Parse(args))

	cfg := broker.Config{AllowAnonymous: *anon, MaximumPacketSize: uint32(*maxPacket)}
	if len(users) > 0 {
		cfg.Users = map[string]string{}
		for _, u := range users {
			user, pass, _ := strings.Cut(u, ":")
			cfg.Users[user] = pass
		}
	}
	if len(denyW)+len(denyR) > 0 {
		for _, f := range denyW {
			cfg.ACL = append(cfg.ACL, broker.Rule{Filter: f, Access: broker.Write, Deny: true})
		}
		for _, f := range denyR {
			cfg.ACL = append(cfg.ACL, broker.Rule{Filter: f, Access: broker.Read, Deny: true})
		}
		cfg.ACL = append(cfg.ACL, broker.Rule{Filter: "#", Access: broker.ReadWrite})
	}
	if *useTLS {
		cfg.TLS = serverTLS(ts)
		cfg.TLSListen = []string{"127.0.0.1:0"}
	}
	if *useWS {
		cfg.WSListen = []string{"127.0.0.1:0"}
	}
	if *unixPath != "" {
		cfg.Unix = []string{ts.MkAbs(*unixPath)}
	}
	b, err := brokertest.New(cfg)
	ts.Check(err)
	ts.Defer(func() { b.Close() })
	brokers(ts)[*name] = b
	for _, u := range b.URLs() {
		if strings.HasPrefix(u, "ws://") {
			ts.Setenv(*name+"_WS_URL", u)
			_, port, _ := net.SplitHostPort(strings.TrimSuffix(strings.TrimPrefix(u, "ws://"), "/mqtt"))
			ts.Setenv(*name+"_WS_PORT", port)
		}
	}
	ts.Setenv(*name+"_PORT", strconv.Itoa(b.Port))
	ts.Setenv(*name+"_URL", b.URL)
}

type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

// waitsub [-name NAME] [-n COUNT] FILTER waits until the in-process broker
// has granted COUNT (default 1) subscriptions to FILTER in total.
func cmdWaitSub(ts *testscript.TestScript, neg bool, args []string) {
	waitBrokerEvent(ts, "waitsub", "FILTER", args, (*brokertest.Broker).WaitSubscribed)
}

// waitBrokerEvent parses [-name NAME] [-n COUNT] ARG and waits, with wait,
// until the named in-process broker has seen the event COUNT times.
func waitBrokerEvent(ts *testscript.TestScript, cmd, arg string, args []string,
	wait func(*brokertest.Broker, context.Context, string, int) error) {
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	name := fs.String("name", "BROKER", "")
	n := fs.Int("n", 1, "")
	ts.Check(fs.Parse(args))
	if fs.NArg() != 1 {
		ts.Fatalf("usage: %s [-name NAME] [-n COUNT] %s", cmd, arg)
	}
	b, ok := brokers(ts)[*name]
	if !ok {
		ts.Fatalf("no broker named %s", *name)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	ts.Check(wait(b, ctx, fs.Arg(0), *n))
}

// mosquitto [CONFIG-LINE]... starts a mosquitto broker on a free 127.0.0.1
// port with a generated config (anonymous allowed, everything logged to
// $WORK/mosquitto.log) plus the given lines, and sets $MOSQ_PORT.
func cmdMosquitto(ts *testscript.TestScript, neg bool, args []string) {
	port := freePort(ts)
	logFile := ts.MkAbs("mosquitto.log")
	conf := fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\nuser root\nlog_dest file %s\nlog_type all\nlog_timestamp false\n", port, logFile)
	for _, l := range args {
		conf += l + "\n"
	}
	confFile := ts.MkAbs("mosquitto.conf")
	ts.Check(os.WriteFile(confFile, []byte(conf), 0o644))
	h := ts.Value(mosqKey{}).(*mosqHolder)
	h.port = port
	h.proc = startMosquitto(ts, confFile, port)
	ts.Setenv("MOSQ_PORT", strconv.Itoa(port))
}

// mosquitto-restart stops the mosquitto started by 'mosquitto' with SIGTERM
// (it saves its persistence file, if configured, as it exits) and starts it
// again with the same configuration on the same port.
func cmdMosquittoRestart(ts *testscript.TestScript, neg bool, args []string) {
	h := ts.Value(mosqKey{}).(*mosqHolder)
	if h.proc == nil {
		ts.Fatalf("no mosquitto running")
	}
	h.proc.stop()
	h.proc = startMosquitto(ts, ts.MkAbs("mosquitto.conf"), h.port)
}

type mosqKey struct{}

// mosqHolder is the mosquitto a script runs.
type mosqHolder struct {
	port int
	proc *mosqProc
}

type mosqProc struct {
	cmd     *exec.Cmd
	exited  chan struct{} // closed once it has exited; waitErr says why
	waitErr error
}

func (p *mosqProc) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(waitLimit): // a bound against a hang only
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// startMosquitto runs mosquitto with confFile and returns once it accepts
// connections on port.
func startMosquitto(ts *testscript.TestScript, confFile string, port int) *mosqProc {
	bin, err := lookMosquitto("mosquitto")
	ts.Check(err)
	cmd := exec.Command(bin, "-c", confFile)
	// Its own output goes to a file: the script's stdout buffer belongs to
	// the command that is running, not to a process that outlives it.
	out, err := os.OpenFile(ts.MkAbs("mosquitto.out"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	ts.Check(err)
	ts.Defer(func() { out.Close() })
	cmd.Stdout, cmd.Stderr = out, out
	ts.Check(cmd.Start())
	p := &mosqProc{cmd: cmd, exited: make(chan struct{})}
	go func() { p.waitErr = cmd.Wait(); close(p.exited) }()
	ts.Defer(func() {
		_ = cmd.Process.Kill()
		<-p.exited
	})
	// Ready when it accepts a connection.
	deadline := time.Now().Add(waitLimit)
	for {
		c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), time.Second)
		if err == nil {
			c.Close()
			return p
		}
		select {
		case <-p.exited:
			log, _ := os.ReadFile(ts.MkAbs("mosquitto.log"))
			output, _ := os.ReadFile(out.Name())
			ts.Fatalf("mosquitto exited: %v\n%s%s", p.waitErr, output, log)
		case <-time.After(20 * time.Millisecond): // poll interval while waiting for the port
		}
		if time.Now().After(deadline) {
			ts.Fatalf("mosquitto did not listen on %d", port)
		}
	}
}

func freePort(ts *testscript.TestScript) int {
	port, err := freePortNumber()
	ts.Check(err)
	return port
}

// freePortNumber is a 127.0.0.1 port that nothing listens on (now).
func freePortNumber() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// freeport VAR... sets each VAR to a free 127.0.0.1 port, for listeners in
// a mosquitto configuration.
func cmdFreePort(ts *testscript.TestScript, neg bool, args []string) {
	for _, v := range args {
		ts.Setenv(v, strconv.Itoa(freePort(ts)))
	}
}

// mosquittoAccepts reports whether mosquitto's configuration parser accepts
// lines: it reads them followed by an unknown option, and fails on that
// option only if it took the lines. Nothing is opened.
func mosquittoAccepts(lines ...string) bool {
	bin, err := lookMosquitto("mosquitto")
	if err != nil {
		return false
	}
	f, err := os.CreateTemp("", "mqtk-probe-*.conf")
	if err != nil {
		return false
	}
	defer os.Remove(f.Name())
	_, err = f.WriteString(strings.Join(lines, "\n") + "\nmqtk_probe_unknown_option x\n")
	if f.Close() != nil || err != nil {
		return false
	}
	out, _ := exec.Command(bin, "-c", f.Name()).CombinedOutput()
	return strings.Contains(string(out), "mqtk_probe_unknown_option")
}

// waitlog FILE REGEXP waits until FILE (e.g. mosquitto.log) has a line
// matching REGEXP: mosquitto logs "Sending SUBACK to ID" once a subscription
// is in place, which is how scripts wait for a subscriber to mosquitto.
func cmdWaitLog(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: waitlog FILE REGEXP")
	}
	re, err := regexp.Compile(args[1])
	ts.Check(err)
	deadline := time.Now().Add(waitLimit)
	for {
		b, _ := os.ReadFile(ts.MkAbs(args[0]))
		if re.Match(b) {
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("%s has no line matching %q:\n%s", args[0], args[1], b)
		}
		time.Sleep(20 * time.Millisecond) // poll interval of a condition wait
	}
}

// status CODE PROGRAM [ARGS...] runs PROGRAM like exec and checks that it
// exits with exactly CODE. stdout and stderr can be checked afterwards.
func cmdStatus(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) < 2 {
		ts.Fatalf("usage: status CODE PROGRAM [ARGS...]")
	}
	want, err := strconv.Atoi(args[0])
	ts.Check(err)
	prog := args[1]
	if strings.HasPrefix(prog, "mosquitto") {
		prog, err = lookMosquitto(prog)
		ts.Check(err)
	}
	err = ts.Exec(prog, args[2:]...)
	got := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		got = ee.ExitCode()
	} else if err != nil {
		ts.Fatalf("%s: %v", args[1], err)
	}
	if got != want {
		ts.Fatalf("%s exited %d, want %d", args[1], got, want)
	}
}

// genbytes FILE N writes N bytes that cycle through every byte value,
// including NUL, \r and \n, to FILE.
func cmdGenBytes(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: genbytes FILE N")
	}
	n, err := strconv.Atoi(args[1])
	ts.Check(err)
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/256)
	}
	ts.Check(os.WriteFile(ts.MkAbs(args[0]), b, 0o644))
}

// writefile FILE TEXT writes TEXT to FILE after decoding Go escape sequences
// (\r, \n, \x00, \\, ...), and nothing else: for input a txtar section
// cannot hold, such as \r\n line endings or a last line without a newline.
func cmdWriteFile(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: writefile FILE TEXT")
	}
	text, err := strconv.Unquote(`"` + strings.ReplaceAll(args[1], `"`, `\"`) + `"`)
	ts.Check(err)
	ts.Check(os.WriteFile(ts.MkAbs(args[0]), []byte(text), 0o644))
}

// gencerts writes a test CA (certs/ca.pem), a server certificate for
// 127.0.0.1 and localhost signed by it (certs/server.pem, server-key.pem), a
// client certificate signed by it (certs/client.pem, client-key.pem), and an
// unrelated CA (certs/other-ca.pem).
func cmdGenCerts(ts *testscript.TestScript, neg bool, args []string) {
	_, err := genCerts(ts.MkAbs("certs"))
	ts.Check(err)
}

// certFiles are the files genCerts writes.
type certFiles struct {
	ca, otherCA, serverCert, serverKey, clientCert, clientKey string
}

func writeTestCerts(t *testing.T, dir string) certFiles {
	t.Helper()
	c, err := genCerts(dir)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func genCerts(dir string) (certFiles, error) {
	f := certFiles{
		ca: filepath.Join(dir, "ca.pem"), otherCA: filepath.Join(dir, "other-ca.pem"),
		serverCert: filepath.Join(dir, "server.pem"), serverKey: filepath.Join(dir, "server-key.pem"),
		clientCert: filepath.Join(dir, "client.pem"), clientKey: filepath.Join(dir, "client-key.pem"),
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return f, err
	}
	ca, caKey, err := newCA("mqtk test CA")
	if err != nil {
		return f, err
	}
	other, _, err := newCA("some other CA")
	if err != nil {
		return f, err
	}
	if err := writePEM(f.ca, "CERTIFICATE", ca.Raw); err != nil {
		return f, err
	}
	if err := writePEM(f.otherCA, "CERTIFICATE", other.Raw); err != nil {
		return f, err
	}
	for _, leaf := range []struct {
		cert, key string
		tmpl      *x509.Certificate
	}{
		{f.serverCert, f.serverKey, &x509.Certificate{
			SerialNumber: big.NewInt(3), Subject: pkix.Name{CommonName: "localhost"},
			DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		}},
		{f.clientCert, f.clientKey, &x509.Certificate{
			SerialNumber: big.NewInt(4), Subject: pkix.Name{CommonName: "mqtk test client"},
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		}},
	} {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return f, err
		}
		leaf.tmpl.NotBefore, leaf.tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour)
		leaf.tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		der, err := x509.CreateCertificate(rand.Reader, leaf.tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			return f, err
		}
		kb, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			return f, err
		}
		if err := writePEM(leaf.cert, "CERTIFICATE", der); err != nil {
			return f, err
		}
		if err := writePEM(leaf.key, "EC PRIVATE KEY", kb); err != nil {
			return f, err
		}
	}
	return f, nil
}

func newCA(name string) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	return cert, key, err
}

func writePEM(file, typ string, der []byte) error {
	return os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600)
}

// tlsfront [-name NAME] [-alpn PROTO,...] [-client-ca FILE] HOST:PORT accepts
// TLS on a free 127.0.0.1 port with the server certificate from gencerts and
// relays each connection to HOST:PORT, as a TLS terminator in front of a
// broker does (wss:// in front of `broker -ws`). It sets $NAME_PORT and
// $NAME_ADDR (NAME defaults to TLSFRONT) and, once each handshake is done, appends a line
// "alpn=PROTO client=COMMON-NAME" to $WORK/NAME.log. With -alpn it requires
// one of those protocols; with -client-ca, a client certificate signed by it.
func cmdTLSFront(ts *testscript.TestScript, neg bool, args []string) {
	fs := flag.NewFlagSet("tlsfront", flag.ContinueOnError)
	name := fs.String("name", "TLSFRONT", "")
	alpn := fs.String("alpn", "", "")
	clientCA := fs.String("client-ca", "", "")
	ts.Check(fs.Parse(args))
	if neg || fs.NArg() != 1 {
		ts.Fatalf("usage: tlsfront [-name NAME] [-alpn PROTO,...] [-client-ca FILE] HOST:PORT")
	}
	conf := serverTLS(ts)
	if *alpn != "" {
		conf.NextProtos = strings.Split(*alpn, ",")
		conf.VerifyConnection = func(cs tls.ConnectionState) error {
			if cs.NegotiatedProtocol == "" {
				return errors.New("tlsfront: ALPN required")
			}
			return nil
		}
	}
	if *clientCA != "" {
		pem, err := os.ReadFile(ts.MkAbs(*clientCA))
		ts.Check(err)
		conf.ClientCAs = x509.NewCertPool()
		conf.ClientCAs.AppendCertsFromPEM(pem)
		conf.ClientAuth = tls.RequireAndVerifyClientCert
	}
	logf := scriptLog(ts, *name+".log")
	startProxy(ts, *name, proxytest.Options{Kind: "tls", TLS: conf, Target: fs.Arg(0), OnTLS: func(cs tls.ConnectionState) {
		client := ""
		if len(cs.PeerCertificates) > 0 {
			client = cs.PeerCertificates[0].Subject.CommonName
		}
		logf("alpn=%s client=%s", cs.NegotiatedProtocol, client)
	}})
}

// proxy [-name NAME] [-user USER:PASS] [-target HOST:PORT] socks5|http starts
// a SOCKS5 or HTTP CONNECT proxy (internal/proxytest) on a free 127.0.0.1
// port and sets $NAME_ADDR to its HOST:PORT and $NAME_PORT (NAME defaults
// to PROXY). It
// demands USER:PASS if given, and sends every tunnel to -target if given
// (so a script can name the broker broker.test); each tunnel it opens
// appends "tunnel ADDRESS-ASKED-FOR" to $WORK/NAME.log before relaying.
func cmdProxy(ts *testscript.TestScript, neg bool, args []string) {
	fs := flag.NewFlagSet("proxy", flag.ContinueOnError)
	name := fs.String("name", "PROXY", "")
	user := fs.String("user", "", "")
	target := fs.String("target", "", "")
	ts.Check(fs.Parse(args))
	if neg || fs.NArg() != 1 {
		ts.Fatalf("usage: proxy [-name NAME] [-user USER:PASS] [-target HOST:PORT] socks5|http")
	}
	logf := scriptLog(ts, *name+".log")
	o := proxytest.Options{Kind: fs.Arg(0), Target: *target, OnTunnel: func(asked string) { logf("tunnel %s", asked) }}
	o.User, o.Password, _ = strings.Cut(*user, ":")
	startProxy(ts, *name, o)
}

// startProxy starts a proxytest proxy for the script and sets envVar to its
// address (…_ADDR) or port (…_PORT).
// serverTLS is a TLS server configuration with the certificate gencerts
// wrote to $WORK/certs.
func serverTLS(ts *testscript.TestScript) *tls.Config {
	dir := ts.MkAbs("certs")
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, "server.pem"), filepath.Join(dir, "server-key.pem"))
	ts.Check(err)
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
}

// startProxy starts a proxytest proxy for the script and sets $NAME_ADDR
// (127.0.0.1:PORT) and $NAME_PORT.
func startProxy(ts *testscript.TestScript, name string, o proxytest.Options) {
	p, err := proxytest.New(o)
	ts.Check(err)
	ts.Defer(func() { p.Close() })
	ts.Setenv(name+"_ADDR", p.Addr)
	ts.Setenv(name+"_PORT", strconv.Itoa(p.Port))
}

// scriptLog creates $WORK/name and returns a function that appends a line to
// it, safe to call from several goroutines.
func scriptLog(ts *testscript.TestScript, name string) func(format string, args ...any) {
	f, err := os.Create(ts.MkAbs(name))
	ts.Check(err)
	ts.Defer(func() { f.Close() })
	var mu sync.Mutex
	return func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(f, format+"\n", args...)
	}
}
