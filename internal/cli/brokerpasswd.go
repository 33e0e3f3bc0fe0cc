package cli

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"mqtk/internal/broker"
)

type brokerPasswdOptions struct {
	file, user    string
	passwordStdin bool
	delete        bool
	create        bool
	batch         bool // -b: refused, with the way that works
}

func newBrokerPasswdCmd(a *App) *cobra.Command {
	o := &brokerPasswdOptions{}
	cmd := &cobra.Command{
		Use:   "passwd [flags] FILE USER",
		Short: "Add, change or delete a user in a password file",
		Long: `Set USER's password in FILE, a password file in mosquitto_passwd's format
that both 'mqtk broker --password-file' and mosquitto read. FILE is created
(readable by its owner only) if it does not exist; the other lines are kept
as they are, in order, and FILE is replaced in one step, so a broker reading
it never sees half a file. With -c, FILE is started afresh with USER alone,
as mosquitto_passwd -c does. Send the broker SIGHUP to make it read FILE
again.

On a terminal the password is asked for twice, without echo. From a script,
give it as the first line of stdin with --password-stdin; it never goes on
the command line, where other users could see it (so mosquitto_passwd's -b
is refused, with that remedy).

The password is stored as a PBKDF2-SHA512 hash ($7$, 101 iterations, as
mosquitto_passwd 2.x writes it); mosquitto 1.x's $6$ hashes are read too.`,
		Example: `  mqtk broker passwd /etc/mqtk/passwd alice
  printf '%s\n' "$PASS" | mqtk broker passwd --password-stdin passwd sensor-17
  mqtk broker passwd -D passwd alice
  printf '%s\n' "$PASS" | mqtk broker passwd -c --password-stdin passwd admin`,
		Args: func(cmd *cobra.Command, args []string) error {
			if o.batch {
				return usageErrorf("-b (the password on the command line, where other users can see it) is not supported: give it on stdin: printf '%%s\\n' \"$PASS\" | mqtk broker passwd --password-stdin FILE USER")
			}
			if len(args) != 2 {
				return usageErrorf("give FILE and USER (got %d arguments)", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			o.file, o.user = args[0], args[1]
			return runBrokerPasswd(a, o)
		},
	}
	flags := cmd.Flags()
	flags.BoolVar(&o.passwordStdin, "password-stdin", false, "read the password from the first line of stdin")
	flags.BoolVarP(&o.delete, "delete", "D", false, "delete USER instead of setting a password")
	flags.BoolVarP(&o.create, "create", "c", false, "start FILE afresh with USER alone, replacing what it held")
	flags.BoolVarP(&o.batch, "batch", "b", false, "mosquitto_passwd's password argument: refused, see --password-stdin")
	_ = flags.MarkHidden("batch")
	return cmd
}

func runBrokerPasswd(a *App, o *brokerPasswdOptions) error {
	if err := validatePasswdUser(o.user); err != nil {
		return err
	}
	if o.delete && o.passwordStdin {
		return usageErrorf("-D/--delete and --password-stdin conflict: deleting a user needs no password")
	}
	if o.delete && o.create {
		return usageErrorf("-D/--delete and -c/--create conflict: a new file has no user to delete")
	}
	path := o.file
	// Replace the file a symlink points to, not the link.
	if p, err := filepath.EvalSymlinks(path); err == nil {
		path = p
	}
	data, err := os.ReadFile(path)
	mode := fs.FileMode(0o600)
	switch {
	case err == nil:
		if fi, err := os.Stat(path); err == nil {
			mode = fi.Mode().Perm()
		}
		if o.create {
			data = nil // replaced once the password is read: nothing is lost on a mistake
		}
	case errors.Is(err, fs.ErrNotExist) && !o.delete:
		data = nil
	default:
		return usageErrorf("%v", err)
	}

	var out []byte
	var existed bool
	if o.delete {
		if out, existed = broker.DeletePasswordLine(data, o.user); !existed {
			return fmt.Errorf("%s has no user %q", o.file, o.user)
		}
	} else {
		password, err := readNewPassword(a, o)
		if err != nil {
			return err
		}
		hash, err := broker.HashPassword(password)
		if err != nil {
			return err
		}
		out, existed = broker.SetPasswordLine(data, o.user, hash)
	}
	if err := writeFileAtomic(path, out, mode); err != nil {
		return err
	}
	switch {
	case o.delete:
		fmt.Fprintf(a.IO.Err, "deleted user %q from %s\n", o.user, o.file)
	case o.create:
		fmt.Fprintf(a.IO.Err, "wrote %s with user %q alone\n", o.file, o.user)
	case existed:
		fmt.Fprintf(a.IO.Err, "changed the password of %q in %s\n", o.user, o.file)
	default:
		fmt.Fprintf(a.IO.Err, "added user %q to %s\n", o.user, o.file)
	}
	return nil
}

// validatePasswdUser refuses user names that a password file cannot hold
// or that no client could log in with.
func validatePasswdUser(user string) error {
	switch {
	case user == "":
		return usageErrorf("the user name is empty")
	case strings.Contains(user, ":"):
		return usageErrorf("user name %q contains ':', which separates the user from the password hash", user)
	case strings.Trim(user, " \t\v\f") != user:
		return usageErrorf("user name %q begins or ends with a blank, which the password file drops", user)
	case user[0] == '#':
		return usageErrorf("user name %q begins with '#', which makes its line a comment", user)
	case !utf8.ValidString(user):
		return usageErrorf("user name %q is not valid UTF-8, as MQTT requires", user)
	case strings.IndexFunc(user, unicode.IsControl) >= 0:
		return usageErrorf("user name %q contains a control character", user)
	case len(user) > 65535:
		return usageErrorf("the user name is %d bytes, longer than MQTT's limit of 65535", len(user))
	}
	return nil
}

// readNewPassword reads the password from the first line of stdin with
// --password-stdin, or else asks for it twice on the terminal.
func readNewPassword(a *App, o *brokerPasswdOptions) (string, error) {
	var password string
	if o.passwordStdin {
		line, err := bufio.NewReader(io.LimitReader(a.IO.In, 65536+2)).ReadString('\n')
		if err != nil && err != io.EOF {
			return "", fmt.Errorf("--password-stdin: read stdin: %w", err)
		}
		password = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
		if password == "" {
			return "", usageErrorf("--password-stdin: the first line of stdin is empty")
		}
	} else {
		if !a.IO.InTTY {
			return "", usageErrorf("stdin is not a terminal to ask for the password on: give it on stdin with --password-stdin")
		}
		p1, err := a.IO.ReadPassword("Password: ")
		if err != nil {
			return "", err
		}
		if p1 == "" {
			return "", errors.New("the password is empty")
		}
		p2, err := a.IO.ReadPassword("Reenter password: ")
		if err != nil {
			return "", err
		}
		if p1 != p2 {
			return "", errors.New("the passwords do not match")
		}
		password = p1
	}
	if len(password) > 65535 {
		return "", usageErrorf("the password is %d bytes, longer than MQTT's limit of 65535", len(password))
	}
	return password, nil
}

// writeFileAtomic replaces path with data: it writes a temporary file in
// the same directory and renames it over path.
func writeFileAtomic(path string, data []byte, mode fs.FileMode) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err := f.Chmod(mode); err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
