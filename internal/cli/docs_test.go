package cli

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// repoRoot is the repository root, seen from this package's directory.
const repoRoot = "../.."

// TestGeneratedDocsUpToDate regenerates the command reference, man pages,
// help-topic pages and completions into a temporary directory and checks
// that the committed files are the same, file for file and byte for byte.
func TestGeneratedDocsUpToDate(t *testing.T) {
	gen := t.TempDir()
	if err := GenerateDocs(gen); err != nil {
		t.Fatalf("GenerateDocs: %v", err)
	}
	want := generatedFiles(t, gen)
	if len(want) == 0 {
		t.Fatal("GenerateDocs wrote no files")
	}

	// Every generated file must be committed, with the same content.
	for _, name := range want {
		w, err := os.ReadFile(filepath.Join(gen, name))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(repoRoot, name))
		switch {
		case os.IsNotExist(err):
			t.Errorf("%s is missing: run `make docs`", name)
		case err != nil:
			t.Errorf("%s: %v", name, err)
		case !bytes.Equal(got, w):
			t.Errorf("%s is stale (%s): run `make docs`", name, firstDiff(got, w))
		}
	}

	// The generated directories must hold nothing else, e.g. the page of a
	// command that was renamed.
	for _, name := range generatedFiles(t, repoRoot) {
		if !slices.Contains(want, name) {
			t.Errorf("%s is no longer generated: run `make docs` (it removes it)", name)
		}
	}
}

// generatedFiles lists, relative to root and with slashes, the files in the
// generated directories plus the generated pages outside them.
func generatedFiles(t *testing.T, root string) []string {
	t.Helper()
	var names []string
	for _, dir := range generatedDirs {
		err := filepath.WalkDir(filepath.Join(root, dir), func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				if os.IsNotExist(err) {
					return nil
				}
				return err
			}
			if d.IsDir() {
				return nil
			}
			rel, err := filepath.Rel(root, path)
			if err != nil {
				return err
			}
			names = append(names, filepath.ToSlash(rel))
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{docsExitCodes, docsEnvironment, docsFormat, docsJSON, docsBenchOutput} {
		if _, err := os.Stat(filepath.Join(root, name)); err == nil || !os.IsNotExist(err) {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}

// firstDiff describes the first line where got (committed) and want
// (generated) differ.
func firstDiff(got, want []byte) string {
	g := strings.Split(string(got), "\n")
	w := strings.Split(string(want), "\n")
	for i := 0; i < len(g) || i < len(w); i++ {
		if i >= len(g) || i >= len(w) || g[i] != w[i] {
			return fmt.Sprintf("line %d: committed %s, generated %s", i+1, quoteLine(g, i), quoteLine(w, i))
		}
	}
	return "same lines, different bytes"
}

func quoteLine(lines []string, i int) string {
	if i >= len(lines) {
		return "nothing (end of file)"
	}
	s := lines[i]
	if len(s) > 80 {
		s = s[:80] + "..."
	}
	return fmt.Sprintf("%q", s)
}

// TestManKeepsHelpTables: the aligned tables of a command's help (sub's
// "stops at" list) are preformatted in its man page and markdown page, not
// filled into the paragraph around them; each help topic has a man page.
func TestManKeepsHelpTables(t *testing.T) {
	gen := t.TempDir()
	if err := GenerateDocs(gen); err != nil {
		t.Fatalf("GenerateDocs: %v", err)
	}
	for name, want := range map[string]string{
		"docs/man/mqtk-sub.1":                "says which:\n\n.EX\n  -C N ",
		"docs/commands/mqtk_sub.md":          "says which:\n```text\n  -C N ",
		"docs/man/mqtk-retain-clear.1":       "Exit codes:\n\n.EX\n  0 ",
		"docs/commands/mqtk_retain-clear.md": "Exit codes:\n```text\n  0 ",
		// The help topics have man pages too.
		"docs/man/mqtk-format.7":     ".TH \"MQTK-FORMAT\" \"7\"",
		"docs/man/mqtk-exit-codes.7": "\n.EX\n    0  success\n",
	} {
		data, err := os.ReadFile(filepath.Join(gen, name))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(data), want) {
			t.Errorf("%s: no preformatted table (%q)", name, want)
		}
	}
}
