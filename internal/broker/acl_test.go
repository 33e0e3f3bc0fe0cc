package broker

import "testing"

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
	} {
		if got := allowed(rules, tc.topic, tc.write); got != tc.want {
			t.Errorf("allowed(%q, write=%v) = %v, want %v", tc.topic, tc.write, got, tc.want)
		}
	}
	if !allowed(nil, "anything", true) {
		t.Error("no rules must allow everything")
	}
}
