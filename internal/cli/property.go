package cli

import (
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// mosquitto_pub and mosquitto_sub set MQTT 5 properties with
// -D COMMAND IDENTIFIER VALUE (two values for user-property). mqtk has a
// flag for each property it supports; -D is accepted too, so that a
// mosquitto command line works as it is, and sets exactly what that flag
// sets.
//
// pflag gives a flag one value, so -D takes the COMMAND, and IDENTIFIER and
// VALUE are moved behind a "--" before pflag reads the line
// (movePropertyValues: a VALUE may begin with '-', as -1 for a session that
// never expires); applyProperties pairs them up again before the command
// runs. (So user properties from -D come after those from --user-property,
// whatever the order on the line.)

// propertyTarget is the mqtk flag that sets a property, and how a
// mosquitto value becomes that flag's value.
type propertyTarget struct {
	flag   string
	values int                            // 1, or 2 for user-property (KEY VALUE)
	value  func([]string) (string, error) // nil: the one value as it is
}

var (
	pubProperties = map[string]propertyTarget{
		"publish content-type":             {flag: "content-type", values: 1},
		"publish response-topic":           {flag: "response-topic", values: 1},
		"publish correlation-data":         {flag: "correlation-data", values: 1},
		"publish message-expiry-interval":  {flag: "message-expiry", values: 1},
		"publish topic-alias":              {flag: "topic-alias", values: 1},
		"publish payload-format-indicator": {flag: "payload-format-indicator", values: 1, value: zeroOrOne},
		"publish user-property":            {flag: "user-property", values: 2, value: keyValue},
		"connect session-expiry-interval":  {flag: "session-expiry", values: 1},
	}
	subProperties = map[string]propertyTarget{
		"subscribe subscription-identifier": {flag: "subscription-identifier", values: 1},
		"connect session-expiry-interval":   {flag: "session-expiry", values: 1},
	}
)

func zeroOrOne(v []string) (string, error) {
	switch v[0] {
	case "0":
		return "false", nil
	case "1":
		return "true", nil
	}
	return "", fmt.Errorf("%q: use 0 or 1", v[0])
}

func keyValue(v []string) (string, error) {
	if strings.Contains(v[0], "=") {
		return "", fmt.Errorf("key %q contains '=', which --user-property KEY=VALUE cannot carry", v[0])
	}
	return v[0] + "=" + v[1], nil
}

// addPropertyFlag adds -D/--property, whose COMMANDs land in *commands.
func addPropertyFlag(fs *pflag.FlagSet, commands *[]string, known map[string]propertyTarget) {
	fs.StringArrayVarP(commands, "property", "D", nil,
		"v5 property the mosquitto way, -D `COMMAND` IDENTIFIER VALUE, as its flag sets it: "+propertyList(known))
}

// propertyList names the COMMAND IDENTIFIER pairs mqtk takes.
func propertyList(known map[string]propertyTarget) string {
	keys := make([]string, 0, len(known))
	for k := range known {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return strings.Join(keys, ", ")
}

// propertyArgs is the Args check of a command with -D: without -D no
// arguments are allowed; with it they are -D's, checked by applyProperties.
func propertyArgs(commands *[]string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(*commands) == 0 {
			return noArgs(cmd, args)
		}
		return nil
	}
}

// applyProperties sets, for each -D COMMAND in order, the flag of COMMAND
// IDENTIFIER to the VALUE (or KEY VALUE) that follow it among args, as if
// that flag had been given. A property given twice (by -D or its flag) is
// refused, except user-property, which repeats.
func applyProperties(fs *pflag.FlagSet, commands, args []string, known map[string]propertyTarget) error {
	for _, command := range commands {
		if len(args) == 0 {
			return usageErrorf("-D/--property %s: give COMMAND IDENTIFIER VALUE, as in -D publish content-type text/plain", command)
		}
		name := strings.ToLower(command) + " " + args[0]
		t, ok := known[name]
		if !ok {
			return usageErrorf("-D/--property %s: not a property mqtk %s sets; it takes %s", name, fs.Name(), propertyList(known))
		}
		if len(args) < 1+t.values {
			return usageErrorf("-D/--property %s: give %d %s after it", name, t.values, plural(t.values, "value", "values"))
		}
		vals := args[1 : 1+t.values]
		args = args[1+t.values:]
		v := vals[0]
		if t.value != nil {
			var err error
			if v, err = t.value(vals); err != nil {
				return usageErrorf("-D/--property %s %v", name, err)
			}
		}
		if t.flag != "user-property" && fs.Changed(t.flag) {
			return usageErrorf("-D/--property %s: the property is given twice (by -D or --%s)", name, t.flag)
		}
		if err := fs.Set(t.flag, v); err != nil {
			if reason := numberReason(err); reason != "" {
				return usageErrorf("-D/--property %s %q: %s", name, v, reason)
			}
			return usageErrorf("-D/--property %s: %v", name, err)
		}
	}
	if len(args) > 0 {
		return usageErrorf("unexpected argument %q (flags take values as -t TOPIC, -m MESSAGE; -D takes COMMAND IDENTIFIER VALUE)", args[0])
	}
	return nil
}

// propertiesThen is a PreRunE that applies -D (see applyProperties) before
// next, so that -D counts as its flag given on the command line (before
// the environment, for example).
func propertiesThen(commands *[]string, known map[string]propertyTarget, next func(*cobra.Command, []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		if err := applyProperties(cmd.Flags(), *commands, args, known); err != nil {
			return err
		}
		return next(cmd, args)
	}
}

// movePropertyValues returns args with the IDENTIFIER and VALUEs after each
// -D COMMAND moved behind a "--" (before any the line already has), in
// order, so that pflag takes none of them for a flag: mosquitto_pub takes
// -D publish user-property key -1 as it stands, and so does mqtk. It walks
// the line as pflag will, with cmd's flags, to tell a -D from a flag's
// value ("-m -D"); at anything pflag will refuse, it leaves args as they
// are for pflag to say so. Every identifier takes one value, as in
// mosquitto, but user-property, which takes two.
func movePropertyValues(cmd *cobra.Command, args []string) []string {
	cmd.InheritedFlags() // merges the persistent flags into cmd.Flags()
	fs := cmd.Flags()
	if fs.Lookup("property") == nil {
		return args
	}
	var kept, moved []string
	for i := 0; i < len(args); i++ {
		arg := args[i]
		if arg == "--" {
			break
		}
		if !strings.HasPrefix(arg, "-") || arg == "-" {
			if len(moved) > 0 {
				moved = append(moved, arg) // an argument after a -D's, in its order
			} else {
				kept = append(kept, arg) // the command's name, or a stray argument
			}
			continue
		}
		kept = append(kept, arg)
		var f *pflag.Flag
		hasValue := false // given in arg itself
		switch {
		case strings.HasPrefix(arg, "--"):
			var name string
			name, _, hasValue = strings.Cut(arg[2:], "=")
			if f = fs.Lookup(name); f == nil {
				return args
			}
		default:
			for j := 1; j < len(arg); j++ {
				if f = fs.ShorthandLookup(arg[j : j+1]); f == nil {
					return args
				}
				rest := arg[j:]
				if len(rest) > 2 && rest[1] == '=' {
					hasValue = true
					break
				}
				if f.NoOptDefVal != "" {
					continue
				}
				hasValue = len(rest) > 1
				break
			}
		}
		if f.NoOptDefVal != "" {
			continue // a flag without a value, or with it after '='
		}
		if !hasValue {
			if i++; i == len(args) {
				return args
			}
			kept = append(kept, args[i])
		}
		if f.Name != "property" || i+1 == len(args) {
			continue
		}
		n := 2 // IDENTIFIER VALUE
		if args[i+1] == "user-property" {
			n = 3
		}
		n = min(n, len(args)-i-1)
		moved = append(moved, args[i+1:i+1+n]...)
		i += n
	}
	if len(moved) == 0 {
		return args
	}
	out := append(append(kept, "--"), moved...)
	if rest := len(kept) + len(moved); rest < len(args) {
		out = append(out, args[rest+1:]...) // after the line's own "--"
	}
	return out
}
