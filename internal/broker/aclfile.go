package broker

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"mqtk/internal/topic"
)

// An ACL file is mosquitto's acl_file (man mosquitto.conf), read as
// mosquitto 2.0.11 reads it:
//
//	# a comment (the line's first character is '#')
//	topic [read|write|readwrite|deny] TOPIC   rules before any user line are for anonymous clients
//	user NAME                                 the rules after it, up to the next user line, are NAME's
//	pattern [read|write|readwrite|deny] TOPIC for every client, with %c (client ID) and %u (user name)
//
// The access defaults to readwrite. Fields are separated by spaces; the
// topic is the rest of the line, so it may contain spaces, and a user name
// likewise. Lines for the same user name are merged, wherever they are.
//
// A client with a user name gets its user's rules (none if the file has no
// section for it), one without gets the anonymous rules, and every client
// gets the patterns, except those using %u for a client without a user
// name. mosquitto 2.0.11 grants every SUBSCRIBE and applies the read rules
// to each delivered message; mqtk does that too, but refuses a
// subscription no rule lets anything through, or that a deny rule covers
// entirely, so that its subscriber hears why (see AccessList.Allowed).

// AccessList is a parsed ACL file.
type AccessList struct {
	anonymous []Rule
	users     map[string][]Rule
	patterns  []pattern
}

type pattern struct {
	Rule
	user bool // uses %u, so applies only to clients with a user name
}

// LoadAccessList reads and parses an ACL file.
func LoadAccessList(path string) (*AccessList, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParseAccessList(path, data)
}

// ParseAccessList parses the contents of an ACL file; name is used in
// errors, which say file:line.
func ParseAccessList(name string, data []byte) (*AccessList, error) {
	a := &AccessList{users: map[string][]Rule{}}
	user := ""
	for i, line := range strings.Split(string(data), "\n") {
		fail := func(format string, args ...any) error {
			return &ParseError{File: name, Line: i + 1, Err: fmt.Errorf(format, args...)}
		}
		line = strings.TrimRight(line, blanks)
		if s := strings.TrimLeft(line, " \t"); s == "" || s[0] == '#' {
			continue
		}
		keyword, rest, _ := strings.Cut(strings.TrimLeft(line, " "), " ")
		switch keyword {
		case "topic", "pattern":
			r, err := parseACLRule(strings.TrimLeft(rest, " "))
			if err != nil {
				return nil, fail("%s: %v", keyword, err)
			}
			switch {
			case keyword == "pattern":
				a.patterns = append(a.patterns, pattern{Rule: r, user: strings.Contains(r.Filter, "%u")})
			case user == "":
				a.anonymous = append(a.anonymous, r)
			default:
				a.users[user] = append(a.users[user], r)
			}
		case "user":
			user = strings.Trim(rest, blanks)
			if user == "" {
				return nil, fail("user: no user name")
			}
			if _, ok := a.users[user]; !ok {
				a.users[user] = nil
			}
		default:
			hint := ""
			if strings.ContainsAny(keyword, "\t") {
				hint = " (fields are separated by spaces, not tabs)"
			}
			return nil, fail("unknown keyword %q: a line is topic, pattern, user or a # comment%s", keyword, hint)
		}
	}
	return a, nil
}

// parseACLRule parses "[ACCESS] TOPIC".
func parseACLRule(s string) (Rule, error) {
	if s == "" {
		return Rule{}, errors.New("no topic")
	}
	r := Rule{Access: ReadWrite}
	access, filter, ok := strings.Cut(s, " ")
	filter = strings.Trim(filter, blanks)
	if !ok || filter == "" {
		// One word is the topic, as in mosquitto; but a lone access
		// word is far more likely a forgotten topic than a topic.
		switch access {
		case "read", "write", "readwrite", "deny":
			return Rule{}, fmt.Errorf("no topic after %q", access)
		}
		filter, access = access, ""
	}
	switch access {
	case "", "readwrite":
	case "read":
		r.Access = Read
	case "write":
		r.Access = Write
	case "deny":
		r.Deny = true
	default:
		return Rule{}, fmt.Errorf("unknown access %q: use read, write, readwrite or deny", access)
	}
	if err := topic.ValidateFilter(filter); err != nil {
		return Rule{}, err
	}
	r.Filter = filter
	return r, nil
}

// Allowed reports whether a client (its ID and user name, "" for an
// anonymous client) may publish (write) or receive (read) on t: a topic
// name, or for a subscription its filter.
//
// A deny rule that covers t refuses, whether it is the client's own or a
// pattern. Otherwise the client's own rules are tried, then the patterns;
// the first that covers t and grants the access allows it. A client whose
// ID or user name contains + or # gets nothing from patterns (mosquitto's
// defence against CVE-2017-7650). With no allowing rule, access is denied.
//
// A rule covers a topic name it matches. A subscription is allowed by a
// rule that reaches part of what it could receive ("topic read a/#"
// allows "a/#", "a/+/b" and "#", not "b/#"), each message being checked as
// it is delivered, and refused by a deny rule only if that covers it all;
// a deny rule that covers part of it (deny a/secret/# against a
// subscription to a/#) filters the deliveries instead. (The broker holds a
// shared subscription to more: a rule must cover all of it.)
func (a *AccessList) Allowed(clientID, username, t string, write bool) bool {
	return a.allowed(clientID, username, t, write, reaches)
}

// allowed is Allowed with the allow rules' test: reaches, or covers for a
// shared subscription (see authHook.permit).
func (a *AccessList) allowed(clientID, username, t string, write bool, grant func(rule, t string) bool) bool {
	need := Read
	if write {
		need = Write
	}
	own := a.anonymous
	if username != "" {
		own = a.users[username]
	}
	unsafe := strings.ContainsAny(clientID, "+#") || strings.ContainsAny(username, "+#")
	var pats []Rule
	if !unsafe && len(a.patterns) > 0 {
		subst := strings.NewReplacer("%c", clientID, "%u", username)
		for _, p := range a.patterns {
			if p.user && username == "" {
				continue
			}
			r := p.Rule
			r.Filter = subst.Replace(r.Filter)
			pats = append(pats, r)
		}
	}
	for _, rules := range [][]Rule{own, pats} {
		for _, r := range rules {
			if r.Deny && covers(r.Filter, t) {
				return false
			}
		}
	}
	for _, rules := range [][]Rule{own, pats} {
		for _, r := range rules {
			if !r.Deny && r.Access&need != 0 && grant(r.Filter, t) {
				return true
			}
		}
	}
	return false
}

// hasUsers reports whether the file has any user section.
func (a *AccessList) hasUsers() bool { return len(a.users) > 0 }
