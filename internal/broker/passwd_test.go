package broker

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"mqtk/internal/mosquittotest"
)

// Lines written by the real mosquitto_passwd 2.0.11 (-H sha512 for carol).
const (
	aliceSecret = `alice:$7$101$YB/TmLpsIXkcPAdn$kcdjeR0dTvuNMj5oaMUrf82rKSStVTH6hbXHz2kNfcd6SQbo+X5VUkkkqcErdMOocdzgPLgjP3AWI4yZf9xs9Q==`
	bobPW       = `bob:$7$101$9mzhJaTSxLw7228O$IZrCQU2HxgP4M4HHDA5DIhOiTKp1apq/Xr0KAvBTTNMlg7nIf83qmKdl6GunLBXAzzYejlf/N252g/gjzB14hA==`  // "p:w d"
	carolSHA512 = `carol:$6$tUaH0ipXumWFNCdN$TDC5Vcew58ifvqW7GGU4Bi5lDtKiDr1sX+hzrDDAHl8gFfhuRZkEypLZWQv5iA3MSIPyfi5PIJ6YtVoLAgFB5Q==`    // "h€llo w"
	daveUTF8    = `dave:$7$101$1HjZ7wxhPhWbMAvy$dqL5Bx/Ab9MiCtb45KvnByMm9AwUvCIny4UwoQIOo8zZOooKJ8gJxM3v/jCNo2aGziHEvPzlCua7catXmmBFSA==` // "h€llo w"
	// One iteration, and blanks around user and hash, which mosquitto trims.
	spaced = "  spaced  :  $7$1$DHEz3mLw6ehWivfc$+M+eITewz0621jQyTbqOgEb61l/EUPHu2OCz8CVRDJ0ZQRMYVQ/YDkzlhcvOtrHuEoTC95503KkRaSQLujDhJQ==  " // it1's hash, "pw"
)

func TestParsePasswords(t *testing.T) {
	file := strings.Join([]string{
		"# users of the test broker",
		aliceSecret,
		"",
		"   \t",
		bobPW + "\r", // CRLF
		carolSHA512,
		daveUTF8,
		spaced,
		"#no:tacomment",
	}, "\n")
	p, err := ParsePasswords("pw", []byte(file))
	if err != nil {
		t.Fatal(err)
	}
	if len(p.users) != 5 {
		t.Errorf("%d users, want 5", len(p.users))
	}
	for _, tc := range []struct {
		user, password string
		want           bool
	}{
		{"alice", "secret", true},
		{"alice", "Secret", false},
		{"alice", "secret ", false},
		{"alice", "", false},
		{"bob", "p:w d", true},
		{"carol", "h€llo w", true},
		{"carol", "h€llo", false},
		{"dave", "h€llo w", true},
		{"spaced", "pw", true},
		{"  spaced  ", "pw", false},
		{"nobody", "secret", false},
		{"#no", "tacomment", false},
	} {
		if got := p.Verify(tc.user, []byte(tc.password)); got != tc.want {
			t.Errorf("Verify(%q, %q) = %v, want %v", tc.user, tc.password, got, tc.want)
		}
	}
}

func TestParsePasswordsErrors(t *testing.T) {
	salt, sum := "YB/TmLpsIXkcPAdn", "kcdjeR0dTvuNMj5oaMUrf82rKSStVTH6hbXHz2kNfcd6SQbo+X5VUkkkqcErdMOocdzgPLgjP3AWI4yZf9xs9Q=="
	for _, tc := range []struct {
		file, want string
	}{
		{"# ok\nalice\n", "pw:2: no ':' between user name and password hash"},
		{" : $7$101$" + salt + "$" + sum, "pw:1: empty user name"},
		{aliceSecret + "\n\n" + aliceSecret, `pw:3: user "alice" is already listed on line 1`},
		{"alice:", `pw:1: user "alice": no password hash`},
		{"alice:secret", `pw:1: user "alice": not a $7$ or $6$ password hash`},
		{"alice:$7$101$" + salt, "three fields"},
		{"alice:$7$101$" + salt + "$" + sum + "$", "three fields"},
		{"alice:$7$x$" + salt + "$" + sum, `iteration count "x" is not a number`},
		{"alice:$7$-1$" + salt + "$" + sum, `iteration count "-1" is not a number`},
		{"alice:$7$0$" + salt + "$" + sum, "iteration count 0 is out of range"},
		{"alice:$7$99999999999$" + salt + "$" + sum, "out of range"},
		{"alice:$7$101$" + "l7hZhcwEkYynYHObQ3Xv2g==" + "$" + sum, "the salt is not 12 bytes"}, // 16 bytes: mosquitto refuses it too
		{"alice:$7$101$!!!$" + sum, "the salt is not 12 bytes"},
		{"alice:$7$101$" + salt + "$" + sum[:20], "the hash is not 64 bytes"},
		{"alice:$6$" + salt, "two fields"},
		{"alice:$5$" + salt + "$" + sum, "not a $7$ or $6$"},
	} {
		_, err := ParsePasswords("pw", []byte(tc.file))
		var pe *ParseError
		if !errors.As(err, &pe) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want a ParseError containing %q", tc.file, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), sum[:10]) {
			t.Errorf("%q: the error shows the hash: %v", tc.file, err)
		}
	}
}

func TestHashPassword(t *testing.T) {
	h1, err := HashPassword("correct horse")
	if err != nil {
		t.Fatal(err)
	}
	h2, _ := HashPassword("correct horse")
	if h1 == h2 {
		t.Error("two hashes of a password are equal: the salt is not random")
	}
	if !regexp.MustCompile(`^\$7\$101\$[A-Za-z0-9+/]{16}\$[A-Za-z0-9+/]{86}==$`).MatchString(h1) {
		t.Errorf("hash %q is not in mosquitto_passwd's form", h1)
	}
	p, err := ParsePasswords("pw", []byte("u:"+h1+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !p.Verify("u", []byte("correct horse")) || p.Verify("u", []byte("correct horse!")) {
		t.Error("the hash does not verify its own password only")
	}
}

func TestEditPasswordLines(t *testing.T) {
	for _, tc := range []struct {
		name, in, user, hash, want string
		existed                    bool
	}{
		{"append to empty", "", "u", "H", "u:H\n", false},
		{"append keeps others", "# c\na:1\n", "u", "H", "# c\na:1\nu:H\n", false},
		{"append after missing newline", "a:1", "u", "H", "a:1\nu:H\n", false},
		{"replace in place", "a:1\nu:old\nb:2\n", "u", "H", "a:1\nu:H\nb:2\n", true},
		{"replace spaced, drop duplicates", " u :old\r\na:1\nu:older\n", "u", "H", "u:H\r\na:1\n", true},
		{"comment is not a user", "#u:x\n", "u", "H", "#u:x\nu:H\n", false},
		{"prefix is not the user", "uu:1\n", "u", "H", "uu:1\nu:H\n", false},
		{"delete", "a:1\nu:old\nb:2", "u", "", "a:1\nb:2", true},
		{"delete missing", "a:1\n", "u", "", "a:1\n", false},
	} {
		var out []byte
		var existed bool
		if tc.hash == "" {
			out, existed = DeletePasswordLine([]byte(tc.in), tc.user)
		} else {
			out, existed = SetPasswordLine([]byte(tc.in), tc.user, tc.hash)
		}
		if string(out) != tc.want || existed != tc.existed {
			t.Errorf("%s: got %q, %v; want %q, %v", tc.name, out, existed, tc.want, tc.existed)
		}
	}
}

// TestMosquittoPasswdFiles parses what the installed mosquitto_passwd
// writes, in both of its formats.
func TestMosquittoPasswdFiles(t *testing.T) {
	bin, err := exec.LookPath("mosquitto_passwd")
	if err != nil {
		t.Skip("mosquitto_passwd is not installed")
	}
	path := filepath.Join(t.TempDir(), "pw")
	users := map[string]string{"pbkdf2": "pass word", "sha512": "ünïcode:colon", "other": "x"}
	for _, args := range [][]string{
		{"-b", "-c", path, "pbkdf2", users["pbkdf2"]},
		{"-H", "sha512", "-b", path, "sha512", users["sha512"]},
		{"-b", path, "other", users["other"]},
	} {
		if out, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
			t.Fatalf("mosquitto_passwd %v: %v: %s", args, err, out)
		}
	}
	p, err := LoadPasswords(path)
	if err != nil {
		t.Fatal(err)
	}
	for u, pw := range users {
		if !p.Verify(u, []byte(pw)) {
			t.Errorf("%s: password does not verify", u)
		}
		if p.Verify(u, []byte(pw+"x")) {
			t.Errorf("%s: a wrong password verifies", u)
		}
	}
}

// TestMosquittoAcceptsHashPassword starts the real mosquitto with a
// password file that HashPassword wrote, and connects with mosquitto_pub.
func TestMosquittoAcceptsHashPassword(t *testing.T) {
	dir := t.TempDir()
	h, err := HashPassword("s3cret pass")
	if err != nil {
		t.Fatal(err)
	}
	pw := filepath.Join(dir, "pw")
	if err := os.WriteFile(pw, []byte("# mqtk\nalice:"+h+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	mosquittotest.CheckLogin(t, pw, "alice", "s3cret pass")
}

func FuzzParsePasswd(f *testing.F) {
	for _, s := range []string{aliceSecret, carolSHA512, spaced, "# c\n\na:b\n", "a:$7$1$$", "a:$6$$", ":", "\n#\n:x", "a:$7$1$YB/TmLpsIXkcPAdn$" + strings.Repeat("A", 86) + "=="} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParsePasswords("fuzz", data)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) || pe.Line < 1 {
				t.Fatalf("error without a line: %v", err)
			}
			return
		}
		for u, h := range p.users {
			if h.iterations <= 1000 {
				p.Verify(u, []byte("x"))
			}
		}
		if p.unknown.iterations <= 1000 {
			p.Verify("not there", nil)
		}
	})
}

// TestUnknownUserHash: a user who is not in the file is checked against a
// hash of the kind most entries have, so that the time a refusal takes does
// not tell whether the user exists (a file of $6$ entries, or of $7$ with
// another iteration count than mqtk's own, answered sooner or later for an
// unknown user than for a known one).
func TestUnknownUserHash(t *testing.T) {
	salt, sum := strings.Repeat("A", 16), strings.Repeat("A", 86)+"=="
	for _, tc := range []struct {
		file       string
		pbkdf2     bool
		iterations int
	}{
		{"", true, PasswordIterations},
		{"a:$6$" + salt + "$" + sum + "\nb:$6$" + salt + "$" + sum + "\nc:$7$1000$" + salt + "$" + sum + "\n", false, 0},
		{"a:$7$1000$" + salt + "$" + sum + "\nb:$7$1000$" + salt + "$" + sum + "\nc:$7$101$" + salt + "$" + sum + "\n", true, 1000},
		{"a:$7$101$" + salt + "$" + sum + "\nb:$6$" + salt + "$" + sum + "\n", true, 101}, // a tie: the slower
		{"a:$7$101$" + salt + "$" + sum + "\nb:$7$5000$" + salt + "$" + sum + "\n", true, 5000},
	} {
		p, err := ParsePasswords("test", []byte(tc.file))
		if err != nil {
			t.Fatal(err)
		}
		if u, ok := p.hashFor("nobody"); ok || u.pbkdf2 != tc.pbkdf2 || u.iterations != tc.iterations || len(u.salt) != saltLen || len(u.sum) != hashLen {
			t.Errorf("%q: unknown user's hash pbkdf2=%v iterations=%d (salt %d, sum %d bytes), want pbkdf2=%v iterations=%d",
				tc.file, u.pbkdf2, u.iterations, len(u.salt), len(u.sum), tc.pbkdf2, tc.iterations)
		}
		if p.Verify("nobody", nil) {
			t.Errorf("%q: an unknown user with an empty password verified", tc.file)
		}
	}
}
