package bench

import (
	"reflect"
	"regexp"
	"strings"
	"testing"
)

// jsonKeys returns the JSON names of the fields of struct v.
func jsonKeys(v any) []string {
	var keys []string
	t := reflect.TypeOf(v)
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		keys = append(keys, name)
	}
	return keys
}

// docNamed reports whether name starts an indented line of Doc.
func docNamed(name string) bool {
	return regexp.MustCompile(`(?m)^  ` + regexp.QuoteMeta(name) + `( |$)`).MatchString(Doc)
}

func TestDocNamesEveryKey(t *testing.T) {
	for _, v := range []any{jsonConfig{}, jsonResult{}} {
		for _, k := range jsonKeys(v) {
			if !docNamed(k) {
				t.Errorf("Doc does not describe %T key %q on a line of its own", v, k)
			}
		}
	}
	for _, k := range jsonKeys(jsonLatency{}) {
		if !strings.Contains(Doc, k) {
			t.Errorf("Doc does not name latency key %q", k)
		}
	}
	for _, c := range csvHeader {
		if !regexp.MustCompile(`\b` + c + `\b`).MatchString(Doc) {
			t.Errorf("Doc does not name CSV column %q", c)
		}
	}
	for _, m := range plainMetrics {
		if !strings.Contains(Doc, m.name) {
			t.Errorf("Doc does not name metric %q", m.name)
		}
	}
	for _, s := range []string{explainAck, explainE2E, explainConnect} {
		name, _, _ := strings.Cut(s, ":")
		if !strings.Contains(Doc, name) {
			t.Errorf("Doc does not describe the %s measurement", name)
		}
	}
}

func TestDocExample(t *testing.T) {
	var line string
	for l := range strings.Lines(Doc) {
		if strings.HasPrefix(l, `  {"type":"result",`) {
			line = strings.TrimPrefix(l, "  ")
		}
	}
	if line == "" {
		t.Fatal("Doc has no example result line")
	}
	checkSchema(t, line, resultFields(true, true, false))
}

func TestDocAssertExamples(t *testing.T) {
	arg := regexp.MustCompile(`--assert ('[^']*'|\S+)`)
	n := 0
	for l := range strings.Lines(Doc) {
		if !strings.HasPrefix(l, "  --assert ") {
			continue
		}
		for _, m := range arg.FindAllStringSubmatch(l, -1) {
			n++
			if _, err := ParseAssertion(strings.Trim(m[1], "'")); err != nil {
				t.Errorf("Doc example: %v", err)
			}
		}
	}
	if n < 4 {
		t.Errorf("found %d --assert examples in Doc", n)
	}
}

func TestDocLines(t *testing.T) {
	for i, l := range strings.Split(Doc, "\n") {
		if n := len([]rune(l)); n > 80 && !strings.HasPrefix(l, `  {"type":`) {
			t.Errorf("Doc line %d is %d characters: %q", i+1, n, l)
		}
	}
}
