package cli

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cpuguy83/go-md2man/v2/md2man"
	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"

	"mqtk/internal/bench"
	"mqtk/internal/term"
)

// Where GenerateDocs writes, relative to the repository root. The first three
// directories hold generated files only: GenerateDocs empties them first, so
// a renamed or removed command leaves no page behind.
const (
	docsCommandsDir = "docs/commands"
	docsManDir      = "docs/man"
	completionsDir  = "completions"
	docsExitCodes   = "docs/exit-codes.md"
	docsEnvironment = "docs/environment.md"
	docsFormat      = "docs/format.md"
	docsJSON        = "docs/json.md"
	docsBenchOutput = "docs/bench-output.md"
)

// generatedDirs are emptied and refilled by GenerateDocs.
var generatedDirs = []string{docsCommandsDir, docsManDir, completionsDir}

// manDate is the date in the man pages' footer. It is fixed so that
// regenerating on another day changes nothing; move it forward when the
// manual changes in a way worth dating.
var manDate = time.Date(2026, time.November, 1, 0, 0, 0, 0, time.UTC)

// GenerateDocs writes the command reference (markdown and man pages), the
// exit-code and environment pages, and the shell completion scripts under
// the repository root dir, from the command tree. The output depends only on
// the code: the tree is built with test streams and an empty environment.
func GenerateDocs(dir string) error {
	streams, _, _ := term.Test("")
	root := NewRootCmd(&App{IO: streams, LookupEnv: func(string) (string, bool) { return "", false }})
	// Cobra adds `completion` only when a command line is executed; add it
	// now so that the reference shows what `mqtk --help` lists.
	root.InitDefaultCompletionCmd()
	var fence func(*cobra.Command)
	fence = func(c *cobra.Command) {
		if c.Long != "" {
			endsLine := strings.HasSuffix(c.Long, "\n")
			if c.Long = fenceIndented(c.Long); !endsLine {
				c.Long = strings.TrimSuffix(c.Long, "\n")
			}
		}
		for _, sub := range c.Commands() {
			fence(sub)
		}
	}
	fence(root)

	for _, d := range generatedDirs {
		p := filepath.Join(dir, d)
		if err := os.RemoveAll(p); err != nil {
			return err
		}
		if err := os.MkdirAll(p, 0o755); err != nil {
			return err
		}
	}

	if err := doc.GenMarkdownTree(root, filepath.Join(dir, docsCommandsDir)); err != nil {
		return fmt.Errorf("markdown pages: %w", err)
	}
	header := &doc.GenManHeader{Section: "1", Source: "mqtk", Manual: "mqtk manual", Date: &manDate}
	if err := doc.GenManTree(root, header, filepath.Join(dir, docsManDir)); err != nil {
		return fmt.Errorf("man pages: %w", err)
	}
	for _, c := range root.Commands() {
		if c.IsAdditionalHelpTopicCommand() {
			name := filepath.Join(dir, docsManDir, root.Name()+"-"+c.Name()+".7")
			if err := os.WriteFile(name, topicMan(root, c), 0o644); err != nil {
				return err
			}
		}
	}

	exitMD, err := helpMarkdown("Exit codes", exitCodesHelp(), [2]string{"Code", "Meaning"})
	if err != nil {
		return fmt.Errorf("%s: %w", docsExitCodes, err)
	}
	envMD, err := helpMarkdown("Environment", environmentHelp(),
		[2]string{"Variable", "Flag"}, [2]string{"Variable", "Use"})
	if err != nil {
		return fmt.Errorf("%s: %w", docsEnvironment, err)
	}

	formatMD := verbatimMarkdown("The -F format language", formatHelp)
	jsonMD := verbatimMarkdown("mqtk sub --json", jsonHelp)
	benchMD := verbatimMarkdown("mqtk bench: report, NDJSON, CSV and --assert", bench.Doc)

	files := []struct {
		name string
		gen  func(*bytes.Buffer) error
	}{
		{docsExitCodes, func(b *bytes.Buffer) error { _, err := b.WriteString(exitMD); return err }},
		{docsEnvironment, func(b *bytes.Buffer) error { _, err := b.WriteString(envMD); return err }},
		{docsFormat, func(b *bytes.Buffer) error { _, err := b.WriteString(formatMD); return err }},
		{docsJSON, func(b *bytes.Buffer) error { _, err := b.WriteString(jsonMD); return err }},
		{docsBenchOutput, func(b *bytes.Buffer) error { _, err := b.WriteString(benchMD); return err }},
		{completionsDir + "/mqtk.bash", func(b *bytes.Buffer) error { return root.GenBashCompletionV2(b, true) }},
		{completionsDir + "/_mqtk", func(b *bytes.Buffer) error { return root.GenZshCompletion(b) }},
		{completionsDir + "/mqtk.fish", func(b *bytes.Buffer) error { return root.GenFishCompletion(b, true) }},
		{completionsDir + "/mqtk.ps1", func(b *bytes.Buffer) error { return root.GenPowerShellCompletionWithDesc(b) }},
	}
	for _, f := range files {
		var b bytes.Buffer
		if err := f.gen(&b); err != nil {
			return fmt.Errorf("%s: %w", f.name, err)
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.FromSlash(f.name)), b.Bytes(), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// topicMan is the man page (section 7, as git's topics are) of a help
// topic such as `mqtk help format`, which cobra's GenManTree skips.
func topicMan(root, topic *cobra.Command) []byte {
	name := root.Name() + "-" + topic.Name()
	md := fmt.Sprintf("%% %q \"7\" %q \"mqtk\" \"mqtk manual\"\n# NAME\n%s \\- %s\n\n"+
		"# SYNOPSIS\n**%s help %s**\n\n# DESCRIPTION\n%s\n\n# SEE ALSO\n**%s(1)**\n",
		strings.ToUpper(name), manDate.Format("Jan 2006"), name, topic.Short,
		root.Name(), topic.Name(), topic.Long, root.Name())
	return md2man.Render([]byte(md))
}

// helpMarkdown renders the text of a help topic (see help.go) as a markdown
// page: prose lines as they are, and each run of indented "NAME  TEXT" lines
// as a two-column table, headed by the next of headers. The name column is
// code. It fails if the text has a different number of tables than headers,
// so a change in the help text's shape is noticed here rather than rendered
// badly.
func helpMarkdown(title, text string, headers ...[2]string) (string, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "<!-- Generated from `mqtk help` by `make docs` (internal/cli/docs.go). Do not edit. -->\n\n# %s\n\n", title)
	lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
	tables := 0
	for i := 0; i < len(lines); {
		if !strings.HasPrefix(lines[i], "  ") {
			b.WriteString(strings.TrimRight(lines[i], " ") + "\n")
			i++
			continue
		}
		if tables == len(headers) {
			return "", fmt.Errorf("more indented blocks than the %d table header(s) given", len(headers))
		}
		h := headers[tables]
		tables++
		if i > 0 && lines[i-1] != "" {
			b.WriteString("\n")
		}
		fmt.Fprintf(&b, "| %s | %s |\n| --- | --- |\n", h[0], h[1])
		for ; i < len(lines) && strings.HasPrefix(lines[i], "  "); i++ {
			name, desc, ok := strings.Cut(strings.TrimSpace(lines[i]), "  ")
			if !ok {
				return "", fmt.Errorf("line %q is not NAME  TEXT", lines[i])
			}
			fmt.Fprintf(&b, "| %s | %s |\n", codeList(name), cell(strings.TrimSpace(desc)))
		}
		if i < len(lines) && lines[i] != "" {
			b.WriteString("\n")
		}
	}
	if tables != len(headers) {
		return "", fmt.Errorf("%d indented block(s), but %d table header(s) given", tables, len(headers))
	}
	return b.String(), nil
}

// verbatimMarkdown renders a help topic as a markdown page: prose as it is,
// each indented block as a preformatted block, unchanged.
func verbatimMarkdown(title, text string) string {
	return fmt.Sprintf("<!-- Generated from `mqtk help` by `make docs` (internal/cli/docs.go). Do not edit. -->\n\n# %s\n\n", title) +
		fenceIndented(text)
}

// fenceIndented marks each run of indented lines in a help text (an aligned
// table, sample output) as a preformatted block, so that markdown and man
// show it as --help does instead of filling it into the paragraph.
func fenceIndented(text string) string {
	var b strings.Builder
	lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
	in := false
	for i, l := range lines {
		indented := strings.HasPrefix(l, "  ")
		if indented && !in {
			b.WriteString("```text\n")
			in = true
		}
		if !indented && in && l == "" && i+1 < len(lines) && strings.HasPrefix(lines[i+1], "  ") {
			b.WriteString("\n") // a blank line inside a block
			continue
		}
		if !indented && in {
			b.WriteString("```\n")
			in = false
		}
		b.WriteString(strings.TrimRight(l, " ") + "\n")
	}
	if in {
		b.WriteString("```\n")
	}
	return b.String()
}

// codeList formats "A, B" as "`A`, `B`".
func codeList(s string) string {
	parts := strings.Split(s, ", ")
	for i, p := range parts {
		parts[i] = "`" + p + "`"
	}
	return strings.Join(parts, ", ")
}

// cell escapes a table cell; a flag name (--host) is shown as code.
func cell(s string) string {
	if strings.HasPrefix(s, "--") && !strings.Contains(s, " ") {
		return "`" + s + "`"
	}
	return strings.ReplaceAll(s, "|", `\|`)
}
