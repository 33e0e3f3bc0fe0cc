package main

import (
	"io"
	"net"
	"strconv"

	"github.com/rogpeppe/go-internal/testscript"

	"mqtk/internal/brokertest"
)

// mutebroker starts, on a free 127.0.0.1 port, a broker that accepts every
// MQTT 5 connection (CONNACK success) and then never acknowledges anything,
// and sets $MUTE_PORT: how a broker that has stopped answering looks. With
// -noconnack it never sends the CONNACK either, and sets $SILENT_PORT.
func cmdMuteBroker(ts *testscript.TestScript, neg bool, args []string) {
	silent := len(args) == 1 && args[0] == "-noconnack"
	if len(args) > 0 && !silent {
		ts.Fatalf("usage: mutebroker [-noconnack]")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	ts.Check(err)
	ts.Defer(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				// Read the CONNECT's fixed header and remaining length, then its body.
				hdr := make([]byte, 1)
				if _, err := io.ReadFull(c, hdr); err != nil {
					return
				}
				n, mult := 0, 1
				for {
					if _, err := io.ReadFull(c, hdr); err != nil {
						return
					}
					n += int(hdr[0]&0x7f) * mult
					mult *= 128
					if hdr[0]&0x80 == 0 {
						break
					}
				}
				if _, err := io.CopyN(io.Discard, c, int64(n)); err != nil {
					return
				}
				// CONNACK: no session, success, no properties.
				if silent {
					// none
				} else if _, err := c.Write([]byte{0x20, 0x03, 0x00, 0x00, 0x00}); err != nil {
					return
				}
				_, _ = io.Copy(io.Discard, c)
			}()
		}
	}()
	env := "MUTE_PORT"
	if silent {
		env = "SILENT_PORT"
	}
	ts.Setenv(env, strconv.Itoa(l.Addr().(*net.TCPAddr).Port))
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
