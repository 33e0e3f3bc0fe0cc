// Package cli wires mqtk's commands with cobra: flags become an Options
// struct, a run function does the work through the domain packages, and
// errors become one line on stderr and a documented exit code.
package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/fatih/color"
	"github.com/spf13/cobra"

	"mqtk/internal/term"
)

// Set by the linker (-ldflags "-X mqtk/internal/cli.version=...").
var (
	version = ""
	commit  = ""
)

// App is what every command shares: the standard streams and the environment.
type App struct {
	IO        *term.IO
	LookupEnv func(string) (string, bool)
	// InterruptGrace is how long pub waits, after a first Ctrl-C or
	// SIGTERM, for the acknowledgements of what it sent (0:
	// defaultInterruptGrace).
	InterruptGrace time.Duration
}

// defaultInterruptGrace: see App.InterruptGrace.
const defaultInterruptGrace = 5 * time.Second

// Main runs mqtk with the process's arguments, streams and signals, and
// returns the exit code.
func Main() int {
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	// A closed pipe on stdout (mqtk sub | head -1) is a write error (EPIPE)
	// the command handles, not a signal that kills it before it can send
	// DISCONNECT (which would make the broker publish its will).
	signal.Ignore(syscall.SIGPIPE)
	go func() {
		<-sigs
		cancel(errInterrupted)
		<-sigs // a second Ctrl-C quits at once
		os.Exit(ExitInterrupted)
	}()
	app := &App{IO: term.System(), LookupEnv: os.LookupEnv}
	return app.Run(ctx, os.Args[1:])
}

// Run executes one command line and returns its exit code.
func (a *App) Run(ctx context.Context, args []string) int {
	root := NewRootCmd(a)
	if cmd, _, err := root.Find(args); err == nil {
		args = movePropertyValues(cmd, args) // -D's values may begin with '-'
	}
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return ExitOK
	}
	if strings.HasPrefix(err.Error(), "unknown command ") {
		err = &UsageError{Err: err} // cobra's, for `mqtk nosuch` or an argument to a command that takes none
	}
	if errors.Is(err, context.Canceled) && errors.Is(context.Cause(ctx), errInterrupted) {
		err = errInterrupted
	}
	code := exitCode(err)
	var logged *loggedError
	if !a.quiet(cmd) && !errors.As(err, &logged) {
		prefix := "mqtk:"
		if a.IO.ColorErr() {
			red := color.New(color.FgRed, color.Bold)
			red.EnableColor() // the decision is ours, per stream, not fatih/color's global
			prefix = red.Sprint(prefix)
		}
		fmt.Fprintln(a.IO.Err, prefix, err)
		// The usage lines for a mistake in the command line, not for a
		// message the broker's limits refuse (also exit 2).
		var usage *UsageError
		if errors.As(err, &usage) && cmd != nil {
			fmt.Fprintf(a.IO.Err, "Usage: %s\nRun '%s --help' for more.\n", cmd.UseLine(), cmd.CommandPath())
		}
	}
	return code
}

func (a *App) quiet(cmd *cobra.Command) bool {
	if cmd == nil {
		return false
	}
	q, err := cmd.Flags().GetBool("quiet")
	return err == nil && q
}

// NewRootCmd builds the whole command tree.
func NewRootCmd(a *App) *cobra.Command {
	root := &cobra.Command{
		Use:   "mqtk",
		Short: "The MQTT command-line toolkit",
		Long: `mqtk publishes and subscribes on any MQTT broker and starts a safe local
broker. Its flags follow mosquitto_pub and mosquitto_sub: -h is the host, so
help is --help. Exit codes are listed by 'mqtk help exit-codes'.`,
		Version:           versionString(),
		SilenceErrors:     true,
		SilenceUsage:      true,
		DisableAutoGenTag: true,
		CompletionOptions: cobra.CompletionOptions{HiddenDefaultCmd: false},
	}
	root.SetIn(a.IO.In)
	root.SetOut(a.IO.Out)
	root.SetErr(a.IO.Err)
	// -h is the host everywhere, so help gets no shorthand; --version likewise.
	root.PersistentFlags().Bool("help", false, "show help for a command")
	root.Flags().Bool("version", false, "print the version")
	root.SetVersionTemplate("{{.Version}}\n")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return flagError(err) })

	root.AddCommand(
		newPubCmd(a),
		newSubCmd(a),
		newBenchCmd(a),
		newRetainClearCmd(a),
		newBrokerCmd(a),
		newVersionCmd(a),
	)
	addHelpTopics(root)
	strictHelpAndCompletion(root)
	return root
}

// strictHelpAndCompletion makes cobra's own `help` and `completion`
// commands treat what they do not know as a usage error (exit 2): cobra
// prints help and exits 0 for `mqtk help nosuch` and `mqtk completion
// nosuch`, which a script cannot tell from success.
func strictHelpAndCompletion(root *cobra.Command) {
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	for _, c := range root.Commands() {
		switch c.Name() {
		case "help":
			c.Run = nil
			c.RunE = func(c *cobra.Command, args []string) error {
				cmd, rest, err := c.Root().Find(args)
				if cmd == nil || err != nil || len(rest) > 0 {
					return usageErrorf("no command or help topic %q: 'mqtk --help' lists them", strings.Join(args, " "))
				}
				cmd.InitDefaultHelpFlag()
				return cmd.Help()
			}
		case "completion":
			c.Args = func(_ *cobra.Command, args []string) error {
				if len(args) > 0 {
					return usageErrorf("no completion for %q: use bash, zsh, fish or powershell", args[0])
				}
				return nil
			}
			c.RunE = func(c *cobra.Command, _ []string) error { return c.Help() }
		}
	}
}

// noArgs rejects positional arguments as a usage error.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageErrorf("unexpected argument %q (flags take values as -t TOPIC, -m MESSAGE)", args[0])
	}
	return nil
}

func versionString() string {
	v, c, goV := version, commit, ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		goV = bi.GoVersion
		if v == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v = bi.Main.Version
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && c == "" {
				c = s.Value
			}
		}
	}
	if v == "" {
		v = "dev"
	}
	if c == "" {
		c = "unknown"
	}
	return fmt.Sprintf("mqtk %s (commit %s, %s)", v, c, goV)
}

func newVersionCmd(a *App) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version, commit and Go version",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			_, err := fmt.Fprintln(a.IO.Out, versionString())
			return err
		},
	}
}
