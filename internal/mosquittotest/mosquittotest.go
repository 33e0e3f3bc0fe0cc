// Package mosquittotest runs the real mosquitto broker for tests that
// check mqtk against it: on a free loopback port, with a generated config,
// stopped when the test ends.
package mosquittotest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Look finds one of mosquitto's programs; Debian puts the broker in /usr/sbin.
func Look(name string) (string, bool) {
	if p, err := exec.LookPath(name); err == nil {
		return p, true
	}
	p := filepath.Join("/usr/sbin", name)
	if _, err := os.Stat(p); err == nil {
		return p, true
	}
	return "", false
}

// Installed reports whether mosquitto and mosquitto_pub are both there.
func Installed() bool {
	_, broker := Look("mosquitto")
	_, pub := Look("mosquitto_pub")
	return broker && pub
}

// Start runs mosquitto with the config lines conf on a free 127.0.0.1 port
// and returns the port once it accepts connections. It skips the test if
// mosquitto is not installed.
func Start(t testing.TB, conf ...string) int {
	t.Helper()
	bin, ok := Look("mosquitto")
	if !ok {
		t.Skip("mosquitto is not installed")
	}
	for attempt := 0; ; attempt++ {
		port, log, err := run(t, bin, conf)
		if err == nil {
			return port
		}
		if attempt < 3 && strings.Contains(log, "Address already in use") {
			continue // another process took the free port first
		}
		t.Fatalf("mosquitto did not start: %v\n%s", err, log)
	}
}

// CheckLogin starts mosquitto with the password file pwFile and checks that
// user can publish with password and not with a wrong one. Without
// mosquitto installed it only logs that it did not check.
func CheckLogin(t testing.TB, pwFile, user, password string) {
	t.Helper()
	pub, ok := Look("mosquitto_pub")
	if !ok || !Installed() {
		t.Log("mosquitto or mosquitto_pub is not installed: not checked against mosquitto")
		return
	}
	port := Start(t, "allow_anonymous false", "password_file "+pwFile)
	for _, tc := range []struct {
		password string
		ok       bool
	}{{password, true}, {password + "x", false}} {
		out, err := exec.Command(pub, "-h", "127.0.0.1", "-p", strconv.Itoa(port), "-V", "5", "-q", "1",
			"-u", user, "-P", tc.password, "-t", "mqtk/test", "-m", "x").CombinedOutput()
		if (err == nil) != tc.ok {
			t.Errorf("mosquitto_pub with the %s password: %v: %s", map[bool]string{true: "right", false: "wrong"}[tc.ok], err, out)
		}
	}
}

func run(t testing.TB, bin string, conf []string) (port int, log string, err error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port = l.Addr().(*net.TCPAddr).Port
	l.Close()
	lines := append([]string{fmt.Sprintf("listener %d 127.0.0.1", port), "log_dest stderr", "log_type all"}, conf...)
	if os.Geteuid() == 0 {
		lines = append(lines, "user root") // else it drops to "mosquitto", who cannot read the test's files
	}
	cf := filepath.Join(t.TempDir(), "mosquitto.conf")
	if err := os.WriteFile(cf, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-c", cf)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	drained := make(chan struct{})
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-drained
		cmd.Wait()
	})
	// mosquitto says "running" once it listens; its log is the signal,
	// then a connection proves it.
	var b strings.Builder
	running := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		found := false
		for sc.Scan() {
			b.WriteString(sc.Text() + "\n")
			if !found && strings.Contains(sc.Text(), " running") {
				found = true
				running <- true
			}
		}
		if !found {
			running <- false
		}
		io.Copy(io.Discard, stderr)
		close(drained)
	}()
	select {
	case ok := <-running:
		if !ok {
			<-drained
			return 0, b.String(), errors.New("mosquitto exited")
		}
	case <-time.After(30 * time.Second): // a bound against hangs, not a synchronisation
		return 0, "", errors.New("mosquitto did not say it was running")
	}
	c, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return 0, "", err
	}
	c.Close()
	return port, "", nil
}
