package main

import (
	"strconv"

	"github.com/rogpeppe/go-internal/testscript"

	"mqtk/internal/brokertest"
)

// mutebroker starts a brokertest.Mute (a broker that accepts every MQTT 5
// connection, CONNACK success, and then never acknowledges anything) and
// sets $MUTE_PORT: how a broker that has stopped answering looks. With
// -noconnack it never sends the CONNACK either, and sets $SILENT_PORT.
func cmdMuteBroker(ts *testscript.TestScript, neg bool, args []string) {
	silent := len(args) == 1 && args[0] == "-noconnack"
	if len(args) > 0 && !silent {
		ts.Fatalf("usage: mutebroker [-noconnack]")
	}
	m, err := brokertest.NewMute(brokertest.MuteOptions{NoConnack: silent})
	ts.Check(err)
	ts.Defer(func() { m.Close() })
	env := "MUTE_PORT"
	if silent {
		env = "SILENT_PORT"
	}
	ts.Setenv(env, strconv.Itoa(m.Port))
}

// kick [-name NAME] CLIENTID disconnects a client from the in-process
// broker (DISCONNECT "administrative action"), as an operator would.
func cmdKick(ts *testscript.TestScript, neg bool, args []string) {
	name := "BROKER"
	if len(args) == 3 && args[0] == "-name" {
		name, args = args[1], args[2:]
	}
	if len(args) != 1 {
		ts.Fatalf("usage: kick [-name NAME] CLIENTID")
	}
	b, ok := brokers(ts)[name]
	if !ok {
		ts.Fatalf("no broker named %s", name)
	}
	if !b.Disconnect(args[0]) {
		ts.Fatalf("client %s is not connected", args[0])
	}
}

// waitacked [-name NAME] [-n COUNT] CLIENTID waits until the client has
// acknowledged COUNT (default 1) QoS 1 or 2 messages from the in-process
// broker in total.
func cmdWaitAcked(ts *testscript.TestScript, neg bool, args []string) {
	waitBrokerEvent(ts, "waitacked", "CLIENTID", args, (*brokertest.Broker).WaitDelivered)
}
