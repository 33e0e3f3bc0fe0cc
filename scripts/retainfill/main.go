// Command retainfill publishes N retained messages to N topics, pipelined
// within the broker's Receive Maximum: the load for
// scripts/perf-retain-clear.sh.
//
//	retainfill -url mqtt://127.0.0.1:1883 -n 10000 -prefix perf
//
// The topics are PREFIX/0 ... PREFIX/N-1, each holding "retained-I".
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"mqtk/internal/mqttc"
)

func main() {
	url := flag.String("url", "mqtt://127.0.0.1:1883", "broker URL")
	n := flag.Int("n", 10000, "retained topics")
	prefix := flag.String("prefix", "perf", "topic prefix")
	flag.Parse()
	u, err := mqttc.ParseURL(*url)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	ctx := context.Background()
	c, err := mqttc.Dial(ctx, mqttc.Config{Endpoint: u.Endpoint, ClientID: fmt.Sprintf("retainfill-%d", os.Getpid()), CleanStart: true})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer c.Disconnect(ctx)
	pending := make(chan mqttc.Pending, 1024)
	failed := make(chan error, 1)
	go func() {
		var first error
		for p := range pending {
			if err := p.Wait(ctx); err != nil && first == nil {
				first = err
			}
		}
		failed <- first
	}()
	for i := 0; i < *n; i++ {
		p, err := c.PublishAsync(ctx, &mqttc.Message{
			Topic: fmt.Sprintf("%s/%d", *prefix, i), Payload: fmt.Appendf(nil, "retained-%d", i), QoS: 1, Retain: true,
		})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		pending <- p
	}
	close(pending)
	if err := <-failed; err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
