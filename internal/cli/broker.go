package cli

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strconv"

	"github.com/spf13/cobra"

	"mqtk/internal/broker"
)

type brokerOptions struct {
	port    int
	verbose bool
}

func newBrokerCmd(a *App) *cobra.Command {
	o := &brokerOptions{}
	cmd := &cobra.Command{
		Use:   "broker [flags]",
		Short: "Run an MQTT broker on this machine",
		Long: `Run an MQTT broker (mochi-mqtt underneath) that listens on 127.0.0.1 only and
lets anonymous clients connect there. It prints the address it listens on to
stderr and runs until Ctrl-C or SIGTERM, then exits 0.`,
		Example: `  mqtk broker                 # mqtt://127.0.0.1:1883
  mqtk broker --port 0        # a free port, printed on stderr`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runBroker(cmd.Context(), a, o)
		},
	}
	cmd.Flags().IntVarP(&o.port, "port", "p", broker.DefaultPort, "port to listen on (0 picks a free one)")
	cmd.Flags().BoolVarP(&o.verbose, "verbose", "v", false, "log connections and errors")
	return cmd
}

func runBroker(ctx context.Context, a *App, o *brokerOptions) error {
	if o.port < 0 || o.port > 65535 {
		return usageErrorf("-p/--port %d: use 0 to 65535", o.port)
	}
	level := slog.LevelError
	if o.verbose {
		level = slog.LevelInfo
	}
	cfg := broker.Config{
		Listen: []string{net.JoinHostPort("127.0.0.1", strconv.Itoa(o.port))},
		Logger: slog.New(slog.NewTextHandler(a.IO.Err, &slog.HandlerOptions{Level: level})),
	}
	s, err := broker.Start(cfg)
	if err != nil {
		return err
	}
	for _, u := range s.URLs() {
		fmt.Fprintf(a.IO.Err, "listening on %s (loopback only, anonymous clients allowed)\n", u)
	}
	<-ctx.Done()
	return s.Close()
}
