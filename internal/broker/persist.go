package broker

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/storage/bolt"
	"go.etcd.io/bbolt"
)

// persistFile is the database inside --persist DIR.
const persistFile = "mqtk.db"

// addPersistence stores retained messages, sessions, their subscriptions
// and in-flight QoS 1/2 messages in DIR with mochi's bbolt storage hook.
// bbolt commits every change in its own fsync'ed transaction, so what the
// broker acknowledged survives a kill -9.
func addPersistence(m *mqtt.Server, dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("--persist: %w", err)
	}
	return m.AddHook(new(bolt.Hook), &bolt.Options{
		Path: filepath.Join(dir, persistFile),
		// Another broker holding the file makes us fail at once, not hang.
		Options: &bbolt.Options{Timeout: time.Second},
	})
}
