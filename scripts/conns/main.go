// Command conns opens N idle MQTT connections to a broker and holds them
// until its stdin closes: the load for scripts/perf-conns.sh.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"

	"mqtk/internal/mqttc"
)

func main() {
	url := flag.String("url", "mqtt://127.0.0.1:1883", "broker URL")
	n := flag.Int("n", 1000, "connections")
	flag.Parse()
	u, err := mqttc.ParseURL(*url)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	ctx := context.Background()
	clients := make([]mqttc.Client, 0, *n)
	for i := 0; i < *n; i++ {
		c, err := mqttc.Dial(ctx, mqttc.Config{Endpoint: u.Endpoint, ClientID: fmt.Sprintf("idle-%d", i), CleanStart: true, KeepAlive: 600})
		if err != nil {
			fmt.Fprintf(os.Stderr, "connection %d: %v\n", i, err)
			os.Exit(1)
		}
		// One subscription each, as an idle device would have.
		if _, err := c.Subscribe(ctx, []mqttc.Subscription{{Filter: fmt.Sprintf("devices/%d/cmd", i), QoS: 1}}, mqttc.SubscribeOptions{}); err != nil {
			fmt.Fprintf(os.Stderr, "subscribe %d: %v\n", i, err)
			os.Exit(1)
		}
		clients = append(clients, c)
	}
	fmt.Println("connected", len(clients))
	_, _ = io.Copy(io.Discard, os.Stdin)
	for _, c := range clients {
		_ = c.Disconnect(ctx)
	}
}
