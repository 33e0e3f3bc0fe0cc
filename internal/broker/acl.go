package broker

import (
	"crypto/subtle"

	"mqtk/internal/topic"
)

// allowed applies the rules to a publish (write) or a subscription or
// delivery (read) on name. A deny rule that matches wins; otherwise a
// matching allow rule is needed, unless there are no rules at all.
func allowed(rules []Rule, name string, write bool) bool {
	if len(rules) == 0 {
		return true
	}
	need := Read
	if write {
		need = Write
	}
	ok := false
	for _, r := range rules {
		if r.Access&need == 0 || !topic.Match(r.Filter, name) {
			continue
		}
		if r.Deny {
			return false
		}
		ok = true
	}
	return ok
}

func constantTimeEqual(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}
