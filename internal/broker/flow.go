package broker

import (
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// flowHook keeps to the Receive Maximum of MQTT 5 clients: "The Server
// MUST NOT send more than Receive Maximum QoS 1 and QoS 2 PUBLISH packets
// for which it has not received PUBACK, PUBCOMP, or PUBREC with a Reason
// Code of 128 or greater from the Client" [MQTT-3.3.4-9]. mochi (v2.7.9)
// holds back what exceeds it, but
//
//   - a message it sends later, when an acknowledgement frees the quota,
//     it drops from the session's in-flight messages: that message's own
//     acknowledgement then frees nothing, so after a few the client gets no
//     more messages until it reconnects, and if the connection drops first
//     the message is lost; and held-back messages go out in any order
//     within a second;
//   - a resumed session's in-flight messages are all sent at once,
//     whatever the new connection's Receive Maximum.
//
// The hook does the counting instead (mochi is told the client has no
// Receive Maximum): it counts the QoS 1 and 2 PUBLISH packets written on
// each connection and not yet acknowledged, and holds back one that would
// exceed the Receive Maximum (mochi's write of it fails; the message stays
// in the session) to write it, in order, when an acknowledgement comes.
// Resuming a session, mochi resends its in-flight messages in order and
// goes on past a write that is refused (third_party/mochi-server/MQTK.md,
// change 28), so those beyond the Receive Maximum are held back like any
// other, and stay in the session meanwhile. Other packets are never held
// back [MQTT-3.3.4-10].
//
// A new message is held back too while anything older is, or while an
// acknowledgement's quota is being given to what was held (draining): it
// used to be admitted in the moment between the two, ahead of older ones.
// (No test reaches that moment; the Receive Maximum and resumption tests
// show that nothing is held for good.) A message too large for the client
// is counted when it is admitted, like any other; mochi then discards it
// [MQTT-3.1.2-25] and tells OnQosDropped, which frees its quota. (A
// refused write used to leave the packets buffered before it unwritten;
// mochi flushes them now, third_party/mochi-server/MQTK.md change 6.)
type flowHook struct {
	mqtt.HookBase
	mu    sync.Mutex
	flows map[*mqtt.Client]*flow // MQTT 5 connections with a Receive Maximum
	// counting is len(flows), read without mu: while no connection has a
	// Receive Maximum, packets pass without taking mu (one mutex for all
	// connections, taken for every QoS 1 and 2 message written and
	// acknowledged).
	counting atomic.Int64
}

// flow is the send quota of one connection.
type flow struct {
	max     int
	unacked map[uint16]bool // written on this connection, not yet acknowledged
	held    []heldBack      // in the order to write them
	// draining: a goroutine is writing what was held back (drain); one
	// drain at a time keeps them in order.
	draining bool
}

type heldBack struct {
	id     uint16
	resent bool // sent on an earlier connection, maybe: DUP 1
}

// heldBackSize is the Maximum Packet Size flowHook gives a PUBLISH it holds
// back: nothing fits, and mochi's write of it fails before it writes
// anything.
const heldBackSize = 1

func newFlowHook() *flowHook { return &flowHook{flows: map[*mqtt.Client]*flow{}} }

func (h *flowHook) ID() string { return "mqtk-flow" }

func (h *flowHook) Provides(b byte) bool {
	switch b {
	case mqtt.OnSessionEstablish, mqtt.OnPacketEncode, mqtt.OnPacketRead, mqtt.OnQosDropped, mqtt.OnDisconnect:
		return true
	}
	return false
}

// OnSessionEstablish starts counting for an MQTT 5 client that set a
// Receive Maximum (absent, it is 65535: as many as there are Packet
// Identifiers).
func (h *flowHook) OnSessionEstablish(cl *mqtt.Client, _ packets.Packet) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for c := range h.flows {
		// A connection that failed while being set up ends without
		// OnDisconnect.
		if c.Closed() {
			delete(h.flows, c)
		}
	}
	rm := int(cl.Properties.Props.ReceiveMaximum) // mochi caps it at MaximumInflight
	if cl.Properties.ProtocolVersion == 5 && rm > 0 {
		h.flows[cl] = &flow{max: rm, unacked: map[uint16]bool{}}
		// mochi holds nothing back; a session this connection takes over
		// keeps this quota (MQTK.md change 31).
		cl.State.Inflight.ResetSendQuota(0)
	}
	h.counting.Store(int64(len(h.flows)))
}

func (h *flowHook) EncodePacket(cl *mqtt.Client, pk *packets.Packet) {
	if h.counting.Load() == 0 {
		return
	}
	if pk.FixedHeader.Type == packets.Publish && pk.FixedHeader.Qos > 0 {
		h.mu.Lock()
		defer h.mu.Unlock()
		if f := h.flows[cl]; f != nil && !f.admit(pk) {
			pk.Mods.MaxSize = heldBackSize
		}
	}
}

// admit reports whether a PUBLISH may be written now, and counts it; one
// that may not is held back (a resend of a resumed session's queue with
// its DUP flag).
func (f *flow) admit(pk *packets.Packet) bool {
	id := pk.PacketID
	switch {
	case f.unacked[id]:
		return true // counted: held back before, or written again
	case len(f.unacked) < f.max && len(f.held) == 0 && !f.draining:
		// Nothing older waits: a drain in progress has freed quota for
		// what it holds, and goes on with what is held after it.
		f.unacked[id] = true
		return true
	}
	for _, hb := range f.held {
		if hb.id == id {
			return false
		}
	}
	f.held = append(f.held, heldBack{id: id, resent: pk.FixedHeader.Dup})
	return false
}

// PacketRead frees quota for an acknowledgement, and writes what was
// held back.
func (h *flowHook) PacketRead(cl *mqtt.Client, pk *packets.Packet) error {
	switch pk.FixedHeader.Type {
	case packets.Puback, packets.Pubcomp:
	case packets.Pubrec:
		if pk.ReasonCode < 0x80 {
			return nil
		}
	default:
		return nil
	}
	if h.counting.Load() != 0 {
		h.free(cl, pk.PacketID)
	}
	return nil
}

// OnQosDropped forgets a dropped message that was held back: a new
// message may take its Packet Identifier, and must not take its place. It
// frees the quota of a message mochi discarded because it is too large
// for the client (reason code 0x95, MQTK.md change 28): it is never sent,
// so no acknowledgement will free it. (The quota of a message dropped
// after it was sent, when it expires, waits for the acknowledgement,
// which the client still sends.)
func (h *flowHook) OnQosDropped(cl *mqtt.Client, pk packets.Packet) {
	if pk.FixedHeader.Type != packets.Publish || h.counting.Load() == 0 {
		return
	}
	h.mu.Lock()
	if f := h.flows[cl]; f != nil {
		f.held = slices.DeleteFunc(f.held, func(hb heldBack) bool { return hb.id == pk.PacketID })
	}
	h.mu.Unlock()
	if pk.ReasonCode == packets.ErrPacketTooLarge.Code {
		h.free(cl, pk.PacketID)
	}
}

// free frees the quota of the message with the identifier id, and writes
// what was held back, unless another goroutine is writing it already.
func (h *flowHook) free(cl *mqtt.Client, id uint16) {
	h.mu.Lock()
	f := h.flows[cl]
	if f == nil || !f.unacked[id] {
		h.mu.Unlock()
		return
	}
	delete(f.unacked, id)
	if f.draining {
		h.mu.Unlock()
		return // that goroutine's next call to next takes the quota
	}
	f.draining = true
	h.mu.Unlock()
	for {
		next, ok := h.next(cl)
		if !ok {
			return
		}
		// A message too large for the client is discarded (its quota
		// freed through OnQosDropped): go on with the next.
		if err := cl.WritePacket(next); err != nil && !errors.Is(err, packets.ErrPacketTooLarge) {
			h.mu.Lock()
			f.draining = false
			h.mu.Unlock()
			return
		}
	}
}

// next takes the next message held back, if the quota allows, and counts
// it; when there is none, the drain ends.
func (h *flowHook) next(cl *mqtt.Client) (packets.Packet, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	f := h.flows[cl]
	if f == nil {
		return packets.Packet{}, false
	}
	for len(f.held) > 0 && len(f.unacked) < f.max {
		hb := f.held[0]
		f.held = f.held[1:]
		pk, ok := cl.State.Inflight.Get(hb.id)
		if !ok || pk.FixedHeader.Type != packets.Publish {
			continue // acknowledged or dropped meanwhile
		}
		if pk.Expiry > 0 && pk.Expiry < time.Now().Unix() {
			continue // expired: not to be sent [MQTT-3.3.2-5]; mochi drops it
		}
		f.unacked[hb.id] = true
		pk.FixedHeader.Dup = hb.resent
		return pk, true
	}
	f.draining = false
	return packets.Packet{}, false
}

// OnDisconnect forgets a connection's quota; what it held back is still in
// the session.
func (h *flowHook) OnDisconnect(cl *mqtt.Client, _ error, _ bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.flows, cl)
	h.counting.Store(int64(len(h.flows)))
}
