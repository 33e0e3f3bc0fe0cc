package topic

import (
	"strings"
	"testing"
)

func TestValidateName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"a", true}, {"a/b/c", true}, {"/", true}, {"a//b", true}, {"$SYS/x", true}, {"ünï/cödé", true},
		{"", false}, {"a/+", false}, {"a/#", false}, {"a+b", false}, {"\xff", false}, {"a\x00b", false},
		{strings.Repeat("x", MaxLen), true}, {strings.Repeat("x", MaxLen+1), false},
	} {
		if err := ValidateName(tc.name); (err == nil) != tc.ok {
			t.Errorf("ValidateName(%.20q) = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}

func TestValidateFilter(t *testing.T) {
	for _, tc := range []struct {
		filter string
		ok     bool
	}{
		{"#", true}, {"+", true}, {"a/#", true}, {"+/+/x", true}, {"a/+/b", true}, {"/#", true},
		{"", false}, {"a/#/b", false}, {"a+", false}, {"a/b#", false}, {"#/a", false}, {"\xfe", false},
		// Shared subscriptions: $share/NAME/FILTER, the name not empty and
		// without wildcards, the filter a filter.
		{"$share/g/a/#", true}, {"$share/g/+", true}, {"$share", true}, {"$sharex/a", true},
		{"$share//a", false}, {"$share/g", false}, {"$share/g/", false}, {"$share/g+/a", false},
		{"$share/#/a", false}, {"$share/g/a/#/b", false},
	} {
		if err := ValidateFilter(tc.filter); (err == nil) != tc.ok {
			t.Errorf("ValidateFilter(%q) = %v, want ok=%v", tc.filter, err, tc.ok)
		}
	}
}

func TestMatch(t *testing.T) {
	for _, tc := range []struct {
		filter, name string
		want         bool
	}{
		{"a/#", "a", true}, {"a/#", "a/b/c", true}, {"a/+", "a", false}, {"a/+", "a/b", true},
		{"x", "x/y", false}, {"x/y", "x", false}, {"+/x", "$SYS/x", false}, {"#", "$SYS/x", false},
		{"$SYS/#", "$SYS/x", true}, {"+", "a", true}, {"+", "a/b", false}, {"+/+", "/a", true},
		{"#", "a/b", true}, {"a/b", "a/b", true}, {"a/+/c", "a/b/c", true}, {"a/+/c", "a/b/d", false},
	} {
		if got := Match(tc.filter, tc.name); got != tc.want {
			t.Errorf("Match(%q, %q) = %v, want %v", tc.filter, tc.name, got, tc.want)
		}
	}
}
