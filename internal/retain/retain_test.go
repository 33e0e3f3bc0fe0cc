package retain

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"mqtk/internal/broker"
	"mqtk/internal/brokertest"
	"mqtk/internal/mqttc"
)

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

// TestRunEachVersion collects and clears over MQTT 5, 3.1.1 and 3.1: the
// collection relies on nothing MQTT 5 alone has (retain handling 0 is the
// 3.1.1 behaviour, and a 3.1.1 broker clears the retain flag of live
// messages too).
func TestRunEachVersion(t *testing.T) {
	b := brokertest.Start(t, broker.Config{AllowAnonymous: true})
	u, err := mqttc.ParseURL(b.URL)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []int{mqttc.V5, mqttc.V311, mqttc.V31} {
		t.Run(mqttc.VersionName(v), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			cfg := mqttc.Config{Endpoint: u.Endpoint, ProtocolVersion: v, CleanStart: true, ClientID: "rc" + strconv.Itoa(v)}
			pub, err := mqttc.Dial(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			prefix := "v" + strconv.Itoa(v) + "/"
			for _, tp := range []string{"a", "b/c", "keep/x"} {
				if err := pub.Publish(ctx, &mqttc.Message{Topic: prefix + tp, Payload: []byte("x"), QoS: 1, Retain: true}); err != nil {
					t.Fatal(err)
				}
			}
			_ = pub.Disconnect(ctx)
			var outcomes []string
			rep, err := Run(ctx, Options{
				Config: cfg, Scope: Scope{Filters: []string{prefix + "#"}, Exclude: []string{prefix + "keep/#"}},
				Quiet: 200 * time.Millisecond, QoS: 1,
				OnOutcome: func(o Outcome) { outcomes = append(outcomes, o.Topic+" "+string(o.Status)) },
			})
			if err != nil {
				t.Fatal(err)
			}
			slices.Sort(outcomes)
			want := []string{prefix + "a cleared", prefix + "b/c cleared", prefix + "keep/x excluded"}
			if !slices.Equal(outcomes, want) || rep.Cleared != 2 || rep.Excluded != 1 || !rep.Done {
				t.Errorf("outcomes %q, report %+v", outcomes, rep)
			}
		})
	}
}

// TestRunPassLimit: a run against a client that retains a new topic under
// the filter before every clear ends after MaxPasses passes, the topics
// the last check found reported as found, not cleared.
func TestRunPassLimit(t *testing.T) {
	b := brokertest.Start(t, broker.Config{AllowAnonymous: true})
	u, err := mqttc.ParseURL(b.URL)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg := mqttc.Config{Endpoint: u.Endpoint, CleanStart: true, ClientID: "pl"}
	pubCfg := cfg
	pubCfg.ClientID = "pl-pub"
	pub, err := mqttc.Dial(ctx, pubCfg)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Disconnect(ctx)
	retainNew := func(n int) error {
		return pub.Publish(ctx, &mqttc.Message{Topic: "pl/new" + strconv.Itoa(n), Payload: []byte("x"), QoS: 1, Retain: true})
	}
	if err := retainNew(0); err != nil {
		t.Fatal(err)
	}
	var outcomes []string
	rep, err := Run(ctx, Options{
		Config: cfg, Scope: Scope{Filters: []string{"pl/#"}}, Quiet: 100 * time.Millisecond, QoS: 1, MaxPasses: 3,
		Confirm: func(_ context.Context, c Confirmation) (bool, error) {
			return true, retainNew(c.Pass) // one more for the next check
		},
		OnOutcome: func(o Outcome) { outcomes = append(outcomes, fmt.Sprintf("%s %s %d", o.Topic, o.Status, o.Pass)) },
	})
	var limit *PassLimitError
	if !errors.As(err, &limit) || limit.Passes != 3 || limit.Left != 1 {
		t.Fatalf("Run: %v, want the pass limit (3) with 1 left", err)
	}
	want := []string{"pl/new0 cleared 1", "pl/new1 cleared 2", "pl/new2 cleared 3", "pl/new3 found 4"}
	if !slices.Equal(outcomes, want) || rep.Passes != 3 || rep.Cleared != 3 || rep.Found != 4 || rep.Done {
		t.Errorf("outcomes %q, report %+v", outcomes, rep)
	}
}
