package broker

import (
	"crypto/subtle"
	"strings"
)

// allowed applies the rules to a publish (write) or a subscription or
// delivery (read) on t, a topic name or, for a subscription, a filter. A
// deny rule that covers t wins; otherwise a covering allow rule is needed,
// unless there are no rules at all.
func allowed(rules []Rule, t string, write bool) bool {
	if len(rules) == 0 {
		return true
	}
	need := Read
	if write {
		need = Write
	}
	ok := false
	for _, r := range rules {
		if r.Access&need == 0 || !covers(r.Filter, t) {
			continue
		}
		if r.Deny {
			return false
		}
		ok = true
	}
	return ok
}

// covers reports whether every topic name that t matches is matched by
// rule. For a topic name t that is topic.Match(rule, t); for a
// subscription filter it is what an ACL check of a subscription needs: the
// rule must reach everything the subscription could receive, so "a/#"
// covers "a/#", "a/+/b" and "a", but "a/+" does not cover "a/#" and "a/#"
// does not cover "#". As in matching, a rule that begins with a wildcard
// does not reach topics that begin with '$'.
func covers(rule, t string) bool {
	if strings.HasPrefix(t, "$") && (strings.HasPrefix(rule, "+") || strings.HasPrefix(rule, "#")) {
		return false
	}
	for first := true; ; first = false {
		rl, rrest, rmore := strings.Cut(rule, "/")
		if rl == "#" {
			return true // the rest of t, including its parent level
		}
		tl, trest, tmore := strings.Cut(t, "/")
		switch {
		case tl == "#":
			// Only '#' covers '#', and "+/#" covers a whole-topic "#"
			// (every topic has a first level).
			return first && rl == "+" && rmore && rrest == "#"
		case tl == "+":
			if rl != "+" {
				return false
			}
		case rl != "+" && rl != tl:
			return false
		}
		if !rmore || !tmore {
			// "a/#" covers "a": the parent level of a multi-level wildcard.
			return rmore == tmore || (rmore && rrest == "#")
		}
		rule, t = rrest, trest
	}
}

// shareFilter strips "$share/GROUP/" from a shared subscription, so that
// its ACL check is on the filter the group subscribes to.
func shareFilter(filter string) string {
	if rest, ok := strings.CutPrefix(filter, "$share/"); ok {
		if _, f, ok := strings.Cut(rest, "/"); ok && f != "" {
			return f
		}
	}
	return filter
}

func constantTimeEqual(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}
