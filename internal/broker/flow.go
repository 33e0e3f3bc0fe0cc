package broker

import (
	"sync"
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
// Resuming a session, mochi resends its in-flight messages at once and
// drops the connection if a write fails, so for that moment the hook takes
// those beyond the Receive Maximum out of the session, and holds them back.
// Other packets are never held back [MQTT-3.3.4-10].
//
// Not mended: an acknowledgement frees its quota (PacketRead) a moment
// before the hook writes what it held back, and a new message mochi's
// writer brings in that moment is admitted, ahead of older ones still held
// back. Holding every new message back while anything is held looks like
// the cure, but a resumed session's queue is counted at CONNACK together
// with messages routed to the new connection before it (which the writer
// sends only after the resend), and those can then wait for an
// acknowledgement that never comes. And a message too large for the
// client keeps the quota it was counted in, though it is never sent
// ([MQTT-3.1.2-25] says to go on as if it had been). (A refused write used
// to leave the packets buffered before it unwritten; mochi flushes them
// now, third_party/mochi-server/MQTK.md change 6.)
type flowHook struct {
	mqtt.HookBase
	mu    sync.Mutex
	flows map[*mqtt.Client]*flow // MQTT 5 connections with a Receive Maximum
}

// flow is the send quota of one connection.
type flow struct {
	max     int
	unacked map[uint16]bool // written on this connection, not yet acknowledged
	held    []heldBack      // in the order to write them
	// While mochi resends a resumed session's messages: the ones it
	// resends, and the ones beyond the quota, out of the session until it
	// has started.
	resending map[uint16]bool
	out       []outOfSession
}

// outOfSession is a message taken out of the session while it is resumed,
// and its place in the session's queue.
type outOfSession struct {
	pk  packets.Packet
	seq uint64
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
	case mqtt.OnSessionEstablish, mqtt.OnPacketEncode, mqtt.OnQosPublish, mqtt.OnSessionEstablished,
		mqtt.OnPacketRead, mqtt.OnDisconnect:
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
	for c, f := range h.flows {
		// A connection that failed while being set up ends without
		// OnDisconnect.
		if c.Closed() {
			h.end(c, f)
		}
	}
	rm := int(cl.Properties.Props.ReceiveMaximum) // mochi caps it at MaximumInflight
	if cl.Properties.ProtocolVersion != 5 || rm == 0 {
		return
	}
	h.flows[cl] = &flow{max: rm, unacked: map[uint16]bool{}}
	cl.State.Inflight.ResetSendQuota(0) // mochi holds nothing back
}

func (h *flowHook) EncodePacket(cl *mqtt.Client, pk *packets.Packet) {
	switch {
	case pk.FixedHeader.Type == packets.Connack && pk.ReasonCode < 0x80:
		h.connack(cl, *pk)
	case pk.FixedHeader.Type == packets.Publish && pk.FixedHeader.Qos > 0:
		h.mu.Lock()
		defer h.mu.Unlock()
		if f := h.flows[cl]; f != nil && !f.admit(pk.PacketID) {
			pk.Mods.MaxSize = heldBackSize
		}
	}
}

// admit reports whether a PUBLISH may be written now, and counts it; one
// that may not is held back.
func (f *flow) admit(id uint16) bool {
	switch {
	case f.unacked[id]:
		return true // counted: held back before, or written again
	case f.resending[id] || len(f.unacked) < f.max:
		f.unacked[id] = true
		return true
	}
	for _, hb := range f.held {
		if hb.id == id {
			return false
		}
	}
	f.held = append(f.held, heldBack{id: id})
	return false
}

// connack, just before mochi resends a resumed session's messages, takes
// those beyond the quota out of the session.
func (h *flowHook) connack(cl *mqtt.Client, pk packets.Packet) {
	h.mu.Lock()
	defer h.mu.Unlock()
	f := h.flows[cl]
	if f == nil {
		return
	}
	cl.State.Inflight.ResetSendQuota(0) // again: taking over a session resets it
	if !pk.SessionPresent {
		return
	}
	f.resending = map[uint16]bool{}
	n := 0
	var highest uint16
	for _, m := range cl.State.Inflight.GetAll(false) { // in the order mochi resends them
		if m.FixedHeader.Type == packets.Publish {
			n++
			if n > f.max {
				seq, ok := cl.State.Inflight.Seq(m.PacketID)
				if !ok {
					n-- // gone since GetAll (expired): not resent
					continue
				}
				f.out = append(f.out, outOfSession{m, seq})
				f.held = append(f.held, heldBack{id: m.PacketID, resent: true})
				highest = max(highest, m.PacketID)
				continue
			}
		}
		f.resending[m.PacketID] = true
	}
	if len(f.out) == 0 {
		return
	}
	// New messages must not take the identifiers of those out of the
	// session: move mochi's next identifier past them.
	for range 65535 {
		if id, err := cl.NextPacketID(); err != nil || uint16(id) > highest {
			break
		}
	}
	for _, m := range f.out {
		cl.State.Inflight.Delete(m.pk.PacketID)
	}
}

// OnQosPublish, called as mochi resends each message of a resumed session
// (after it has listed them), puts those beyond the quota back in the
// session.
func (h *flowHook) OnQosPublish(cl *mqtt.Client, pk packets.Packet, _ int64, _ int) {
	if pk.FixedHeader.Type == packets.Publish && !pk.FixedHeader.Dup {
		return // a new message, not a resend
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if f := h.flows[cl]; f != nil {
		f.restore(cl)
	}
}

func (f *flow) restore(cl *mqtt.Client) {
	for _, m := range f.out {
		cl.State.Inflight.SetAt(m.pk, m.seq)
	}
	f.out = nil
}

func (h *flowHook) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if f := h.flows[cl]; f != nil {
		f.restore(cl)
		f.resending = nil
	}
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
	h.mu.Lock()
	f := h.flows[cl]
	if f == nil || !f.unacked[pk.PacketID] {
		h.mu.Unlock()
		return nil
	}
	delete(f.unacked, pk.PacketID)
	h.mu.Unlock()
	for {
		next, ok := h.next(cl)
		if !ok {
			break
		}
		if err := cl.WritePacket(next); err != nil {
			break
		}
	}
	return nil
}

// next takes the next message held back, if the quota allows, and counts
// it.
func (h *flowHook) next(cl *mqtt.Client) (packets.Packet, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	f := h.flows[cl]
	for f != nil && len(f.held) > 0 && len(f.unacked) < f.max {
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
	return packets.Packet{}, false
}

func (h *flowHook) OnDisconnect(cl *mqtt.Client, _ error, _ bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if f := h.flows[cl]; f != nil {
		h.end(cl, f)
	}
}

// end forgets a connection's quota; what it held back stays in the session.
func (h *flowHook) end(cl *mqtt.Client, f *flow) {
	f.restore(cl)
	delete(h.flows, cl)
}
