package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"mqtk/internal/mqttc"
)

// brokerProc is a `mqtk broker` process started by a test.
type brokerProc struct {
	cmd    *exec.Cmd
	urls   []string
	stderr *bufio.Reader
	read   []string // the lines of stderr read so far
}

// startBroker runs `mqtk broker ARGS` and reads its startup lines: one
// "listening on URL (...)" per listener, n of them (with --log-format json,
// a record {"msg":"listening","url":URL,...}).
func startBroker(t *testing.T, n int, args ...string) *brokerProc {
	t.Helper()
	cmd := exec.Command("mqtk", append([]string{"broker"}, args...)...)
	pipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &brokerProc{cmd: cmd, stderr: bufio.NewReader(pipe)}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	for len(p.urls) < n {
		line, err := p.stderr.ReadString('\n')
		if err != nil {
			t.Fatalf("broker %v: %v (after %q)", args, err, p.urls)
		}
		p.read = append(p.read, line)
		var rec struct{ Msg, URL string }
		if rest, ok := strings.CutPrefix(line, "listening on "); ok {
			p.urls = append(p.urls, strings.Fields(rest)[0])
		} else if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "listening" {
			p.urls = append(p.urls, rec.URL)
		}
	}
	return p
}

// stop sends SIGTERM and returns the exit code and the rest of stderr.
func (p *brokerProc) stop(t *testing.T) (int, string) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	rest, _ := io.ReadAll(p.stderr)
	return waitExit(t, p.cmd), string(rest)
}

// mqtk runs the mqtk command and returns its exit code and output.
func mqtk(t *testing.T, args ...string) (int, string) {
	t.Helper()
	out, err := exec.Command("mqtk", args...).CombinedOutput()
	return exitCode(t, err), string(out)
}

func endpoint(t *testing.T, url string) mqttc.Endpoint {
	t.Helper()
	if path, ok := strings.CutPrefix(url, "unix://"); ok {
		return mqttc.UnixEndpoint(path)
	}
	u, err := mqttc.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	return u.Endpoint
}

// roundTrip subscribes and publishes through the broker at url and checks
// the message arrives.
func roundTrip(t *testing.T, url string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	got := make(chan string, 1)
	c, err := mqttc.Dial(ctx, mqttc.Config{Endpoint: endpoint(t, url), ClientID: "rt", CleanStart: true,
		OnMessage: func(m *mqttc.Message) { got <- string(m.Payload) }})
	if err != nil {
		t.Fatalf("%s: %v", url, err)
	}
	defer c.Disconnect(ctx)
	if _, err := c.Subscribe(ctx, []mqttc.Subscription{{Filter: "rt", QoS: 1}}, mqttc.SubscribeOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := c.Publish(ctx, &mqttc.Message{Topic: "rt", Payload: []byte("via " + url), QoS: 1}); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-got:
		if m != "via "+url {
			t.Errorf("%s: got %q", url, m)
		}
	case <-ctx.Done():
		t.Fatalf("%s: no message", url)
	}
}

// TestBrokerDefaults: loopback only, IPv4 and IPv6 on one port, anonymous
// allowed; --ws and --unix add listeners; SIGTERM exits 0.
func TestBrokerDefaults(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "mqtk.sock")
	p := startBroker(t, 4, "--port", "0", "--ws", "127.0.0.1:0", "--unix", sock)
	if !strings.HasPrefix(p.urls[0], "mqtt://127.0.0.1:") || !strings.HasPrefix(p.urls[1], "mqtt://[::1]:") {
		t.Fatalf("default listeners %v, want 127.0.0.1 and [::1]", p.urls)
	}
	if port := strings.TrimPrefix(p.urls[0], "mqtt://127.0.0.1:"); p.urls[1] != "mqtt://[::1]:"+port {
		t.Errorf("IPv6 listener %s is not on port %s", p.urls[1], port)
	}
	for _, u := range p.urls {
		roundTrip(t, u)
	}
	// Each startup line says what is exposed and how it is protected.
	wantLines := []string{
		"listening on " + p.urls[0] + " (loopback only; anonymous clients allowed)\n",
		"listening on " + p.urls[1] + " (loopback only; anonymous clients allowed)\n",
		"listening on " + p.urls[2] + " (loopback only; anonymous clients allowed)\n",
		"listening on " + p.urls[3] + " (this machine; anonymous clients allowed)\n",
	}
	if !slices.Equal(p.read, wantLines) {
		t.Errorf("startup lines:\n%q\nwant\n%q", p.read, wantLines)
	}
	if code, rest := p.stop(t); code != 0 {
		t.Errorf("exit %d after SIGTERM: %s", code, rest)
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Errorf("the Unix socket is left behind: %v", err)
	}
}

// TestBrokerRefusesExposure: a non-loopback listener needs a password file
// or --allow-anonymous.
func TestBrokerRefusesExposure(t *testing.T) {
	code, out := mqtk(t, "broker", "--listen", "0.0.0.0:0")
	if code != 2 || !strings.Contains(out, "not a loopback address") || !strings.Contains(out, "--password-file") {
		t.Errorf("exit %d: %s", code, out)
	}
	p := startBroker(t, 1, "--listen", "0.0.0.0:0", "--allow-anonymous")
	if !strings.HasPrefix(p.urls[0], "mqtt://0.0.0.0:") {
		t.Fatalf("listeners %v", p.urls)
	}
	if want := "listening on " + p.urls[0] + " (open to the network; anonymous clients allowed)\n"; p.read[len(p.read)-1] != want {
		t.Errorf("startup line %q, want %q", p.read[len(p.read)-1], want)
	}
	roundTrip(t, strings.Replace(p.urls[0], "0.0.0.0", "127.0.0.1", 1))
}

// TestBrokerConfigFile: settings from --config, command-line flags win,
// unknown settings are usage errors with file:line. Durations take bare
// seconds, as on the command line.
func TestBrokerConfigFile(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "broker.conf")
	sock := filepath.Join(dir, "s.sock")
	if err := os.WriteFile(conf, []byte("# test\nport 1\nunix "+sock+"\n  # indented\nmax-packet-size 100 # after a value\nsys-interval 30\t# after a tab\nwrite-timeout 2.5\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := startBroker(t, 3, "--config", conf, "--port", "0", "--connect-timeout", "5", "--queue-wait", "0.5")
	if p.urls[2] != "unix://"+sock {
		t.Fatalf("listeners %v", p.urls)
	}
	// max-packet-size came from the file: a larger message is refused before it is sent.
	if code, out := mqtk(t, "pub", "-L", p.urls[0], "-t", "t", "-m", strings.Repeat("x", 200), "-q", "1"); code != 2 {
		t.Errorf("oversized publish: exit %d: %s", code, out)
	}
	bad := filepath.Join(dir, "bad.conf")
	if err := os.WriteFile(bad, []byte("\nlisten-on 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out := mqtk(t, "broker", "--config", bad); code != 2 || !strings.Contains(out, "bad.conf:2: unknown setting \"listen-on\"") {
		t.Errorf("exit %d: %s", code, out)
	}
	// mosquitto.conf's spelling gets mqtk's name for the setting.
	if err := os.WriteFile(bad, []byte("allow_anonymous true\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out := mqtk(t, "broker", "--config", bad); code != 2 || !strings.Contains(out, "bad.conf:1: unknown setting \"allow_anonymous\" (mqtk's name for it is allow-anonymous)") {
		t.Errorf("exit %d: %s", code, out)
	}
}

// TestBrokerVerboseLog: -v logs connects, subscriptions and publishes as
// JSON, without payloads or passwords.
func TestBrokerVerboseLog(t *testing.T) {
	p := startBroker(t, 2, "--port", "0", "-v", "--log-format", "json")
	if code, out := mqtk(t, "pub", "-L", p.urls[0], "-t", "log/t", "-m", "SECRET-PAYLOAD", "-q", "1", "-i", "logger", "-u", "u", "-P", "SECRET-PW"); code != 0 {
		t.Fatalf("pub: exit %d: %s", code, out)
	}
	// Refused over MQTT 3.1.1: acknowledged and dropped, as by mosquitto.
	if code, out := mqtk(t, "pub", "-L", p.urls[0], "-V", "311", "-t", "$SYS/x", "-m", "SECRET-SYS", "-q", "1"); code != 0 {
		t.Errorf("pub -V 311 to $SYS: exit %d: %s", code, out)
	}
	// An AUTH packet with a reason a client may not send ends its
	// connection: the warning names the packet's type, not its data.
	badAuth(t, p.urls[0])
	// A keep-alive of 0 (none) is the client's right: no warning.
	if code, out := mqtk(t, "sub", "-L", p.urls[0], "-t", "log/k", "-k", "0", "-E"); code != 0 {
		t.Errorf("sub -k 0: exit %d: %s", code, out)
	}
	// SIGHUP, here with nothing to reload, is logged as JSON too.
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	for !strings.Contains(p.read[len(p.read)-1], "nothing to reload") {
		line, err := p.stderr.ReadString('\n')
		if err != nil {
			t.Fatalf("no line about SIGHUP: %v", err)
		}
		p.read = append(p.read, line)
	}
	_, rest := p.stop(t)
	rest = strings.Join(p.read, "") + rest // the whole log
	// Every line is a JSON object: the listeners' and the reload's too.
	for _, line := range strings.SplitAfter(strings.TrimSuffix(rest, "\n"), "\n") {
		if !json.Valid([]byte(line)) {
			t.Errorf("--log-format json printed a line that is not JSON: %q", line)
		}
	}
	for _, want := range []string{`"msg":"client connected"`, `"client":"logger"`, `"msg":"publish"`, `"topic":"log/t"`, `"bytes":14`} {
		if !strings.Contains(rest, want) {
			t.Errorf("log lacks %s:\n%s", want, rest)
		}
	}
	if strings.Contains(rest, "SECRET") {
		t.Errorf("log shows a payload or password:\n%s", rest)
	}
	// The refused AUTH's warning: its type, not the packet (whose data
	// slog would print as bytes or base64).
	if !strings.Contains(rest, `"msg":"error processing packet"`) || !strings.Contains(rest, `"type":"Auth"`) || strings.Contains(rest, `"pk":`) {
		t.Errorf("the warning for the refused AUTH should name its type, not hold the packet:\n%s", rest)
	}
	for _, noise := range []string{"added hook", "stopping hook", "attached listener", "mochi mqtt", "keepalive is below"} {
		if strings.Contains(rest, noise) {
			t.Errorf("-v logs mochi's own %q lines:\n%s", noise, rest)
		}
	}
}

// TestBrokerMaxConnections: clients beyond --max-connections are refused
// ("server busy", exit 4).
func TestBrokerMaxConnections(t *testing.T) {
	p := startBroker(t, 2, "--port", "0", "--max-connections", "1")
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	first, err := mqttc.Dial(ctx, mqttc.Config{Endpoint: endpoint(t, p.urls[0]), ClientID: "first", CleanStart: true})
	if err != nil {
		t.Fatal(err)
	}
	defer first.Disconnect(ctx)
	if code, out := mqtk(t, "pub", "-L", p.urls[0], "-t", "t", "-m", "x"); code != 4 || !strings.Contains(out, "server busy") {
		t.Errorf("second client: exit %d: %s", code, out)
	}
}

// TestBrokerTLSClientCA: --tls-client-ca requires a client certificate.
func TestBrokerTLSClientCA(t *testing.T) {
	dir := t.TempDir()
	certs := writeTestCerts(t, dir)
	p := startBroker(t, 3, "--port", "0", "--tls-listen", "127.0.0.1:0", "--tls-cert", certs.serverCert, "--tls-key", certs.serverKey, "--tls-client-ca", certs.ca)
	tlsURL := p.urls[2]
	if !strings.HasPrefix(tlsURL, "mqtts://127.0.0.1:") {
		t.Fatalf("listeners %v", p.urls)
	}
	if want := "(loopback only; client certificate required, anonymous clients allowed)\n"; !strings.HasSuffix(p.read[2], want) {
		t.Errorf("the TLS listener is announced as %q, want it to end %q", p.read[2], want)
	}
	if code, out := mqtk(t, "pub", "-L", tlsURL, "--cafile", certs.ca, "-t", "t", "-m", "x"); code != 3 {
		t.Errorf("without a client certificate: exit %d: %s", code, out)
	}
	if code, out := mqtk(t, "pub", "-L", tlsURL, "--cafile", certs.ca, "--cert", certs.clientCert, "--key", certs.clientKey, "-t", "t", "-m", "x", "-q", "1"); code != 0 {
		t.Errorf("with a client certificate: exit %d: %s", code, out)
	}
}

// TestBrokerSys: $SYS/broker/... topics are there (retained, refreshed every
// --sys-interval), and # does not match them.
func TestBrokerSys(t *testing.T) {
	p := startBroker(t, 2, "--port", "0", "--sys-interval", "1s")
	code, out := mqtk(t, "sub", "-L", p.urls[0], "-t", "$SYS/broker/#", "--retained-only", "--idle", "500ms", "-v")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, out)
	}
	for _, topic := range []string{"version", "uptime", "clients/connected", "messages/received", "messages/dropped", "retained", "subscriptions"} {
		if !strings.Contains(out, "$SYS/broker/"+topic+" ") {
			t.Errorf("no $SYS/broker/%s in:\n%s", topic, out)
		}
	}
	// The version is mqtk's (as `mqtk version` prints it), then mochi's.
	if _, v := mqtk(t, "version"); !strings.Contains(out, "$SYS/broker/version "+strings.TrimSpace(v)+", mochi-mqtt 2.") {
		t.Errorf("$SYS/broker/version is not %q and mochi's:\n%s", strings.TrimSpace(v), out)
	}
	// Published again every --sys-interval: after the retained copy a
	// subscription gets at once, a live one (its retain flag clear).
	if code, out := mqtk(t, "sub", "-L", p.urls[0], "-t", "$SYS/broker/uptime", "-C", "2", "-W", "60", "-F", "%r %t"); code != 0 || out != "1 $SYS/broker/uptime\n0 $SYS/broker/uptime\n" {
		t.Errorf("$SYS/broker/uptime, two messages: exit %d:\n%s", code, out)
	}
	if code, out := mqtk(t, "sub", "-L", p.urls[0], "-t", "#", "--retained-only", "--idle", "300ms", "-v"); code != 0 || strings.Contains(out, "$SYS") {
		t.Errorf("# matched $SYS topics (exit %d):\n%s", code, out)
	}

	// --sys-interval 0: no $SYS topics at all, as mosquitto's sys_interval 0.
	none := startBroker(t, 2, "--port", "0", "--sys-interval", "0")
	if code, out := mqtk(t, "sub", "-L", none.urls[0], "-t", "$SYS/#", "--retained-only", "--idle", "300ms", "-v"); code != 0 || out != "" {
		t.Errorf("--sys-interval 0: exit %d, $SYS topics:\n%s", code, out)
	}
}

// TestBrokerPasswordFileReload: `mqtk broker passwd` writes the file,
// --password-file enforces it, and SIGHUP reads a changed file without
// restarting, disconnecting the clients of a user whose password changed.
func TestBrokerPasswordFileReload(t *testing.T) {
	dir := t.TempDir()
	passwd := filepath.Join(dir, "passwd")
	setPassword := func(pw string) {
		t.Helper()
		cmd := exec.Command("mqtk", "broker", "passwd", "--password-stdin", passwd, "alice")
		cmd.Stdin = strings.NewReader(pw + "\n")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("broker passwd: %v: %s", err, out)
		}
	}
	setPassword("first")
	acl := filepath.Join(dir, "acl")
	if err := os.WriteFile(acl, []byte("user alice\ntopic readwrite home/#\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := startBroker(t, 2, "--port", "0", "--password-file", passwd, "--acl-file", acl)
	if want := "listening on " + p.urls[0] + " (loopback only; password file " + passwd + ", anonymous clients refused, ACL file " + acl + ")\n"; !slices.Contains(p.read, want) {
		t.Errorf("startup lines %q, want %q among them", p.read, want)
	}
	pub := func(pw, topic string) (int, string) {
		return mqtk(t, "pub", "-L", p.urls[0], "-u", "alice", "-P", pw, "-t", topic, "-m", "x", "-q", "1")
	}
	if code, out := pub("first", "home/t"); code != 0 {
		t.Fatalf("right password: exit %d: %s", code, out)
	}
	if code, out := pub("first", "elsewhere"); code != 5 || !strings.Contains(out, "not authorized") {
		t.Errorf("ACL-denied topic: exit %d: %s", code, out)
	}
	if code, out := mqtk(t, "pub", "-L", p.urls[0], "-t", "home/t", "-m", "x"); code != 4 {
		t.Errorf("anonymous: exit %d: %s", code, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	stay, err := mqttc.Dial(ctx, mqttc.Config{Endpoint: endpoint(t, p.urls[0]), ClientID: "alice-1", CleanStart: true,
		Username: "alice", HasUsername: true, Password: "first", HasPassword: true})
	if err != nil {
		t.Fatal(err)
	}
	setPassword("second")
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	for {
		line, err := p.stderr.ReadString('\n')
		if err != nil {
			t.Fatalf("no reload line: %v", err)
		}
		if strings.HasPrefix(line, "reloaded") {
			if want := "reloaded the password file and the ACL file; disconnected 1 client whose user was removed or given a new password\n"; line != want {
				t.Errorf("reload line %q, want %q", line, want)
			}
			break
		}
	}
	select {
	case <-stay.Done():
		var de *mqttc.DisconnectError
		if !errors.As(stay.Err(), &de) || de.Code != 0x87 {
			t.Errorf("alice's connection with the old password ended with %v, want DISCONNECT not authorized", stay.Err())
		}
	case <-ctx.Done():
		t.Error("alice's connection with the old password is still open after the reload")
	}
	if code, out := pub("first", "home/t"); code != 4 || !strings.Contains(out, "bad user name or password") {
		t.Errorf("old password after reload: exit %d: %s", code, out)
	}
	if code, out := pub("second", "home/t"); code != 0 {
		t.Errorf("new password after reload: exit %d: %s", code, out)
	}
}

// TestBrokerUsageErrors: settings the broker cannot start with exit 2 with
// one line naming the flag (or file) at fault, before anything listens.
func TestBrokerUsageErrors(t *testing.T) {
	dir := t.TempDir()
	badACL := filepath.Join(dir, "acl")
	if err := os.WriteFile(badACL, []byte("topic read\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--listen", "127.0.0.1:99999"}, `--listen "127.0.0.1:99999": port "99999": use 0 to 65535`},
		{[]string{"--ws", "localhost"}, `--ws "localhost": use HOST:PORT`},
		{[]string{"--max-queued", "-5"}, "--max-queued -5: use 0"},
		{[]string{"--max-connections", "-1"}, "--max-connections -1: use 0"},
		{[]string{"--max-keepalive", "70000"}, "--max-keepalive 70000: use 0 to 65535"},
		{[]string{"--max-inflight", "65536"}, "--max-inflight 65536: use 0 to 65535"},
		{[]string{"--max-queued", "2147483648"}, "--max-queued 2147483648: use 0 to 2147483647"},
		{[]string{"--max-packet-size", "4294967297"}, "--max-packet-size 4294967297: use 0 to 268435460"},
		{[]string{"--max-packet-size", "10"}, "--max-packet-size 10: no client could connect"},
		{[]string{"--sys-interval", "0.5"}, "--sys-interval 500ms: use whole seconds (0: no $SYS topics)"},
		{[]string{"--password-file", filepath.Join(dir, "none")}, "password file: open "},
		{[]string{"--acl-file", badACL}, "ACL file: " + badACL + ":1:"},
	} {
		// --port 0 first: should a check fail to refuse, the broker must
		// not take the well-known port (tc.args may override it).
		code, out := mqtk(t, append([]string{"broker", "--port", "0"}, tc.args...)...)
		if first, _, _ := strings.Cut(out, "\n"); code != 2 || !strings.Contains(first, tc.want) || strings.Contains(out, "listening on") {
			t.Errorf("broker %v: exit %d: %s; want exit 2 and %q", tc.args, code, out, tc.want)
		}
	}
}

// TestBrokerFailsInJSON: with --log-format json a broker that cannot start
// says why in a JSON record, as the rest of its log, with the exit code of
// the failure: a bad file (2), a port in use (1).
func TestBrokerFailsInJSON(t *testing.T) {
	dir := t.TempDir()
	badACL := filepath.Join(dir, "acl")
	if err := os.WriteFile(badACL, []byte("topic read\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--port", "0", "--acl-file", badACL}, 2, "ACL file: " + badACL + ":1:"},
		{[]string{"--listen", taken.Addr().String()}, 1, "address already in use"},
	} {
		code, out := mqtk(t, append([]string{"broker", "--log-format", "json"}, tc.args...)...)
		var rec struct{ Level, Msg, Error string }
		if err := json.Unmarshal([]byte(out), &rec); err != nil || strings.Count(out, "\n") != 1 {
			t.Errorf("broker %v: stderr %q, want one JSON record (%v)", tc.args, out, err)
			continue
		}
		if code != tc.code || rec.Level != "ERROR" || rec.Msg != "cannot start" || !strings.Contains(rec.Error, tc.want) {
			t.Errorf("broker %v: exit %d, record %+v; want exit %d, an ERROR record \"cannot start\" with %q", tc.args, code, rec, tc.code, tc.want)
		}
	}
}

// TestBrokerOutOfDescriptors: a broker that cannot accept connections for
// lack of file descriptors says so, instead of leaving clients waiting
// with nothing in its log.
func TestBrokerOutOfDescriptors(t *testing.T) {
	cmd := exec.Command("sh", "-c", "ulimit -n 32 && exec mqtk broker --port 0")
	pipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	stderr := bufio.NewReader(pipe)
	line, err := stderr.ReadString('\n')
	addr, ok := strings.CutPrefix(strings.Fields(line + " x")[2], "mqtt://")
	if err != nil || !ok {
		t.Fatalf("first line %q: %v", line, err)
	}
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	found := make(chan string, 1)
	go func() {
		for {
			line, err := stderr.ReadString('\n')
			if err != nil {
				return
			}
			if strings.Contains(line, "out of file descriptors") {
				found <- line
				return
			}
		}
	}()
	for range 64 { // more than the broker has descriptors for
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	select {
	case line := <-found:
		if !strings.Contains(line, "ulimit -n") {
			t.Errorf("warning %q names no remedy", line)
		}
	case <-time.After(waitLimit):
		t.Fatal("no warning about running out of file descriptors")
	}
}

// badAuth connects to url (mqtt://host:port) with MQTT 5 and sends an AUTH
// packet with reason code 0x80, which a client may not send
// [MQTT-3.15.2-1], and authentication data that must not reach the log;
// it returns once the broker has closed the connection.
func badAuth(t *testing.T, url string) {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(url, "mqtt://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second)) // a bound against a hang only
	connect := []byte{0x10, 16, 0, 4, 'M', 'Q', 'T', 'T', 5, 0x02, 0, 60, 0, 0, 3, 'r', 'a', 'w'}
	props := append([]byte{0x15, 0, 4, 'm', 'e', 't', 'h', 0x16, 0, 11}, "SECRET-AUTH"...)
	auth := append([]byte{0xF0, byte(2 + len(props)), 0x80, byte(len(props))}, props...)
	if _, err := c.Write(connect); err != nil {
		t.Fatal(err)
	}
	hdr := make([]byte, 2)
	if _, err := io.ReadFull(c, hdr); err != nil || hdr[0] != 0x20 {
		t.Fatalf("no CONNACK: % x, %v", hdr, err)
	}
	if _, err := io.ReadFull(c, make([]byte, hdr[1])); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(auth); err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(io.Discard, c); err != nil { // until the broker closes it
		t.Fatalf("the broker did not close the connection: %v", err)
	}
}
