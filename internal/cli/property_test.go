package cli

import (
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// TestMosquittoPropertyFlag: -D COMMAND IDENTIFIER VALUE, as mosquitto_pub
// and mosquitto_sub take it, sets the flag of that property, as if it had
// been given; what mqtk does not take is refused by name.
func TestMosquittoPropertyFlag(t *testing.T) {
	for _, tc := range []struct {
		cmd  string
		args []string
		want map[string]string // flag: value, all Changed
		err  string
	}{
		{"pub", []string{"-t", "x", "-D", "publish", "content-type", "text/plain", "-m", "y",
			"-D", "PUBLISH", "user-property", "k", "1", "--user-property", "j=0", "-D", "publish", "user-property", "k", "2",
			"-D", "connect", "session-expiry-interval", "60", "--property", "publish", "payload-format-indicator", "1",
			"-D", "publish", "message-expiry-interval", "30", "-D", "publish", "topic-alias", "3",
			"-D", "publish", "response-topic", "r/t", "-D", "publish", "correlation-data", "c"},
			map[string]string{"content-type": "text/plain", "user-property": "[j=0,k=1,k=2]", "session-expiry": "60",
				"payload-format-indicator": "true", "message-expiry": "30", "topic-alias": "3", "response-topic": "r/t",
				"correlation-data": "c", "message": "y"}, ""},
		{"pub", []string{"-D", "publish", "payload-format-indicator", "0"}, map[string]string{"payload-format-indicator": "false"}, ""},
		{"sub", []string{"-t", "a", "-D", "subscribe", "subscription-identifier", "7", "-D", "connect", "session-expiry-interval", "1h"},
			map[string]string{"subscription-identifier": "7", "session-expiry": "1h"}, ""},

		{"pub", []string{"-D", "publish", "user-property", "-k", "-1", "-D", "publish", "correlation-data", "--", "-m", "-D"},
			map[string]string{"user-property": "[-k=-1]", "correlation-data": "--", "message": "-D"}, ""},
		{"sub", []string{"-D", "connect", "session-expiry-interval", "-1", "-t", "a"}, map[string]string{"session-expiry": "-1"}, ""}, // never expires
		{"pub", []string{"-D", "publish"}, nil, "-D/--property publish: give COMMAND IDENTIFIER VALUE"},
		{"pub", []string{"-D", "publish", "content-type"}, nil, "publish content-type: give 1 value after it"},
		{"pub", []string{"-D", "publish", "user-property", "k"}, nil, "publish user-property: give 2 values after it"},
		{"pub", []string{"-D", "publish", "user-property", "a=b", "c"}, nil, `key "a=b" contains '='`},
		{"pub", []string{"-D", "publish", "payload-format-indicator", "2"}, nil, `payload-format-indicator "2": use 0 or 1`},
		{"pub", []string{"-D", "publish", "topic-alias", "x"}, nil, `topic-alias "x": not a number`},
		{"pub", []string{"-D", "connect", "receive-maximum", "5"}, nil, "connect receive-maximum: not a property mqtk pub sets; it takes connect session-expiry-interval, publish content-type"},
		{"sub", []string{"-D", "publish", "content-type", "x"}, nil, "publish content-type: not a property mqtk sub sets; it takes connect session-expiry-interval, subscribe subscription-identifier"},
		{"pub", []string{"--content-type", "a", "-D", "publish", "content-type", "b"}, nil, "given twice (by -D or --content-type)"},
		{"pub", []string{"-D", "publish", "content-type", "a", "-D", "publish", "content-type", "b"}, nil, "given twice"},
		{"pub", []string{"-D", "publish", "content-type", "a", "extra"}, nil, `unexpected argument "extra"`},
		{"pub", []string{"extra"}, nil, `unexpected argument "extra" (flags take values as -t TOPIC, -m MESSAGE)`},
	} {
		a, _, _ := testApp("", nil)
		var cmd *cobra.Command
		if tc.cmd == "pub" {
			cmd = newPubCmd(a)
		} else {
			cmd = newSubCmd(a)
		}
		err := cmd.ParseFlags(movePropertyValues(cmd, tc.args))
		if err == nil {
			err = cmd.Args(cmd, cmd.Flags().Args())
		}
		if err == nil {
			err = cmd.PreRunE(cmd, cmd.Flags().Args())
		}
		if tc.err != "" {
			if _, ok := err.(*UsageError); !ok || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s %q: error %v, want a usage error containing %q", tc.cmd, tc.args, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s %q: %v", tc.cmd, tc.args, err)
			continue
		}
		for name, want := range tc.want {
			f := cmd.Flags().Lookup(name)
			if got := f.Value.String(); got != want || !f.Changed {
				t.Errorf("%s %q: --%s = %q (given: %v), want %q", tc.cmd, tc.args, name, got, f.Changed, want)
			}
		}
	}
}

// TestMovePropertyValues: what follows -D COMMAND goes behind a "--", so
// that no flag takes it, and nothing else moves; the line is read as pflag
// reads it, so a -D that is another flag's value stays where it is.
func TestMovePropertyValues(t *testing.T) {
	for _, tc := range []struct{ args, want []string }{
		{[]string{"-t", "x", "-m", "y"}, []string{"-t", "x", "-m", "y"}},
		{[]string{"-D", "publish", "user-property", "k", "-v", "-t", "x"},
			[]string{"-D", "publish", "-t", "x", "--", "user-property", "k", "-v"}},
		{[]string{"-D", "publish", "content-type", "-x", "-D", "connect", "session-expiry-interval", "-1"},
			[]string{"-D", "publish", "-D", "connect", "--", "content-type", "-x", "session-expiry-interval", "-1"}},
		// -D's COMMAND in all the ways pflag takes it.
		{[]string{"-Dpublish", "topic-alias", "-3"}, []string{"-Dpublish", "--", "topic-alias", "-3"}},
		{[]string{"-D=publish", "topic-alias", "-3"}, []string{"-D=publish", "--", "topic-alias", "-3"}},
		{[]string{"--property=publish", "topic-alias", "-3"}, []string{"--property=publish", "--", "topic-alias", "-3"}},
		{[]string{"--property", "publish", "topic-alias", "-3"}, []string{"--property", "publish", "--", "topic-alias", "-3"}},
		{[]string{"-rD", "publish", "topic-alias", "-3"}, []string{"-rD", "publish", "--", "topic-alias", "-3"}},
		// A flag's value is not a -D, and a -D is not its value.
		{[]string{"-m", "-D", "-t", "x"}, []string{"-m", "-D", "-t", "x"}},
		{[]string{"-m-D", "-D", "publish", "content-type", "-m"}, []string{"-m-D", "-D", "publish", "--", "content-type", "-m"}},
		{[]string{"--retain", "-D", "publish", "content-type", "-r"}, []string{"--retain", "-D", "publish", "--", "content-type", "-r"}},
		// The line's own "--" stays, after what moved.
		{[]string{"-D", "publish", "content-type", "-a", "--", "-b"}, []string{"-D", "publish", "--", "content-type", "-a", "-b"}},
		// Short of values: what there is moves, and applyProperties says
		// what is missing.
		{[]string{"-D", "publish", "user-property", "-k"}, []string{"-D", "publish", "--", "user-property", "-k"}},
		{[]string{"-D", "publish"}, []string{"-D", "publish"}},
		// What pflag refuses is left for it to refuse.
		{[]string{"--nosuch", "-D", "publish", "content-type", "-x"}, []string{"--nosuch", "-D", "publish", "content-type", "-x"}},
		{[]string{"-Z", "-D", "publish", "content-type", "-x"}, []string{"-Z", "-D", "publish", "content-type", "-x"}},
		{[]string{"-D"}, []string{"-D"}},
		// An argument after a -D's values stays after them.
		{[]string{"-D", "publish", "content-type", "-a", "extra", "-t", "x"}, []string{"-D", "publish", "-t", "x", "--", "content-type", "-a", "extra"}},
		{[]string{"extra", "-D", "publish", "content-type", "-a"}, []string{"extra", "-D", "publish", "--", "content-type", "-a"}},
	} {
		a, _, _ := testApp("", nil)
		if got := movePropertyValues(newPubCmd(a), tc.args); !slices.Equal(got, tc.want) {
			t.Errorf("%q: got %q, want %q", tc.args, got, tc.want)
		}
	}
	a, _, _ := testApp("", nil)
	if args := []string{"-p", "1", "-x", "-D"}; !slices.Equal(movePropertyValues(newBenchCmd(a), args), args) {
		t.Errorf("a command without -D: its line changed")
	}
}
