package broker

import (
	"testing"

	"mqtk/internal/topic"
)

func TestAllowed(t *testing.T) {
	rules := []Rule{
		{Filter: "#", Access: ReadWrite},
		{Filter: "secret/#", Access: Write, Deny: true},
		{Filter: "ro/+", Access: Read},
	}
	for _, tc := range []struct {
		topic string
		write bool
		want  bool
	}{
		{"a/b", true, true},
		{"secret", true, false}, // secret/# covers its parent level
		{"secret/x", true, false},
		{"secret/x", false, true},
		{"ro/x", false, true},
		{"$SYS/x", true, false}, // # does not reach $ topics
		{"#", false, true},      // a subscription to everything
		{"$SYS/#", false, false},
	} {
		if got := allowed(rules, tc.topic, tc.write, reaches); got != tc.want {
			t.Errorf("allowed(%q, write=%v) = %v, want %v", tc.topic, tc.write, got, tc.want)
		}
	}
	if !allowed(nil, "anything", true, reaches) {
		t.Error("no rules must allow everything")
	}
	// A subscription is granted by a rule that reaches part of it (each
	// message is checked as it is delivered), not by one that reaches none.
	ro := []Rule{{Filter: "ro/+", Access: Read}}
	if !allowed(ro, "ro/#", false, reaches) || !allowed(ro, "#", false, reaches) {
		t.Error("ro/+ refused a subscription to ro/# or #, which it reaches part of")
	}
	if allowed(ro, "rw/#", false, reaches) || allowed(ro, "ro/a/b", false, reaches) {
		t.Error("ro/+ allowed a subscription it reaches nothing of")
	}
	// A shared subscription must be covered (grant covers).
	if allowed(ro, "ro/#", false, covers) || !allowed(ro, "ro/+", false, covers) {
		t.Error("for a shared subscription, ro/+ must allow ro/+ and not ro/#")
	}
}

func TestReaches(t *testing.T) {
	for _, tc := range []struct {
		rule, t string
		want    bool
	}{
		{"site/#", "#", true},
		{"site/#", "+/x", true},
		{"site/#", "site", true},
		{"site/#", "other/#", false},
		{"site/#", "other/x", false},
		{"site/+", "site/#", true},
		{"site/+", "site/a/b", false},
		{"site/+", "+/+/+", false},
		{"a/+/c", "+/b/+", true},
		{"a/+/c", "+/b/d", false},
		{"a", "a/#", true}, // a/# receives a
		{"a", "a/+", false},
		{"a/b", "a/#", true},
		{"+/#", "$SYS/#", false},
		{"#", "$SYS/x", false},
		{"$SYS/#", "#", false}, // # receives no $ topic
		{"$SYS/#", "$SYS/+", true},
		{"+", "#", true},
		{"+", "a/b", false},
	} {
		if got := reaches(tc.rule, tc.t); got != tc.want {
			t.Errorf("reaches(%q, %q) = %v, want %v", tc.rule, tc.t, got, tc.want)
		}
	}
}

// TestReachesMatchesNames: for a topic name, reaches is topic.Match, and it
// is symmetric: a topic both match is a topic both match.
func TestReachesMatchesNames(t *testing.T) {
	filters := []string{"#", "+", "a", "a/#", "a/+", "+/b", "+/+", "a/b", "a/b/#", "a/+/#", "$SYS/#", "$SYS/+", "+/#", "/", "/#", "+/", "a//b", ""}
	names := []string{"a", "b", "a/b", "a/b/c", "a/", "/a", "/", "", "$SYS", "$SYS/x", "$SYS/x/y", "a//b", "b/b", "$a/b"}
	for _, f := range filters {
		for _, n := range names {
			if got, want := reaches(f, n), topic.Match(f, n); got != want {
				t.Errorf("reaches(%q, %q) = %v, topic.Match = %v", f, n, got, want)
			}
		}
		for _, g := range filters {
			if reaches(f, g) != reaches(g, f) {
				t.Errorf("reaches(%q, %q) = %v but reaches(%q, %q) = %v", f, g, reaches(f, g), g, f, reaches(g, f))
			}
		}
	}
}

func TestCovers(t *testing.T) {
	for _, tc := range []struct {
		rule, t string
		want    bool
	}{
		// topic names: as topic.Match
		{"a/#", "a", true},
		{"a/+", "a", false},
		{"x", "x/y", false},
		{"+/x", "$SYS/x", false},
		{"#", "$SYS/x", false},
		{"$SYS/#", "$SYS/x", true},
		{"a/+/c", "a/b/c", true},
		{"a//c", "a//c", true},
		{"a/+/c", "a//c", true},
		// subscription filters: the rule must reach all the filter can
		{"a/#", "a/#", true},
		{"a/#", "a/+", true},
		{"a/#", "a/+/b/#", true},
		{"a/+", "a/+", true},
		{"a/+", "a/#", false},
		{"a/+/#", "a/#", false}, // a/# receives a, a/+/# does not reach it
		{"a/+/#", "a/+", true},
		{"a/b", "a/+", false},
		{"a/#", "#", false},
		{"#", "#", true},
		{"#", "+/x", true},
		{"+/#", "#", true},
		{"+", "+", true},
		{"+", "#", false},
		{"#", "$SYS/#", false},
		{"+/#", "$SYS/+", false},
		{"$SYS/#", "$SYS/#", true},
		{"$SYS/+", "$SYS/#", false},
		{"a/b", "a/b/#", false},
	} {
		if got := covers(tc.rule, tc.t); got != tc.want {
			t.Errorf("covers(%q, %q) = %v, want %v", tc.rule, tc.t, got, tc.want)
		}
	}
}

// TestCoversMatchesNames: for a topic name, covers is topic.Match.
func TestCoversMatchesNames(t *testing.T) {
	filters := []string{"#", "+", "a", "a/#", "a/+", "+/b", "+/+", "a/b", "a/b/#", "a/+/#", "$SYS/#", "$SYS/+", "+/#", "/", "/#", "+/", "a//b", ""}
	names := []string{"a", "b", "a/b", "a/b/c", "a/", "/a", "/", "", "$SYS", "$SYS/x", "$SYS/x/y", "a//b", "b/b", "$a/b"}
	for _, f := range filters {
		for _, n := range names {
			if got, want := covers(f, n), topic.Match(f, n); got != want {
				t.Errorf("covers(%q, %q) = %v, topic.Match = %v", f, n, got, want)
			}
		}
	}
}

func TestShareFilter(t *testing.T) {
	for in, want := range map[string]string{
		"$share/g/a/#": "a/#",
		"$share/g/#":   "#",
		"$share/g":     "$share/g",
		"$share/g/":    "$share/g/",
		"$shared/g/a":  "$shared/g/a",
		"a/b":          "a/b",
	} {
		if got := shareFilter(in); got != want {
			t.Errorf("shareFilter(%q) = %q, want %q", in, got, want)
		}
	}
}
