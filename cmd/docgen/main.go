// Command docgen regenerates mqtk's command reference, man pages and shell
// completions from the command tree: `go run ./cmd/docgen DIR` (make docs).
package main

import (
	"fmt"
	"os"

	"mqtk/internal/cli"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: docgen REPO-ROOT")
		os.Exit(2)
	}
	if err := cli.GenerateDocs(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "docgen:", err)
		os.Exit(1)
	}
}
