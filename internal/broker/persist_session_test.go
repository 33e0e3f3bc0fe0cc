package broker

import (
	"errors"
	"strings"
	"testing"
	"time"

	"mqtk/internal/mqttc"
)

// storedFor lists the stored records that belong to client ids beginning
// with prefix (keys are the client ID, or it and a NUL and more).
func storedFor(t *testing.T, dir, prefix string) []string {
	t.Helper()
	var mine []string
	for _, k := range storedKeys(t, dir) {
		if _, rest, _ := strings.Cut(k, "/"); strings.HasPrefix(rest, prefix) {
			mine = append(mine, strings.ReplaceAll(k, "\x00", "␀"))
		}
	}
	return mine
}

// subscribers lists the clients subscribed to topic in b's topic index.
func subscribers(b *testBroker, topic string) []string {
	var ids []string
	for id := range b.m.Topics.Subscribers(topic).Subscriptions {
		ids = append(ids, id)
	}
	return ids
}

// cleanSessions connects the kinds of session that end with their
// connection: clean start, and clean start false with no session expiry
// (MQTT 5's session expiry 0); each subscribes to clean/# and has a QoS 1
// and a QoS 2 message delivered.
func cleanSessions(t *testing.T, b *testBroker) map[string]*session {
	t.Helper()
	ss := map[string]*session{
		"clean-start": connect(t, b, "clean-start", false),
		"clean-noexp": dial(t, b, mqttc.Config{ClientID: "clean-noexp", CleanStart: false}, nil),
	}
	for id, s := range ss {
		s.subscribe(t, b, id, "clean/#", 2)
	}
	pub := publisher(t, b)
	publish(t, pub, &mqttc.Message{Topic: "clean/x", Payload: []byte("1"), QoS: 1})
	publish(t, pub, &mqttc.Message{Topic: "clean/x", Payload: []byte("2"), QoS: 2})
	for _, s := range ss {
		s.receive(t)
		s.receive(t)
	}
	return ss
}

// TestPersistCleanSessionsLeaveNothing: a session that ends with its
// connection is not stored, whether it disconnects, is connected when the
// broker stops, or when it crashes; after a restart it has no subscription.
func TestPersistCleanSessionsLeaveNothing(t *testing.T) {
	for _, how := range []string{"disconnect", "close", "crash"} {
		t.Run(how, func(t *testing.T) {
			b := startPersist(t, t.TempDir())
			ss := cleanSessions(t, b)
			if how == "disconnect" {
				for id, s := range ss {
					s.disconnect(t, b, id)
				}
			}
			b = restart(t, b, how == "crash")
			if ids := subscribers(b, "clean/x"); len(ids) > 0 {
				t.Errorf("subscribed to clean/x after the restart: %v", ids)
			}
			for _, id := range []string{"clean-start", "clean-noexp"} {
				if _, ok := b.m.Clients.Get(id); ok {
					t.Errorf("session %s came back after the restart", id)
				}
			}
			b.Close()
			if keys := storedFor(t, b.dir, "clean-"); len(keys) > 0 {
				t.Errorf("stored for clean sessions: %q", keys)
			}
		})
	}
}

// TestPersistSessionEndedByClient: a persistent session taken over by a
// clean start, or ended by a reconnection with no session expiry, is
// forgotten: its queue and subscriptions are not stored.
func TestPersistSessionEndedByClient(t *testing.T) {
	for _, cfg := range []mqttc.Config{{CleanStart: true}, {CleanStart: false}} {
		t.Run(map[bool]string{true: "clean start", false: "no expiry"}[cfg.CleanStart], func(t *testing.T) {
			b := startPersist(t, t.TempDir())
			const id = "ended"
			away(t, b, id, "ended/#", 1)
			publish(t, publisher(t, b), &mqttc.Message{Topic: "ended/x", Payload: []byte("queued"), QoS: 1})

			cfg.ClientID = id
			again := dial(t, b, cfg, nil)
			if again.c.Server().SessionPresent != !cfg.CleanStart {
				t.Errorf("session present = %v", again.c.Server().SessionPresent)
			}
			again.disconnect(t, b, id)
			b = restart(t, b, false)
			if ids := subscribers(b, "ended/x"); len(ids) > 0 {
				t.Errorf("subscribed to ended/x after the restart: %v", ids)
			}
			b.Close()
			if keys := storedFor(t, b.dir, id); len(keys) > 0 {
				t.Errorf("stored for the ended session: %q", keys)
			}
		})
	}
}

// TestPersistUnsubscribe: an unsubscribed filter stays unsubscribed after a
// restart; the others of the session stay subscribed.
func TestPersistUnsubscribe(t *testing.T) {
	b := startPersist(t, t.TempDir())
	const id = "unsub"
	sub := connect(t, b, id, true)
	sub.subscribe(t, b, id, "unsub/keep", 1)
	sub.subscribe(t, b, id, "unsub/drop", 1)
	if err := sub.c.Unsubscribe(waitCtx(t), "unsub/drop"); err != nil {
		t.Fatal(err)
	}
	sub.disconnect(t, b, id)
	b = restart(t, b, true)
	if ids := subscribers(b, "unsub/drop"); len(ids) > 0 {
		t.Errorf("subscribed to unsub/drop after the restart: %v", ids)
	}
	if ids := subscribers(b, "unsub/keep"); len(ids) != 1 || ids[0] != id {
		t.Errorf("subscribed to unsub/keep after the restart: %v, want [%s]", ids, id)
	}
}

// TestPersistRefusedSubscription: a subscription the ACL refused is not
// stored (mochi's bolt hook stored it, with the refusal code as its QoS,
// and a restart granted it).
func TestPersistRefusedSubscription(t *testing.T) {
	acl := []Rule{{Filter: "#", Access: ReadWrite}, {Filter: "secret/#", Access: Read, Deny: true}}
	b := startPersistCfg(t, Config{PersistDir: t.TempDir(), ACL: acl})
	const id = "refused"
	sub := connect(t, b, id, true)
	_, err := sub.c.Subscribe(waitCtx(t), []mqttc.Subscription{{Filter: "open/#", QoS: 1}, {Filter: "secret/#", QoS: 1}}, mqttc.SubscribeOptions{})
	var rejected *mqttc.RejectedError
	if !errors.As(err, &rejected) || rejected.Topic != "secret/#" {
		t.Fatalf("subscribe: %v, want secret/# refused", err)
	}
	b.wait(t, "sub "+id+" open/#", 1)
	sub.disconnect(t, b, id)
	b = restart(t, b, false)
	if ids := subscribers(b, "secret/x"); len(ids) > 0 {
		t.Errorf("subscribed to secret/x after the restart: %v", ids)
	}
	if ids := subscribers(b, "open/x"); len(ids) != 1 {
		t.Errorf("subscribed to open/x after the restart: %v, want [%s]", ids, id)
	}
}

// TestPersistSessionExpiry: a restored session keeps its expiry (mochi's
// bolt hook lost it, and a restored session never expired); once expired it
// is forgotten, subscriptions included, and a new session with its client
// identifier starts empty.
func TestPersistSessionExpiry(t *testing.T) {
	b := startPersist(t, t.TempDir())
	second := uint32(1)
	short := dial(t, b, mqttc.Config{ClientID: "short", SessionExpiry: &second}, nil)
	short.subscribe(t, b, "short", "expiry/#", 1)
	short.disconnect(t, b, "short")
	shortGone := time.Now().Unix()
	long := connect(t, b, "long", true)
	long.subscribe(t, b, "long", "expiry/#", 1)
	long.disconnect(t, b, "long")

	first := b
	b = restart(t, b, false)
	// What is left of its hour: the restart may have crossed a second.
	if cl, ok := b.m.Clients.Get("long"); !ok || !cl.Properties.Props.SessionExpiryIntervalFlag || cl.Properties.Props.SessionExpiryInterval < 3599 || cl.Properties.Props.SessionExpiryInterval > 3600 {
		t.Errorf("session long after the restart: present %v, want expiry 3599-3600", ok)
	}
	// short expires in the new broker, unless it did so in the first, or
	// while it was down (more than its second had passed, in whole
	// seconds as the broker counts them).
	if _, ok := b.m.Clients.Get("short"); ok {
		b.wait(t, "session-expired short", 1)
		// mochi forgets the client just after the hook.
		eventually(t, "the expired session is forgotten", func() bool { _, ok := b.m.Clients.Get("short"); return !ok })
	} else if first.eventCount("session-expired short") == 0 && time.Now().Unix()-shortGone < 1 {
		t.Fatal("session short was lost in the restart before it expired")
	}
	if ids := subscribers(b, "expiry/x"); len(ids) != 1 || ids[0] != "long" {
		t.Errorf("subscribed to expiry/x after short expired: %v, want [long]", ids)
	}
	again := dial(t, b, mqttc.Config{ClientID: "short"}, nil) // clean start false
	if again.c.Server().SessionPresent {
		t.Error("an expired session was present")
	}
	again.disconnect(t, b, "short")
	b.Close()
	if keys := storedFor(t, b.dir, "short"); len(keys) > 0 {
		t.Errorf("stored for the expired session: %q", keys)
	}
}
