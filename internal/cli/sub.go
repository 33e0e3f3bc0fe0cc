package cli

import (
	"bufio"
	"context"
	"sync"

	"github.com/spf13/cobra"

	"mqtk/internal/mqttc"
	"mqtk/internal/msgfmt"
	"mqtk/internal/topic"
)

type subOptions struct {
	conn    connFlags
	topics  []string
	qos     []int
	verbose bool
	noEOL   bool
	count   int
}

func newSubCmd(a *App) *cobra.Command {
	o := &subOptions{}
	cmd := &cobra.Command{
		Use:   "sub -t FILTER [-t FILTER...] [flags]",
		Short: "Subscribe and print messages",
		Long: `Subscribe to one or more topic filters and print each message's payload on a
line of its own (with -v, the topic, a space, then the payload), as
mosquitto_sub does. Payload bytes are written unchanged.

mqtk sub runs until -C messages have been printed, the connection is lost
(exit 3), or it is interrupted (Ctrl-C or SIGTERM: a clean DISCONNECT and
exit 0).`,
		Example: `  mqtk sub -t 'sensors/#' -v
  mqtk sub -t cfg/device1 -C 1          # print one message (e.g. a retained one) and exit`,
		Args:    noArgs,
		PreRunE: o.conn.prepare(a),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runSub(cmd.Context(), a, o)
		},
	}
	fs := cmd.Flags()
	fs.SortFlags = false
	fs.StringArrayVarP(&o.topics, "topic", "t", nil, "topic `FILTER` to subscribe to (repeatable)")
	fs.IntSliceVarP(&o.qos, "qos", "q", []int{0}, "`QOS`: one for all filters, or one per -t in order")
	fs.BoolVarP(&o.verbose, "verbose", "v", false, "print the topic before each payload")
	fs.BoolVarP(&o.noEOL, "no-eol", "N", false, "do not add a newline after each payload")
	fs.IntVarP(&o.count, "count", "C", 0, "exit 0 after printing `N` messages (0: no limit)")
	o.conn.addFlags(fs)
	return cmd
}

func runSub(ctx context.Context, a *App, o *subOptions) error {
	conn, err := o.conn.resolve(a)
	if err != nil {
		return err
	}
	filters := o.topics
	if len(filters) == 0 && conn.urlTopic != "" {
		filters = []string{conn.urlTopic}
	}
	if len(filters) == 0 {
		return usageErrorf("no topic filter: give -t FILTER")
	}
	if len(o.qos) != 1 && len(o.qos) != len(filters) {
		return usageErrorf("%d -q values for %d -t filters: give one for all, or one per filter", len(o.qos), len(filters))
	}
	subs := make([]mqttc.Subscription, len(filters))
	for i, f := range filters {
		if err := topic.ValidateFilter(f); err != nil {
			return &UsageError{Err: err}
		}
		q := o.qos[0]
		if len(o.qos) > 1 {
			q = o.qos[i]
		}
		if q < 0 || q > 2 {
			return usageErrorf("-q/--qos %d: use 0, 1 or 2", q)
		}
		subs[i] = mqttc.Subscription{Filter: f, QoS: byte(q)}
	}
	if o.count < 0 {
		return usageErrorf("-C/--count %d: use a positive count, or 0 for no limit", o.count)
	}

	out := bufio.NewWriterSize(a.IO.Out, 64*1024)
	var (
		mu       sync.Mutex
		printed  int
		writeErr error
		enough   = make(chan struct{})
	)
	conn.cfg.OnMessage = func(m *mqttc.Message) {
		mu.Lock()
		defer mu.Unlock()
		if writeErr != nil || (o.count > 0 && printed >= o.count) {
			return
		}
		if writeErr = msgfmt.Plain(out, m, o.verbose, o.noEOL); writeErr == nil {
			writeErr = out.Flush()
		}
		printed++
		if writeErr != nil || (o.count > 0 && printed == o.count) {
			close(enough)
		}
	}
	client, err := mqttc.Dial(ctx, conn.cfg)
	if err != nil {
		return err
	}
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), conn.cfg.ConnectTimeout)
	defer cancel()
	defer client.Disconnect(dctx)
	if _, err := client.Subscribe(ctx, subs, mqttc.SubscribeOptions{}); err != nil {
		return err
	}
	select {
	case <-enough:
	case <-ctx.Done(): // Ctrl-C ends a subscription normally
	case <-client.Done():
		return client.Err()
	}
	mu.Lock()
	defer mu.Unlock()
	if writeErr != nil {
		return writeErr
	}
	return out.Flush()
}
