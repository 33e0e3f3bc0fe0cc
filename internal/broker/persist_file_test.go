package broker

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"mqtk/internal/mqttc"
)

// TestPersistCloseReleasesStore: Close leaves the database closed, complete
// and unlocked, with the sessions that were connected at the time.
func TestPersistCloseReleasesStore(t *testing.T) {
	b := startPersist(t, t.TempDir())
	publish(t, publisher(t, b), &mqttc.Message{Topic: "flush/r", Payload: []byte("r"), QoS: 1, Retain: true})
	const id = "flush-sub"
	sub := connect(t, b, id, true)
	sub.subscribe(t, b, id, "flush/#", 1)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	keys := storedKeys(t, b.dir) // fails unless the file is unlocked
	for _, want := range []string{"retained/flush/r", "sessions/" + id, "subscriptions/" + id + "\x00flush/#"} {
		if !slices.Contains(keys, want) {
			t.Errorf("%q is not stored; the store has %q", want, keys)
		}
	}
}

// TestPersistStoreInUse: a second broker on a directory in use fails at
// once with an error that says so, and leaves the first one working.
func TestPersistStoreInUse(t *testing.T) {
	dir := t.TempDir()
	b := startPersist(t, dir)
	second, err := startPersistErr(Config{PersistDir: dir})
	if err == nil {
		second.Close()
		t.Fatal("a second broker started on the same --persist directory")
	}
	if !strings.Contains(err.Error(), "in use by another broker") || !strings.Contains(err.Error(), filepath.Join(dir, persistFile)) {
		t.Errorf("error %q does not say the store is in use", err)
	}
	publish(t, publisher(t, b), &mqttc.Message{Topic: "inuse/r", Payload: []byte("still here"), QoS: 1, Retain: true})
	b = restart(t, b, false)
	if got := retained(t, b, "inuse/r", "inuse-end"); len(got) != 1 || string(got[0].Payload) != "still here" {
		t.Errorf("after the failed second start, the first broker's store has %v", got)
	}
}

// TestPersistUnusableDir: a --persist path that cannot be a directory is an
// error at start.
func TestPersistUnusableDir(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if b, err := startPersistErr(Config{PersistDir: file}); err == nil {
		b.Close()
		t.Fatal("started with a file as the persist directory")
	} else if !strings.Contains(err.Error(), file) {
		t.Errorf("error %q does not name %s", err, file)
	}
}
