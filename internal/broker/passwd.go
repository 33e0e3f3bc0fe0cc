package broker

import (
	"bytes"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
)

// A password file is what mosquitto_passwd writes: one "user:hash" line per
// user, where hash is
//
//	$7$ITERATIONS$SALT$HASH   PBKDF2-HMAC-SHA512 (mosquitto 2.x)
//	$6$SALT$HASH              SHA-512 of password then salt (mosquitto 1.x)
//
// with SALT (12 bytes) and HASH (64 bytes) in padded standard base64.
// mosquitto 2.0.11 is the reference: it trims blanks around the user name
// and the hash, treats a line whose first byte is '#' as a comment, and
// accepts no other salt or hash length.

// PasswordIterations is the PBKDF2 iteration count HashPassword uses:
// mosquitto_passwd's own, so that a connect costs the same on either broker.
const PasswordIterations = 101

const (
	saltLen = 12
	hashLen = sha512.Size
)

// blanks are what C's isspace accepts, which mosquitto trims.
const blanks = " \t\n\v\f\r"

// ParseError is a line of a password or ACL file that cannot be used.
type ParseError struct {
	File string
	Line int
	Err  error
}

func (e *ParseError) Error() string { return fmt.Sprintf("%s:%d: %v", e.File, e.Line, e.Err) }
func (e *ParseError) Unwrap() error { return e.Err }

// Passwords are the users of a password file and their hashed passwords.
type Passwords struct {
	users map[string]passwordHash
	// unknown is hashed for a user not in the file: the kind of hash
	// (and iteration count) most of the file's entries have.
	unknown passwordHash
}

type passwordHash struct {
	pbkdf2     bool // $7$; otherwise $6$
	iterations int
	salt, sum  []byte
}

// changed lists the users of p whose entry in q is gone or different (a
// new password, or the same one hashed again).
func (p *Passwords) changed(q *Passwords) map[string]bool {
	out := map[string]bool{}
	for user, h := range p.users {
		n, ok := q.users[user]
		if !ok || n.pbkdf2 != h.pbkdf2 || n.iterations != h.iterations || !bytes.Equal(n.salt, h.salt) || !bytes.Equal(n.sum, h.sum) {
			out[user] = true
		}
	}
	return out
}

// LoadPasswords reads and parses a mosquitto_passwd file.
func LoadPasswords(path string) (*Passwords, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParsePasswords(path, data)
}

// ParsePasswords parses the contents of a password file; name is used in
// errors, which say file:line. Blank lines and lines starting with '#' are
// skipped; any other line that mosquitto would skip with a warning (no
// colon, no user name, a hash it cannot decode) is an error here, and so is
// a user listed twice.
func ParsePasswords(name string, data []byte) (*Passwords, error) {
	p := &Passwords{users: map[string]passwordHash{}}
	seen := map[string]int{}
	for i, line := range strings.Split(string(data), "\n") {
		n := i + 1
		if strings.Trim(line, blanks) == "" || line[0] == '#' {
			continue
		}
		fail := func(format string, args ...any) error {
			return &ParseError{File: name, Line: n, Err: fmt.Errorf(format, args...)}
		}
		user, hash, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fail("no ':' between user name and password hash")
		}
		user, hash = strings.Trim(user, blanks), strings.Trim(hash, blanks)
		if user == "" {
			return nil, fail("empty user name")
		}
		if first, dup := seen[user]; dup {
			return nil, fail("user %q is already listed on line %d", user, first)
		}
		h, err := parsePasswordHash(hash)
		if err != nil {
			return nil, fail("user %q: %v", user, err)
		}
		seen[user] = n
		p.users[user] = h
	}
	p.unknown = commonHash(p.users)
	return p, nil
}

// commonHash returns a hash of the kind most of users' entries have (a tie
// goes to the slower), with a zero salt and sum: hashing a password with it
// for a user who is not there takes about as long as for one who is, so the
// time of a refusal does not tell whether the user exists. noSuchUser if
// users is empty.
func commonHash(users map[string]passwordHash) passwordHash {
	if len(users) == 0 {
		return noSuchUser
	}
	// The iteration count is the kind: 0 for $6$, 1 or more for $7$.
	count := map[int]int{}
	best := -1
	for _, h := range users {
		n := h.iterations
		count[n]++
		if count[n] > count[best] || count[n] == count[best] && n > best {
			best = n
		}
	}
	return passwordHash{pbkdf2: best > 0, iterations: best, salt: make([]byte, saltLen), sum: make([]byte, hashLen)}
}

func parsePasswordHash(s string) (passwordHash, error) {
	var h passwordHash
	var fields []string
	switch {
	case strings.HasPrefix(s, "$7$"):
		h.pbkdf2 = true
		fields = strings.Split(s[3:], "$")
		if len(fields) != 3 {
			return h, errors.New("a $7$ hash has three fields: $7$ITERATIONS$SALT$HASH")
		}
		it := fields[0]
		if it == "" || strings.Trim(it, "0123456789") != "" {
			return h, fmt.Errorf("iteration count %q is not a number", it)
		}
		n, err := strconv.Atoi(it)
		if err != nil || n < 1 || n > math.MaxInt32 {
			return h, fmt.Errorf("iteration count %s is out of range", it)
		}
		h.iterations = n
		fields = fields[1:]
	case strings.HasPrefix(s, "$6$"):
		fields = strings.Split(s[3:], "$")
		if len(fields) != 2 {
			return h, errors.New("a $6$ hash has two fields: $6$SALT$HASH")
		}
	case s == "":
		return h, errors.New("no password hash")
	default:
		return h, errors.New("not a $7$ or $6$ password hash (plain-text passwords are not accepted: set them with mqtk broker passwd or mosquitto_passwd)")
	}
	var err error
	if h.salt, err = base64.StdEncoding.DecodeString(fields[0]); err != nil || len(h.salt) != saltLen {
		return h, fmt.Errorf("the salt is not %d bytes in base64", saltLen)
	}
	if h.sum, err = base64.StdEncoding.DecodeString(fields[1]); err != nil || len(h.sum) != hashLen {
		return h, fmt.Errorf("the hash is not %d bytes in base64", hashLen)
	}
	return h, nil
}

func (h passwordHash) compute(password []byte) []byte {
	if !h.pbkdf2 {
		d := sha512.New()
		d.Write(password)
		d.Write(h.salt)
		return d.Sum(nil)
	}
	sum, err := pbkdf2.Key(sha512.New, string(password), h.salt, h.iterations, hashLen)
	if err != nil {
		return nil // never equal to a stored hash
	}
	return sum
}

// noSuchUser is hashed for an unknown user when the file has no entries.
var noSuchUser = passwordHash{pbkdf2: true, iterations: PasswordIterations, salt: make([]byte, saltLen), sum: make([]byte, hashLen)}

// Verify reports whether password is user's. The hash comparison takes
// constant time.
func (p *Passwords) Verify(user string, password []byte) bool {
	h, ok := p.hashFor(user)
	match := subtle.ConstantTimeCompare(h.compute(password), h.sum) == 1
	return ok && match
}

// hashFor returns user's hash, and whether user is in the file; for a user
// who is not, the hash of the kind most entries have (see commonHash).
func (p *Passwords) hashFor(user string) (passwordHash, bool) {
	if h, ok := p.users[user]; ok {
		return h, true
	}
	return p.unknown, false
}

// HashPassword returns a "$7$" PBKDF2-SHA512 hash of password with a fresh
// random salt, as mosquitto_passwd 2.x writes it.
func HashPassword(password string) (string, error) {
	salt := make([]byte, saltLen)
	rand.Read(salt)
	sum, err := pbkdf2.Key(sha512.New, password, salt, PasswordIterations, hashLen)
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	enc := base64.StdEncoding
	return fmt.Sprintf("$7$%d$%s$%s", PasswordIterations, enc.EncodeToString(salt), enc.EncodeToString(sum)), nil
}

// SetPasswordLine returns the password file data with user's entry set to
// hash: the first line for user is replaced and any later ones removed, or
// a line is appended. Every other line is kept as it is, in order.
func SetPasswordLine(data []byte, user, hash string) (out []byte, existed bool) {
	return editPasswordLines(data, user, user+":"+hash)
}

// DeletePasswordLine returns the password file data without user's lines.
func DeletePasswordLine(data []byte, user string) (out []byte, existed bool) {
	return editPasswordLines(data, user, "")
}

func editPasswordLines(data []byte, user, entry string) ([]byte, bool) {
	lines := strings.SplitAfter(string(data), "\n")
	var b strings.Builder
	found := false
	for _, line := range lines {
		if passwordLineUser(line) != user {
			b.WriteString(line)
			continue
		}
		if !found && entry != "" {
			b.WriteString(entry)
			if strings.HasSuffix(line, "\r\n") {
				b.WriteString("\r\n")
			} else {
				b.WriteString("\n")
			}
		}
		found = true
	}
	if !found && entry != "" {
		if s := b.String(); s != "" && !strings.HasSuffix(s, "\n") {
			b.WriteString("\n")
		}
		b.WriteString(entry + "\n")
	}
	return []byte(b.String()), found
}

// passwordLineUser is the user a password file line is for, as mosquitto
// reads it, or "" for a comment or a line without a user.
func passwordLineUser(line string) string {
	if line == "" || line[0] == '#' {
		return ""
	}
	user, _, ok := strings.Cut(line, ":")
	if !ok {
		return ""
	}
	return strings.Trim(user, blanks)
}
