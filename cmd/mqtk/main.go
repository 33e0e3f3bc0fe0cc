// Command mqtk is the MQTT command-line toolkit.
package main

import (
	"os"

	"mqtk/internal/cli"
)

func main() { os.Exit(cli.Main()) }
