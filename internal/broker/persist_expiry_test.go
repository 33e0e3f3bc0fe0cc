package broker

import (
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"mqtk/internal/mqttc"
)

// age makes the store of a stopped broker look d older, as if that broker
// had been down for d: disconnections, and the creation and expiry of
// stored messages, move back by d.
func age(t *testing.T, dir string, d time.Duration) {
	t.Helper()
	s := int64(d / time.Second)
	db, err := bbolt.Open(filepath.Join(dir, persistFile), 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatalf("open the store of a stopped broker: %v", err)
	}
	defer db.Close()
	err = db.Update(func(tx *bbolt.Tx) error {
		// older rewrites each record of bucket through shift, which decodes
		// it into a value of its own.
		older := func(bucket []byte, shift func(v []byte) (any, error)) error {
			return tx.Bucket(bucket).ForEach(func(k, v []byte) error {
				rec, err := shift(v)
				if err != nil {
					return err
				}
				return put(tx, bucket, k, rec)
			})
		}
		if err := older(bSessions, func(v []byte) (any, error) {
			var c sessionRec
			err := json.Unmarshal(v, &c)
			if c.Disconnected > 0 {
				c.Disconnected -= s
			}
			return c, err
		}); err != nil {
			return err
		}
		for _, b := range [][]byte{bInflight, bRetained} {
			if err := older(b, func(v []byte) (any, error) {
				var m message
				err := json.Unmarshal(v, &m)
				m.Created -= s
				if m.Expiry > 0 {
					m.Expiry -= s
				}
				return m, err
			}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestPersistExpiryWhileDown: what expired while the broker was down does
// not come back when it starts again: a session whose expiry passed
// [MQTT-4.1.0-2], a retained message and a queued one whose message expiry
// passed [MQTT-3.3.2-5]. A session that had time left keeps what was left,
// not its whole expiry again. Before, a restart restarted every session's
// expiry (a broker restarted more often than that never expired it), and
// expired messages were restored and delivered to a client that
// reconnected before mochi's once-a-second sweep.
func TestPersistExpiryWhileDown(t *testing.T) {
	b := startPersist(t, t.TempDir())
	minute, hour, half := uint32(60), uint32(3600), uint32(30)
	gone := dial(t, b, mqttc.Config{ClientID: "down-gone", SessionExpiry: &minute}, nil)
	gone.subscribe(t, b, "down-gone", "down/#", 1)
	gone.disconnect(t, b, "down-gone")
	kept := dial(t, b, mqttc.Config{ClientID: "down-kept", SessionExpiry: &hour}, nil)
	kept.subscribe(t, b, "down-kept", "down/#", 1)
	kept.disconnect(t, b, "down-kept")
	pub := publisher(t, b)
	publish(t, pub, &mqttc.Message{Topic: "down/short", Payload: []byte("1"), QoS: 1, Props: mqttc.Properties{MessageExpiry: &half}})
	publish(t, pub, &mqttc.Message{Topic: "down/long", Payload: []byte("2"), QoS: 1})
	publish(t, pub, &mqttc.Message{Topic: "ret/short", Payload: []byte("3"), QoS: 1, Retain: true, Props: mqttc.Properties{MessageExpiry: &half}})
	publish(t, pub, &mqttc.Message{Topic: "ret/long", Payload: []byte("4"), QoS: 1, Retain: true})
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	age(t, b.dir, 100*time.Second)
	b = startPersistCfg(t, b.cfg)
	if _, ok := b.m.Clients.Get("down-gone"); ok {
		t.Error("session down-gone (expiry 60s, down for 100s) came back")
	}
	if cl, ok := b.m.Clients.Get("down-kept"); !ok {
		t.Error("session down-kept (expiry 1h, down for 100s) did not come back")
	} else if left := cl.Properties.Props.SessionExpiryInterval; left > 3500 || left < 3490 {
		t.Errorf("session down-kept has %ds left, want 3500 (3600 less the 100 the broker was down)", left)
	}
	var retained []string
	for _, pk := range b.m.Topics.Retained.GetAll() {
		if pk.TopicName[0] != '$' {
			retained = append(retained, pk.TopicName)
		}
	}
	if len(retained) != 1 || retained[0] != "ret/long" {
		t.Errorf("retained after the restart: %q, want [ret/long]", retained)
	}
	kept = dial(t, b, mqttc.Config{ClientID: "down-kept", SessionExpiry: &hour}, nil)
	kept.expect(t, b, "down/end", []*mqttc.Message{{Topic: "down/long", Payload: []byte("2"), QoS: 1}})
	kept.disconnect(t, b, "down-kept")
	b.Close()
	if keys := storedFor(t, b.dir, "down-gone"); len(keys) > 0 {
		t.Errorf("stored for the expired session: %q", keys)
	}
}
