package broker

import (
	"sync"
	"sync/atomic"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// inboundHook mends how mochi (v2.7.9) takes QoS 1 and 2 messages from a
// client. mochi keeps the client's in-flight Packet Identifiers and its own
// in one map, so:
//
//   - a client's PUBLISH with the identifier of a message the broker has
//     sent it and not yet had acknowledged makes mochi forget that message
//     (it takes the PUBLISH for a resend of its own), which is then never
//     resent; yet "The Client and Server assign Packet Identifiers
//     independently of each other" (MQTT 5 §2.2.1, 3.1.1 §2.3.1), and
//     clients count from 1 as servers do. The hook gives such a PUBLISH,
//     and the PUBREL that follows a QoS 2 one, a free identifier, and puts
//     the client's back on the PUBACK, PUBREC and PUBCOMP that answer them,
//     as packetIDHook does for SUBSCRIBE;
//   - a QoS 2 PUBLISH sent again (DUP) before its PUBREL, as a client does
//     after reconnecting, gets a PUBREC with 0x91 "Packet Identifier in
//     use" from mochi, a failure, after which the client gives the message
//     up although the broker took it; MQTT 5 wants a PUBREC and no second
//     delivery [MQTT-4.3.3-10], which the hook answers itself.
//
// The identifiers it lent stay with the session (client ID) until the QoS 2
// flow ends, so a PUBREL resent on the next connection still finds its
// message.
type inboundHook struct {
	mqtt.HookBase
	mu sync.Mutex
	// lent maps, per client ID, the client's Packet Identifier to the one
	// the broker uses instead, and back.
	lent map[string]*lentIDs
	// lending is len(lent), read without mu: while it is 0, a packet whose
	// identifier is not in flight, and every answer, pass without taking
	// mu (one mutex for all connections, which every QoS 1 and 2 message
	// took twice).
	lending atomic.Int64
}

type lentIDs struct {
	in  map[uint16]uint16 // client's identifier -> broker's
	out map[uint16]uint16 // broker's identifier -> client's
}

func newInboundHook() *inboundHook { return &inboundHook{lent: map[string]*lentIDs{}} }

func (h *inboundHook) ID() string { return "mqtk-inbound" }

func (h *inboundHook) Provides(b byte) bool {
	switch b {
	case mqtt.OnPacketRead, mqtt.OnPacketEncode, mqtt.OnDisconnect, mqtt.OnClientExpired:
		return true
	}
	return false
}

// ignored is a packet mochi reads and does nothing with: a PUBACK for a
// message it never sent.
var ignored = packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}}

func (h *inboundHook) PacketRead(cl *mqtt.Client, pk *packets.Packet) error {
	switch pk.FixedHeader.Type {
	case packets.Publish:
		if pk.FixedHeader.Qos == 0 {
			return nil
		}
	case packets.Pubrel:
	default:
		return nil
	}
	if h.lending.Load() == 0 && (pk.FixedHeader.Type == packets.Pubrel || !cl.State.Inflight.Has(pk.PacketID)) {
		return nil // nothing lent, and the identifier is free
	}
	h.mu.Lock()
	dup := h.read(cl, pk)
	h.mu.Unlock()
	if dup {
		// The same QoS 2 message again, before its PUBREL: PUBREC again
		// (through OnPacketEncode, which gives it the client's identifier).
		_ = cl.WritePacket(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pubrec}, PacketID: pk.PacketID})
		*pk = ignored
		return nil
	}
	return nil
}

// read gives pk the identifier the broker knows it by; dup reports a QoS 2
// PUBLISH whose PUBREL has not come yet.
func (h *inboundHook) read(cl *mqtt.Client, pk *packets.Packet) (dup bool) {
	l := h.lent[cl.ID]
	own := pk.PacketID
	if l != nil {
		if lent, ok := l.in[own]; ok {
			pk.PacketID = lent
		}
	}
	if pk.FixedHeader.Type == packets.Pubrel {
		return false
	}
	held, inUse := cl.State.Inflight.Get(pk.PacketID)
	switch {
	case !inUse:
		return false
	case held.FixedHeader.Type == packets.Pubrec:
		// A QoS 2 flow of the client's with this identifier has not ended:
		// the same message again, or (QoS 1) a client error mochi answers.
		return pk.FixedHeader.Qos == 2
	}
	// The identifier is one of the broker's own messages to the client.
	for free := uint16(65535); free > 0; free-- {
		if cl.State.Inflight.Has(free) {
			continue
		}
		if l != nil {
			if _, taken := l.out[free]; taken {
				continue
			}
		}
		if l == nil {
			l = &lentIDs{in: map[uint16]uint16{}, out: map[uint16]uint16{}}
			h.setLent(cl.ID, l)
		}
		l.in[own] = free
		l.out[free] = own
		pk.PacketID = free
		break
	}
	return false
}

// EncodePacket gives the client its own identifier back on the answers to
// its messages, and forgets the loan when the flow ends.
func (h *inboundHook) EncodePacket(cl *mqtt.Client, pk *packets.Packet) {
	t := pk.FixedHeader.Type
	if t != packets.Puback && t != packets.Pubrec && t != packets.Pubcomp || h.lending.Load() == 0 {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	l := h.lent[cl.ID]
	if l == nil {
		return
	}
	own, ok := l.out[pk.PacketID]
	if !ok {
		return
	}
	if t != packets.Pubrec || pk.ReasonCode >= 0x80 {
		delete(l.out, pk.PacketID)
		delete(l.in, own)
		if len(l.out) == 0 {
			h.setLent(cl.ID, nil)
		}
	}
	pk.PacketID = own
}

// OnDisconnect forgets the loans of a session that ends with its
// connection.
func (h *inboundHook) OnDisconnect(cl *mqtt.Client, _ error, expire bool) {
	if expire && !cl.IsTakenOver() {
		h.OnClientExpired(cl)
	}
}

func (h *inboundHook) OnClientExpired(cl *mqtt.Client) {
	h.mu.Lock()
	h.setLent(cl.ID, nil)
	h.mu.Unlock()
}

// setLent sets (nil: deletes) a client's loans, with mu held.
func (h *inboundHook) setLent(id string, l *lentIDs) {
	if l == nil {
		delete(h.lent, id)
	} else {
		h.lent[id] = l
	}
	h.lending.Store(int64(len(h.lent)))
}
