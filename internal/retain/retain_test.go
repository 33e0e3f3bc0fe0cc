package retain

import "testing"

func TestScopeClassify(t *testing.T) {
	s := Scope{Filters: []string{"site/#", "home/+/state", "$foo/#"}, Exclude: []string{"site/keep/#", "+/+/state"}}
	for _, tc := range []struct {
		topic        string
		in, excluded bool
	}{
		{"site", true, false}, // "site/#" matches its parent level
		{"site/a", true, false},
		{"site/a/b/c", true, false},
		{"site/keep", true, true},
		{"site/keep/x", true, true},
		{"home/k/state", true, true}, // excluded by +/+/state
		{"home/k/other", false, false},
		{"other/x", false, false},
		{"$foo/bar", true, false},            // named by a filter
		{"$SYS/broker/uptime", false, false}, // # and + never reach $ topics
		{"$foo/x/state", true, false},        // "+/+/state" does not reach $foo/x/state
	} {
		in, ex := s.classify(tc.topic)
		if in != tc.in || ex != tc.excluded {
			t.Errorf("classify(%q) = in %v excluded %v, want %v %v", tc.topic, in, ex, tc.in, tc.excluded)
		}
	}
	everything := Scope{Filters: []string{"#"}}
	for _, tp := range []string{"$SYS/x", "$foo"} {
		if in, _ := everything.classify(tp); in {
			t.Errorf("'#' reaches %q", tp)
		}
	}
}
