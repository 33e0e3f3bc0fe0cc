package mqttc

import (
	"errors"
	"io"
)

// noStore is the packet store of paho.golang's session state when nothing
// needs to be stored. paho keeps a serialised copy of every unacknowledged
// QoS 1 and 2 packet, to resend it when the same State reconnects; a
// v5Client never reconnects (each Dial has a State of its own, and the
// broker keeps a persistent session), so the copies were never read, and
// making them cost a sixth of a publishing client's CPU.
type noStore struct{}

func (noStore) Put(uint16, byte, io.WriterTo) error { return nil }
func (noStore) Get(uint16) (io.ReadCloser, error) {
	return nil, errors.New("mqttc: no packets are stored")
}
func (noStore) Delete(uint16) error     { return nil }
func (noStore) Quarantine(uint16) error { return nil }
func (noStore) List() ([]uint16, error) { return nil, nil }
func (noStore) Reset() error            { return nil }
