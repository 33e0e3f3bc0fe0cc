package main

import (
	"flag"
	"strconv"

	"github.com/rogpeppe/go-internal/testscript"

	"mqtk/internal/brokertest"
)

// v3front [-name NAME] [-refuse v3|v5|close] [-accept LEVELS] PORT starts a
// listener on a free loopback port in front of the broker on PORT that
// accepts only the MQTT protocol levels in LEVELS (default 4: MQTT 3.1.1),
// as a broker that speaks only 3.1.1 does, and sets $NAME_PORT (NAME
// defaults to FRONT). A CONNECT of another level is refused as -refuse says:
// v3 (default) answers CONNACK return code 1 as MQTT 3.1.1 asks, v5
// answers CONNACK reason 0x84, close closes the connection.
func cmdV3Front(ts *testscript.TestScript, neg bool, args []string) {
	if neg {
		ts.Fatalf("unsupported: ! v3front")
	}
	fs := flag.NewFlagSet("v3front", flag.ContinueOnError)
	name := fs.String("name", "FRONT", "")
	refuse := fs.String("refuse", string(brokertest.RefuseV3), "")
	accept := fs.String("accept", "4", "")
	ts.Check(fs.Parse(args))
	if fs.NArg() != 1 {
		ts.Fatalf("usage: v3front [-name NAME] [-refuse v3|v5|close] [-accept LEVELS] PORT")
	}
	var levels []byte
	for _, c := range *accept {
		if c < '3' || c > '5' {
			ts.Fatalf("v3front -accept %q: protocol levels are 3, 4 and 5", *accept)
		}
		levels = append(levels, byte(c-'0'))
	}
	f, err := brokertest.NewFront("127.0.0.1:"+fs.Arg(0), brokertest.Refusal(*refuse), levels...)
	ts.Check(err)
	ts.Defer(func() { f.Close() })
	ts.Setenv(*name+"_PORT", strconv.Itoa(f.Port))
}
