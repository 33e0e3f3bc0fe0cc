// Package term holds the process's standard streams and decides, per stream,
// whether output is for a person on a terminal (colour, prompts) or for a
// program in a pipe (plain bytes).
package term

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/mattn/go-isatty"
	"golang.org/x/term"
)

// IO is the set of standard streams a command uses. Commands never touch
// os.Stdin/os.Stdout/os.Stderr directly, so tests can run them with buffers.
type IO struct {
	In  io.Reader
	Out io.Writer
	Err io.Writer

	InTTY, OutTTY, ErrTTY bool

	// NoColor is true when NO_COLOR is set in the environment.
	NoColor bool
	// Color is the --color policy: "auto" (default), "always" or "never".
	Color string

	// readPassword reads a line without echo; nil when stdin is not a terminal.
	readPassword func() ([]byte, error)
}

// System returns the process's real streams.
func System() *IO {
	tty := func(f *os.File) bool {
		return isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd())
	}
	_, noColor := os.LookupEnv("NO_COLOR")
	t := &IO{
		In: os.Stdin, Out: os.Stdout, Err: os.Stderr,
		InTTY: tty(os.Stdin), OutTTY: tty(os.Stdout), ErrTTY: tty(os.Stderr),
		NoColor: noColor && os.Getenv("NO_COLOR") != "",
		Color:   "auto",
	}
	if t.InTTY {
		t.readPassword = func() ([]byte, error) { return term.ReadPassword(int(os.Stdin.Fd())) }
	}
	return t
}

// Test returns streams backed by buffers: stdin reads from in, stdout and
// stderr are collected in the returned buffers. No stream is a terminal.
func Test(in string) (t *IO, stdout, stderr *bytes.Buffer) {
	stdout, stderr = new(bytes.Buffer), new(bytes.Buffer)
	return &IO{In: strings.NewReader(in), Out: stdout, Err: stderr, Color: "auto"}, stdout, stderr
}

// SetTTY marks the test streams as terminals (for tests of terminal output).
// pw, if not nil, is what a no-echo password prompt reads.
func (t *IO) SetTTY(tty bool, pw func() ([]byte, error)) {
	t.InTTY, t.OutTTY, t.ErrTTY = tty, tty, tty
	t.readPassword = pw
}

// ColorOut reports whether stdout gets colour.
func (t *IO) ColorOut() bool { return t.colorFor(t.OutTTY) }

// ColorErr reports whether stderr gets colour.
func (t *IO) ColorErr() bool { return t.colorFor(t.ErrTTY) }

func (t *IO) colorFor(tty bool) bool {
	switch t.Color {
	case "always":
		return true
	case "never":
		return false
	}
	return tty && !t.NoColor
}

// ErrNoTerminal is returned by ReadPassword when stdin is not a terminal.
var ErrNoTerminal = fmt.Errorf("stdin is not a terminal")

// ReadPassword prints prompt on stderr and reads a line from the terminal
// without echoing it.
func (t *IO) ReadPassword(prompt string) (string, error) {
	if !t.InTTY || t.readPassword == nil {
		return "", ErrNoTerminal
	}
	fmt.Fprint(t.Err, prompt)
	b, err := t.readPassword()
	fmt.Fprintln(t.Err)
	if err != nil {
		return "", err
	}
	return string(b), nil
}
