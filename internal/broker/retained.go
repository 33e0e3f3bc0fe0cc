package broker

import (
	"sync"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// retainedHook puts a lock where mochi (v2.7.9) has none: between storing
// a retained message (TopicsIndex.RetainMessage sets the topic's node's
// retainPath) and looking up the retained messages for a new subscription
// (scanMessages reads retainPath without a lock). The race detector finds
// it, and a torn read of that string can crash the broker.
//
// A retained PUBLISH holds the lock, exclusively, from OnPublish until
// mochi has stored the message (OnRetainMessage), or has done with the
// packet; a SUBSCRIBE holds it, shared, from the moment its SUBACK is
// written (mochi looks up the retained messages next) until it has been
// processed. The SUBACK's write is outside the lock, so that a client that
// stopped reading holds up no one. Wills and $SYS topics, which mochi
// retains without a hook beforehand, are not covered.
//
// Not mended: a message retained while a subscription to its topic is
// being made can still reach it twice. mochi subscribes (SUBACK), then
// looks up the retained messages; it stores a retained message, then
// acknowledges it (PUBACK), then sends it on. A message stored before the
// lookup and sent on after the subscription goes both ways. Only a lock
// over both sequences, with the SUBACK and PUBACK writes in them, would
// prevent it, and a client that stopped reading would then stall every
// subscription and retained publish.
type retainedHook struct {
	mqtt.HookBase
	index sync.RWMutex

	mu   sync.Mutex
	held map[*mqtt.Client]bool // the connections holding index: true exclusively
}

func newRetainedHook() *retainedHook { return &retainedHook{held: map[*mqtt.Client]bool{}} }

func (h *retainedHook) ID() string { return "mqtk-retained" }

func (h *retainedHook) Provides(b byte) bool {
	switch b {
	case mqtt.OnPublish, mqtt.OnRetainMessage, mqtt.OnPacketSent, mqtt.OnPacketProcessed, mqtt.OnDisconnect:
		return true
	}
	return false
}

func (h *retainedHook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if pk.FixedHeader.Retain {
		h.index.Lock()
		h.hold(cl, true)
	}
	return pk, nil
}

// OnRetainMessage ends a retained PUBLISH's hold. (mochi calls it for wills
// too, which hold nothing.)
func (h *retainedHook) OnRetainMessage(cl *mqtt.Client, _ packets.Packet, _ int64) {
	h.mu.Lock()
	exclusive, ok := h.held[cl]
	h.mu.Unlock()
	if ok && exclusive {
		h.release(cl)
	}
}

func (h *retainedHook) OnPacketSent(cl *mqtt.Client, pk packets.Packet, _ []byte) {
	if pk.FixedHeader.Type == packets.Suback {
		h.index.RLock()
		h.hold(cl, false)
	}
}

func (h *retainedHook) OnPacketProcessed(cl *mqtt.Client, _ packets.Packet, _ error) { h.release(cl) }

func (h *retainedHook) OnDisconnect(cl *mqtt.Client, _ error, _ bool) { h.release(cl) }

func (h *retainedHook) hold(cl *mqtt.Client, exclusive bool) {
	h.mu.Lock()
	h.held[cl] = exclusive
	h.mu.Unlock()
}

// release lets go of what cl holds, if anything.
func (h *retainedHook) release(cl *mqtt.Client) {
	h.mu.Lock()
	exclusive, ok := h.held[cl]
	delete(h.held, cl)
	h.mu.Unlock()
	switch {
	case !ok:
	case exclusive:
		h.index.Unlock()
	default:
		h.index.RUnlock()
	}
}
