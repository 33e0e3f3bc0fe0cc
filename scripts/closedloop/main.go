// Command closedloop publishes the way krylovsk/mqtt-benchmark does, the
// usual Go closed-loop MQTT benchmark: each client (eclipse/paho.mqtt.golang,
// MQTT 3.1.1) publishes COUNT messages one at a time, waiting for each
// publish's token (PUBACK at QoS 1, PUBCOMP at QoS 2) before the next. It
// prints the total rate as mqtt-benchmark's "Total Bandwidth" would: the sum
// of each client's messages per second. It is the comparison in
// scripts/perf-bench.sh; the tool itself is not reachable from the build
// machine, so its method is re-implemented here.
package main

import (
	"flag"
	"fmt"
	"os"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

func main() {
	broker := flag.String("broker", "tcp://127.0.0.1:1883", "broker URL")
	clients := flag.Int("clients", 10, "publishing clients")
	count := flag.Int("count", 1000, "messages per client")
	qos := flag.Int("qos", 1, "QoS")
	size := flag.Int("size", 100, "payload bytes")
	flag.Parse()

	rates := make([]float64, *clients)
	var wg sync.WaitGroup
	var failed sync.Once
	start := time.Now()
	for i := range *clients {
		opts := mqtt.NewClientOptions().AddBroker(*broker).
			SetClientID(fmt.Sprintf("closedloop-%d-%d", os.Getpid(), i)).SetCleanSession(true)
		c := mqtt.NewClient(opts)
		if t := c.Connect(); t.Wait() && t.Error() != nil {
			fmt.Fprintln(os.Stderr, "closedloop: connect:", t.Error())
			os.Exit(1)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Disconnect(100)
			payload := make([]byte, *size)
			t0 := time.Now()
			for range *count {
				t := c.Publish("closedloop/bench", byte(*qos), false, payload)
				if t.Wait() && t.Error() != nil {
					failed.Do(func() { fmt.Fprintln(os.Stderr, "closedloop: publish:", t.Error()) })
					return
				}
			}
			rates[i] = float64(*count) / time.Since(t0).Seconds()
		}()
	}
	wg.Wait()
	wall := time.Since(start).Seconds()
	var sum float64
	for _, r := range rates {
		sum += r
	}
	// The sum of per-client rates (mqtt-benchmark's figure) and the honest
	// one: every message over the wall time.
	fmt.Printf("%.1f %.1f\n", sum, float64(*clients**count)/wall)
}
