package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
)

// addHelpTopics adds `mqtk help exit-codes` and `mqtk help environment`.
func addHelpTopics(root *cobra.Command) {
	root.AddCommand(&cobra.Command{
		Use:   "exit-codes",
		Short: "What mqtk's exit codes mean",
		Long:  exitCodesHelp(),
	}, &cobra.Command{
		Use:   "environment",
		Short: "Environment variables mqtk reads",
		Long:  environmentHelp(),
	})
}

func exitCodesHelp() string {
	var b strings.Builder
	b.WriteString("mqtk's exit codes are an API: each has one meaning, in every command.\n\n")
	for _, e := range exitCodes {
		fmt.Fprintf(&b, "  %3d  %s\n", e.Code, e.Meaning)
	}
	b.WriteString(`
Unlike mosquitto_pub, a publish the broker rejects is an error (exit 5), not a
warning with exit 0.`)
	return b.String()
}

func environmentHelp() string {
	var b strings.Builder
	b.WriteString(`Every connection flag of pub and sub can also come from the environment, as
MQTK_ and the flag's long name in capitals with - as _ (the password is
MQTK_PASSWORD). A flag on the command line beats the variable. Booleans take
true or false.

`)
	for _, name := range connFlagNames() {
		fmt.Fprintf(&b, "  %-28s --%s\n", envName(name), name)
	}
	b.WriteString(`
Also read:
  NO_COLOR                     when set and not empty, no colour (unless --color always)
  HTTPS_PROXY, NO_PROXY        used for wss:// connections`)
	return b.String()
}
