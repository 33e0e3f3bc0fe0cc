package broker

import (
	"crypto/subtle"
	"strings"
)

// allowed applies the rules to a publish (write) or a subscription or
// delivery (read) on t, a topic name or, for a subscription, a filter. A
// deny rule that covers t wins; otherwise an allow rule that grants t is
// needed, unless there are no rules at all. grant is reaches (see there),
// or covers for a shared subscription.
func allowed(rules []Rule, t string, write bool, grant func(rule, t string) bool) bool {
	if len(rules) == 0 {
		return true
	}
	need := Read
	if write {
		need = Write
	}
	ok := false
	for _, r := range rules {
		switch {
		case r.Access&need == 0:
		case r.Deny && covers(r.Filter, t):
			return false
		case !r.Deny && grant(r.Filter, t):
			ok = true
		}
	}
	return ok
}

// reaches reports whether an allow rule grants something of t: for a topic
// name, that it matches t (as covers); for a subscription filter, that some
// topic both match. So a subscription to "#" by a client that may read
// "site/#" is granted, and each message is then checked as it is delivered
// (mosquitto 2.0 grants every subscription and checks only deliveries);
// one that could never deliver anything, such as "other/x", is refused, so
// its subscriber hears why.
func reaches(rule, t string) bool {
	wild := func(f string) bool { return strings.HasPrefix(f, "+") || strings.HasPrefix(f, "#") }
	if strings.HasPrefix(t, "$") && wild(rule) || strings.HasPrefix(rule, "$") && wild(t) {
		return false // the one's topics begin with '$', which the other's leading wildcard does not match
	}
	for {
		rl, rrest, rmore := strings.Cut(rule, "/")
		tl, trest, tmore := strings.Cut(t, "/")
		switch {
		case rl == "#" || tl == "#":
			return true // what is left of the other, and its parent level
		case rl != "+" && tl != "+" && rl != tl:
			return false
		}
		if !rmore || !tmore {
			// Both end here, or the one that goes on ends in "/#" (which
			// matches its parent level, where the other ends).
			return rmore == tmore || (rmore && rrest == "#") || (tmore && trest == "#")
		}
		rule, t = rrest, trest
	}
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
