package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"mqtk/internal/broker"
	"mqtk/internal/mosquittotest"
)

// runPasswd runs `broker passwd` with args as cobra would.
func runPasswd(t *testing.T, a *App, args ...string) error {
	t.Helper()
	cmd := newBrokerPasswdCmd(a)
	cmd.SetArgs(args)
	cmd.SilenceErrors, cmd.SilenceUsage = true, true
	cmd.SetOut(io.Discard)
	cmd.SetErr(io.Discard)
	return cmd.Execute()
}

func checkPassword(t *testing.T, path, user, password string) {
	t.Helper()
	p, err := broker.LoadPasswords(path)
	if err != nil {
		t.Fatal(err)
	}
	if !p.Verify(user, []byte(password)) {
		t.Errorf("%s: the password of %q does not verify", path, user)
	}
}

var entry = regexp.MustCompile(`^\$7\$101\$[A-Za-z0-9+/]{16}\$[A-Za-z0-9+/]{86}==$`)

func TestBrokerPasswdCreates(t *testing.T) {
	path := filepath.Join(t.TempDir(), "passwd")
	a, stdout, stderr := testApp("s3cret pass\nignored second line\n", nil)
	if err := runPasswd(t, a, "--password-stdin", path, "alice"); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	data, _ := os.ReadFile(path)
	user, hash, _ := strings.Cut(strings.TrimSuffix(string(data), "\n"), ":")
	if user != "alice" || !entry.MatchString(hash) || !strings.HasSuffix(string(data), "\n") || strings.Count(string(data), "\n") != 1 {
		t.Errorf("file %q", data)
	}
	checkPassword(t, path, "alice", "s3cret pass")
	if stdout.Len() != 0 || stderr.String() != fmt.Sprintf("added user \"alice\" to %s\n", path) {
		t.Errorf("stdout %q, stderr %q", stdout, stderr)
	}
	if strings.Contains(string(data)+stderr.String(), "s3cret") {
		t.Error("the password is in the file or the output")
	}
	// The password from a file without a final newline, as printf '%s' writes.
	a, _, _ = testApp("no newline", nil)
	if err := runPasswd(t, a, "--password-stdin", path, "bob"); err != nil {
		t.Fatal(err)
	}
	checkPassword(t, path, "bob", "no newline")
	mosquittotest.CheckLogin(t, path, "bob", "no newline")
}

func TestBrokerPasswdKeepsOtherLines(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "passwd")
	const carol = "carol:$6$tUaH0ipXumWFNCdN$TDC5Vcew58ifvqW7GGU4Bi5lDtKiDr1sX+hzrDDAHl8gFfhuRZkEypLZWQv5iA3MSIPyfi5PIJ6YtVoLAgFB5Q=="
	before := "# users\nbob:$7$101$9mzhJaTSxLw7228O$IZrCQU2HxgP4M4HHDA5DIhOiTKp1apq/Xr0KAvBTTNMlg7nIf83qmKdl6GunLBXAzzYejlf/N252g/gjzB14hA==\n" +
		"alice:old\n\n" + carol + "\n"
	if err := os.WriteFile(path, []byte(before), 0o640); err != nil {
		t.Fatal(err)
	}
	// Through a symlink: the link stays, its target is updated.
	link := filepath.Join(dir, "link")
	if err := os.Symlink("passwd", link); err != nil {
		t.Fatal(err)
	}
	a, _, stderr := testApp("new\n", nil)
	if err := runPasswd(t, a, "--password-stdin", link, "alice"); err != nil {
		t.Fatal(err)
	}
	if stderr.String() != fmt.Sprintf("changed the password of \"alice\" in %s\n", link) {
		t.Errorf("stderr %q", stderr)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("the symlink was replaced: %v", err)
	}
	after, _ := os.ReadFile(path)
	lines := strings.Split(string(after), "\n")
	wantLines := strings.Split(before, "\n")
	if len(lines) != len(wantLines) {
		t.Fatalf("file %q", after)
	}
	for i := range lines {
		if i == 2 {
			if !strings.HasPrefix(lines[i], "alice:$7$") {
				t.Errorf("line 3 %q, want alice's new hash", lines[i])
			}
		} else if lines[i] != wantLines[i] {
			t.Errorf("line %d changed: %q, want %q", i+1, lines[i], wantLines[i])
		}
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want 0640 kept", fi.Mode().Perm())
	}
	checkPassword(t, path, "alice", "new")
	checkPassword(t, path, "bob", "p:w d")
	checkPassword(t, path, "carol", "h€llo w")
	if entries, _ := os.ReadDir(dir); len(entries) != 2 {
		t.Errorf("a temporary file was left: %v", entries)
	}

	a, _, stderr = testApp("", nil)
	if err := runPasswd(t, a, "-D", path, "bob"); err != nil {
		t.Fatal(err)
	}
	after, _ = os.ReadFile(path)
	if strings.Contains(string(after), "bob:") || !strings.HasPrefix(string(after), "# users\nalice:$7$") || stderr.String() != fmt.Sprintf("deleted user \"bob\" from %s\n", path) {
		t.Errorf("after -D bob: file %q, stderr %q", after, stderr)
	}
	a, _, _ = testApp("", nil)
	if err := runPasswd(t, a, "--delete", path, "bob"); err == nil || exitCode(err) != ExitError || !strings.Contains(err.Error(), `has no user "bob"`) {
		t.Errorf("deleting a missing user: %v", err)
	}
}

func TestBrokerPasswdPrompt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "passwd")
	for _, tc := range []struct {
		answers []string
		want    string // error
	}{
		{[]string{"one", "two"}, "the passwords do not match"},
		{[]string{""}, "the password is empty"},
		{[]string{"right", "right"}, ""},
	} {
		a, _, stderr := testApp("", nil)
		n := 0
		a.IO.SetTTY(true, func() ([]byte, error) { n++; return []byte(tc.answers[n-1]), nil })
		err := runPasswd(t, a, path, "alice")
		if tc.want == "" {
			if err != nil {
				t.Fatal(err)
			}
			checkPassword(t, path, "alice", "right")
		} else if err == nil || err.Error() != tc.want {
			t.Errorf("answers %q: error %v, want %q", tc.answers, err, tc.want)
		}
		if n != len(tc.answers) || !strings.HasPrefix(stderr.String(), "Password: \n") {
			t.Errorf("answers %q: prompted %d times, stderr %q", tc.answers, n, stderr)
		}
		if len(tc.answers) == 2 && !strings.Contains(stderr.String(), "Reenter password: \n") {
			t.Errorf("no second prompt: %q", stderr)
		}
	}
}

func TestBrokerPasswdUsageErrors(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "passwd")
	for _, tc := range []struct {
		stdin string
		args  []string
		want  string
	}{
		{"", []string{path}, "give FILE and USER (got 1 arguments)"},
		{"", []string{path, "alice"}, "stdin is not a terminal"},
		{"\n", []string{"--password-stdin", path, "alice"}, "the first line of stdin is empty"},
		{"", []string{"--password-stdin", path, "alice"}, "the first line of stdin is empty"},
		{strings.Repeat("x", 70000), []string{"--password-stdin", path, "alice"}, "longer than MQTT's limit"},
		{"pw\n", []string{"--password-stdin", path, "a:b"}, "contains ':'"},
		{"pw\n", []string{"--password-stdin", path, ""}, "the user name is empty"},
		{"pw\n", []string{"--password-stdin", path, " alice"}, "begins or ends with a blank"},
		{"pw\n", []string{"--password-stdin", path, "#alice"}, "begins with '#'"},
		{"pw\n", []string{"--password-stdin", path, "al\nice"}, "control character"},
		{"pw\n", []string{"--password-stdin", path, "\xff"}, "not valid UTF-8"},
		{"pw\n", []string{"--password-stdin", "-D", path, "alice"}, "conflict"},
		{"", []string{"-D", filepath.Join(dir, "missing"), "alice"}, "no such file"},
		{"pw\n", []string{"--password-stdin", dir, "alice"}, "is a directory"},
		{"", []string{"-c", "-D", path, "alice"}, "conflict"},
		{"", []string{"-b", path, "alice", "s3cret"}, "--password-stdin FILE USER"},
		{"", []string{"-c", "-b", path, "alice", "s3cret"}, "is not supported"},
	} {
		a, _, _ := testApp(tc.stdin, nil)
		err := runPasswd(t, a, tc.args...)
		var ue *UsageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want a usage error containing %q", tc.args, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%q: the password is in the error: %v", tc.args, err)
		}
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a failed command created the file: %v", err)
	}
}

// -c starts the file afresh, as mosquitto_passwd -c does, keeping its mode;
// a mistake (here an empty password) leaves the old file as it was.
func TestBrokerPasswdCreateReplaces(t *testing.T) {
	path := filepath.Join(t.TempDir(), "passwd")
	const before = "# users\nbob:$7$101$9mzhJaTSxLw7228O$IZrCQU2HxgP4M4HHDA5DIhOiTKp1apq/Xr0KAvBTTNMlg7nIf83qmKdl6GunLBXAzzYejlf/N252g/gjzB14hA==\n"
	if err := os.WriteFile(path, []byte(before), 0o640); err != nil {
		t.Fatal(err)
	}
	a, _, _ := testApp("\n", nil)
	if err := runPasswd(t, a, "-c", "--password-stdin", path, "alice"); err == nil {
		t.Fatal("an empty password was accepted")
	}
	if data, _ := os.ReadFile(path); string(data) != before {
		t.Fatalf("a refused -c changed the file: %q", data)
	}
	a, _, stderr := testApp("pw\n", nil)
	if err := runPasswd(t, a, "-c", "--password-stdin", path, "alice"); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	user, hash, _ := strings.Cut(strings.TrimSuffix(string(data), "\n"), ":")
	if user != "alice" || !entry.MatchString(hash) || strings.Count(string(data), "\n") != 1 {
		t.Errorf("file after -c: %q", data)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o640 {
		t.Errorf("mode after -c: %v %v, want 0640 kept", fi.Mode().Perm(), err)
	}
	if want := fmt.Sprintf("wrote %s with user \"alice\" alone\n", path); stderr.String() != want {
		t.Errorf("stderr %q, want %q", stderr, want)
	}
	mosquittotest.CheckLogin(t, path, "alice", "pw")
}
