// Package topic validates MQTT topic names and filters and matches one
// against the other, as MQTT 5 section 4.7 defines them.
package topic

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// MaxLen is the longest topic or filter MQTT can carry (a two-byte length).
const MaxLen = 65535

// ValidateName checks a topic name that a message is published to.
func ValidateName(name string) error {
	if err := validateString(name); err != nil {
		return err
	}
	if strings.ContainsAny(name, "+#") {
		return fmt.Errorf("topic %q contains a wildcard (+ or #), which only subscriptions may use", name)
	}
	return nil
}

// ValidateFilter checks a subscription filter, a shared one
// ($share/NAME/FILTER) included.
func ValidateFilter(filter string) error {
	if err := validateString(filter); err != nil {
		return err
	}
	if rest, ok := strings.CutPrefix(filter, "$share/"); ok {
		name, f, ok := strings.Cut(rest, "/")
		switch {
		case name == "":
			return fmt.Errorf("filter %q: the share name is empty (use $share/NAME/FILTER)", filter)
		case strings.ContainsAny(name, "+#"):
			return fmt.Errorf("filter %q: the share name %q contains a wildcard", filter, name)
		case !ok || f == "":
			return fmt.Errorf("filter %q: a shared subscription needs a filter after its name (use $share/NAME/FILTER)", filter)
		}
		filter = f
	}
	levels := strings.Split(filter, "/")
	for i, l := range levels {
		switch {
		case l == "#":
			if i != len(levels)-1 {
				return fmt.Errorf("filter %q: # must be the last level", filter)
			}
		case l == "+":
		case strings.ContainsAny(l, "+#"):
			return fmt.Errorf("filter %q: a wildcard must occupy a whole level", filter)
		}
	}
	return nil
}

func validateString(s string) error {
	switch {
	case s == "":
		return errors.New("topic is empty")
	case len(s) > MaxLen:
		return fmt.Errorf("topic is %d bytes, longer than MQTT's limit of %d", len(s), MaxLen)
	case !utf8.ValidString(s):
		return fmt.Errorf("topic %q is not valid UTF-8", s)
	case strings.ContainsRune(s, 0):
		return fmt.Errorf("topic %q contains a NUL character", s)
	}
	return nil
}

// Shared reports whether filter is a shared subscription ($share/NAME/...).
func Shared(filter string) bool { return strings.HasPrefix(filter, "$share/") }

// Match reports whether the topic name matches the filter. Topics that begin
// with '$' are not matched by a filter that begins with a wildcard.
func Match(filter, name string) bool {
	if strings.HasPrefix(name, "$") && (strings.HasPrefix(filter, "+") || strings.HasPrefix(filter, "#")) {
		return false
	}
	for {
		fl, frest, fmore := strings.Cut(filter, "/")
		if fl == "#" {
			return true
		}
		nl, nrest, nmore := strings.Cut(name, "/")
		if fl != "+" && fl != nl {
			return false
		}
		if !fmore || !nmore {
			// "a/#" matches "a": the parent level of a multi-level wildcard.
			return fmore == nmore || (fmore && frest == "#")
		}
		filter, name = frest, nrest
	}
}
