package broker

import (
	"errors"
	"strings"
	"testing"
)

const testACL = `# anonymous clients
topic read public/#
topic   deny    public/private/#

user alice
topic readwrite sensors/#
topic deny sensors/secret/#
topic write cmd/#
topic read  with space/x

user bob
topic read sensors/#
topic deny sensors/secret/#
pattern readwrite clients/%c/#

user admin
topic #
topic $SYS/#

user carol
topic write sensors/#

pattern read users/%u/#
pattern deny users/%u/private/#
pattern write devices/dev-%c/state

user alice
topic read extra/#
`

func TestAccessList(t *testing.T) {
	a, err := ParseAccessList("acl", []byte(testACL))
	if err != nil {
		t.Fatal(err)
	}
	const (
		r = false
		w = true
	)
	for _, tc := range []struct {
		id, user, topic string
		write           bool
		want            bool
	}{
		// anonymous section
		{"c1", "", "public/news", r, true},
		{"c1", "", "public/news", w, false}, // read only
		{"c1", "", "public/#", r, true},
		{"c1", "", "public/private/x", r, false}, // deny
		{"c1", "", "public/private/#", r, false}, // a subscription inside the deny
		{"c1", "", "sensors/a", r, false},
		{"c1", "", "users/c1/x", r, false},  // %u patterns are not for anonymous clients
		{"c1", "", "clients/c1/x", w, true}, // %c patterns are
		// alice, whose two sections merge
		{"a1", "alice", "sensors/a", w, true},
		{"a1", "alice", "sensors/a", r, true},
		{"a1", "alice", "sensors", w, true}, // sensors/# covers its parent
		{"a1", "alice", "sensors/secret", w, false},
		{"a1", "alice", "sensors/secret/x", r, false},
		{"a1", "alice", "cmd/x", w, true},
		{"a1", "alice", "cmd/x", r, false},
		{"a1", "alice", "extra/x", r, true},
		{"a1", "alice", "with space/x", r, true},
		{"a1", "alice", "public/news", r, false}, // the anonymous rules are not hers
		{"a1", "alice", "users/alice/x", r, true},
		{"a1", "alice", "users/alice/private/x", r, false},
		{"a1", "alice", "users/bob/x", r, false},
		// subscriptions: granted if a rule reaches part of them (the
		// deliveries are checked one by one), refused if none does or a
		// deny covers them
		{"b1", "bob", "sensors/#", r, true},
		{"b1", "bob", "sensors/+/temp", r, true},
		{"b1", "bob", "#", r, true},
		{"b1", "bob", "+/temp", r, true},
		{"b1", "bob", "other/#", r, false},
		{"b1", "bob", "$SYS/#", r, false},
		{"b1", "bob", "sensors/secret/#", r, false},
		{"b1", "bob", "sensors/secret/+", r, false},
		{"b1", "bob", "users/bob/#", r, true},
		{"b1", "bob", "users/+/x", r, true},
		{"b1", "bob", "users/carol/#", r, false},
		// patterns apply to every client, whichever section they are in
		{"b1", "bob", "clients/b1/x", w, true},
		{"a1", "alice", "clients/a1/x", w, true},
		{"a1", "alice", "clients/b1/x", w, false},
		{"a1", "alice", "devices/dev-a1/state", w, true}, // %c need not be a whole level, as in mosquitto
		{"a1", "alice", "devices/dev-b1/state", w, false},
		// deny precedence: a deny pattern beats an allowing user rule
		{"x", "admin", "users/admin/private/x", r, false},
		{"x", "admin", "anything/at/all", w, true},
		{"x", "admin", "#", r, true},
		{"x", "admin", "$SYS/broker/uptime", r, true},
		{"x", "admin", "$SYS/#", r, true},
		{"x", "admin", "$other/x", r, false}, // # does not reach $ topics
		// a user with no section gets only the patterns
		{"d1", "dave", "users/dave/x", r, true},
		{"d1", "dave", "sensors/a", r, false},
		// wildcards in client ID or user name: patterns grant nothing
		{"a+", "alice", "sensors/a", w, true},
		{"a+", "alice", "clients/a+/x", w, false},
		{"e1", "ev#l", "users/ev#l/x", r, false},
		{"#", "", "clients/#", r, false},
		// carol writes, but may not read
		{"c2", "carol", "sensors/secret/x", w, true},
		{"c2", "carol", "sensors/x", r, false},
	} {
		if got := a.Allowed(tc.id, tc.user, tc.topic, tc.write); got != tc.want {
			t.Errorf("client %q user %q %q write=%v: got %v, want %v", tc.id, tc.user, tc.topic, tc.write, got, tc.want)
		}
	}
}

func TestAccessListEmpty(t *testing.T) {
	// An ACL file with no rules denies everything, as in mosquitto.
	a, err := ParseAccessList("acl", []byte("# nothing\n\n"))
	if err != nil {
		t.Fatal(err)
	}
	if a.Allowed("c", "", "a", true) || a.Allowed("c", "u", "a", false) {
		t.Error("an empty ACL file allowed access")
	}
}

func TestAccessListSyntax(t *testing.T) {
	for _, tc := range []struct {
		line           string
		topic          string
		access         Access
		deny, anywhere bool
	}{
		{"topic a/b", "a/b", ReadWrite, false, false},
		{"topic read a/b", "a/b", Read, false, false},
		{"topic write a/b", "a/b", Write, false, false},
		{"topic readwrite a/b", "a/b", ReadWrite, false, false},
		{"topic deny a/b", "a/b", ReadWrite, true, false},
		{"  topic   read   a b/c d  \r", "a b/c d", Read, false, false},
		{"topic\tx", "", 0, false, false},
	} {
		a, err := ParseAccessList("acl", []byte(tc.line))
		if tc.topic == "" {
			if err == nil {
				t.Errorf("%q: no error", tc.line)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.line, err)
			continue
		}
		want := Rule{Filter: tc.topic, Access: tc.access, Deny: tc.deny}
		if len(a.anonymous) != 1 || a.anonymous[0] != want {
			t.Errorf("%q: rules %+v, want %+v", tc.line, a.anonymous, want)
		}
	}
}

func TestAccessListErrors(t *testing.T) {
	for _, tc := range []struct {
		file, want string
	}{
		{"topic read a\ntopc read b", `acl:2: unknown keyword "topc"`},
		{"\n\ntopic", "acl:3: topic: no topic"},
		{"pattern read", `acl:1: pattern: no topic after "read"`},
		{"topic deny ", `acl:1: topic: no topic after "deny"`},
		{"topic reed a/b", `acl:1: topic: unknown access "reed"`},
		{"topic read a/#/b", "acl:1: topic: filter \"a/#/b\": # must be the last level"},
		{"topic read a+/b", "a wildcard must occupy a whole level"},
		{"user", "acl:1: user: no user name"},
		{"user   ", "acl:1: user: no user name"},
		{"topic\tread\ta", "fields are separated by spaces"},
		{"\ttopic read a", "fields are separated by spaces"},
		{"TOPIC read a", `unknown keyword "TOPIC"`},
	} {
		_, err := ParseAccessList("acl", []byte(tc.file))
		var pe *ParseError
		if !errors.As(err, &pe) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want a ParseError containing %q", tc.file, err, tc.want)
		}
	}
}

func TestAccessListComments(t *testing.T) {
	a, err := ParseAccessList("acl", []byte("#topic read a\n  # indented\n\t\n\ntopic read b # not a comment\n"))
	if err == nil {
		t.Fatalf("a # inside a topic must be an error, got rules %+v", a.anonymous)
	}
	a, err = ParseAccessList("acl", []byte("#topic read a\n  # indented\n\t\n\ntopic read b\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(a.anonymous) != 1 || a.anonymous[0].Filter != "b" {
		t.Errorf("rules %+v, want only b", a.anonymous)
	}
}

func FuzzParseACL(f *testing.F) {
	f.Add([]byte(testACL))
	for _, s := range []string{"topic", "user x\npattern %u/%c", "topic deny #", "pattern read %c/%u/%%c", "user \n", "topic read a b", "# c\n\ttopic"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := ParseAccessList("fuzz", data)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) || pe.Line < 1 {
				t.Fatalf("error without a line: %v", err)
			}
			return
		}
		for _, user := range []string{"", "x", "alice", "%u"} {
			for _, tp := range []string{"a", "a/b", "#", "+/x", "$SYS/x", "x/%c"} {
				a.Allowed("id", user, tp, false)
				a.Allowed("id/+", user, tp, true)
			}
		}
	})
}
