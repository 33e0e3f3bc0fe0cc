// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: 2023 mochi-mqtt, mochi-co
// SPDX-FileContributor: mochi-co

package mqtt

import (
	"cmp"
	"math"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/mochi-mqtt/server/v2/packets"
)

// Inflight is a map of InflightMessage keyed on packet id.
type Inflight struct {
	sync.RWMutex
	internal            map[uint16]*inflightEntry // internal contains the inflight packets (mqtk: pointers, see inflightPackets)
	last                uint64                    // mqtk: the place of the last message set, see inflightEntry
	receiveQuota        int32                     // remaining inbound qos quota for flow control
	sendQuota           int32                     // remaining outbound qos quota for flow control
	maximumReceiveQuota int32                     // maximum allowed receive quota
	maximumSendQuota    int32                     // maximum allowed send quota
	handedOver          bool                      // mqtk: see HandOver
}

// NewInflights returns a new instance of an Inflight packets map.
func NewInflights() *Inflight {
	return &Inflight{
		internal: map[uint16]*inflightEntry{},
	}
}

// inflightPackets hold the packets of Inflight maps. mqtk: the map held
// Packet values (800 bytes), which a map keeps out of line, so each message
// stored allocated one: two per QoS 1 message routed, its PUBACK's and the
// subscriber's copy. Set takes one from the pool, Delete returns it; no
// pointer to one leaves this file (Get and GetAll return copies).
var inflightPackets = sync.Pool{New: func() any { return new(inflightEntry) }}

// inflightEntry is a packet in flight and its place in the session's
// queue. mqtk: mochi resent a session's queue sorted by the second each
// packet was created in, truncated to 16 bits (uint16(Created)), and within
// a second in a map's random order; MQTT has a client's messages resent in
// the order they were first sent [MQTT-4.6.0-1]. A packet takes the next
// place when its identifier is set, keeps it while it is updated (a resend
// with DUP, the PUBREL that follows a PUBREC, the expiry of one waiting for
// quota), and GetAll and NextImmediate go by place. Places start at 1: a
// store restores the places it kept (SetAt, Seq), and 0 can mean none.
//
// sent is whether a PUBLISH has been written to the client, or a write of
// it attempted (markSent), so that a resumed session resends it with DUP 1
// and sends one queued while the client was away with DUP 0 (mqtk: mochi
// resent the whole queue with DUP 1 [MQTT-4.3.2-2] [MQTT-4.3.3-2]; mqtk's
// dupHook mended that from outside, with a global mutex and a map per
// client ID taken for every QoS 1 and 2 message routed, written and
// acknowledged). A packet a store restores (SetAt) may have been sent.
type inflightEntry struct {
	packets.Packet
	seq  uint64
	sent bool
}

// Set adds or updates an inflight packet by packet id.
func (i *Inflight) Set(m packets.Packet) bool {
	i.Lock()
	defer i.Unlock()
	_, added := i.setLocked(m)
	return added
}

// setLocked is Set with the lock held, which also returns the entry
// (mqtk).
func (i *Inflight) setLocked(m packets.Packet) (*inflightEntry, bool) {
	if p, ok := i.internal[m.PacketID]; ok {
		p.Packet = m
		return p, false
	}
	p := inflightPackets.Get().(*inflightEntry)
	i.last++
	p.Packet, p.seq, p.sent = m, i.last, false
	i.internal[m.PacketID] = p
	return p, true
}

// freeLocked deletes the entry p of id, with the lock held, and gives it
// back to the pool (mqtk).
func (i *Inflight) freeLocked(id uint16, p *inflightEntry) {
	delete(i.internal, id)
	*p = inflightEntry{} // let go of the payload
	inflightPackets.Put(p)
}

// markSent notes that a write of the PUBLISH in flight with the identifier
// id has been attempted (mqtk, see inflightEntry).
func (i *Inflight) markSent(id uint16) {
	i.Lock()
	if p, ok := i.internal[id]; ok {
		p.sent = true
	}
	i.Unlock()
}

// SetAt is Set for a packet a store restores, whose place in the queue is
// seq, as Seq gave it (mqtk); the places of packets set later come after
// it. A seq of 0 (none) is Set's place. The packet may have been sent
// before: it is resent with DUP 1.
func (i *Inflight) SetAt(m packets.Packet, seq uint64) bool {
	i.Lock()
	defer i.Unlock()
	p, added := i.setLocked(m)
	p.sent = true
	if seq != 0 {
		p.seq = seq
		i.last = max(i.last, seq)
	}
	return added
}

// Seq returns the place in the queue of the packet in flight with the
// identifier id (mqtk, see inflightEntry).
func (i *Inflight) Seq(id uint16) (uint64, bool) {
	i.RLock()
	defer i.RUnlock()
	if p, ok := i.internal[id]; ok {
		return p.seq, true
	}
	return 0, false
}

// nextSeq returns the place the next packet set will take: every packet in
// flight now comes before it (mqtk, see Client.resendInflight).
func (i *Inflight) nextSeq() uint64 {
	i.RLock()
	defer i.RUnlock()
	return i.last + 1
}

// typeOf is the type of the packet in flight with id, if there is one
// (mqtk: Get copies the packet).
func (i *Inflight) typeOf(id uint16) (byte, bool) {
	i.RLock()
	defer i.RUnlock()
	m, ok := i.internal[id]
	if !ok {
		return 0, false
	}
	return m.FixedHeader.Type, true
}

// Get returns an inflight packet by packet id.
func (i *Inflight) Get(id uint16) (packets.Packet, bool) {
	i.RLock()
	defer i.RUnlock()

	if m, ok := i.internal[id]; ok {
		return m.Packet, true
	}

	return packets.Packet{}, false
}

// Has reports whether a packet id is in flight. mqtk: where only that was
// asked, Get copied the packet (800 bytes) out, several times for each QoS
// 1 message routed.
func (i *Inflight) Has(id uint16) bool {
	i.RLock()
	defer i.RUnlock()
	_, ok := i.internal[id]
	return ok
}

// Len returns the size of the inflight messages map.
func (i *Inflight) Len() int {
	i.RLock()
	defer i.RUnlock()
	return len(i.internal)
}

// HandOver copies the in-flight messages of a session that another
// connection takes over (mqtk: it replaces Clone): the copy goes to the new
// connection, and from then on this Inflight takes no
// new message (setNew). mqtk: a message routed to the old connection after
// the copy was made went into the old connection's Inflight and was lost.
func (i *Inflight) HandOver() *Inflight {
	c := NewInflights()
	i.Lock()
	defer i.Unlock()
	for k, v := range i.internal {
		m := *v
		c.internal[k] = &m
	}
	c.last = i.last
	i.handedOver = true
	return c
}

// clear deletes every packet in flight, without counting them out or
// telling the hooks: for a connection whose session another connection
// has taken over, with them (HandOver). mqtk.
func (i *Inflight) clear() {
	i.Lock()
	defer i.Unlock()
	for id, p := range i.internal {
		i.freeLocked(id, p)
	}
}

// setNew is Set for a message being queued, unless the Inflight has been
// handed over to another connection (handedOver true; nothing is set).
// mqtk: see HandOver.
func (i *Inflight) setNew(m packets.Packet) (added, handedOver bool) {
	i.Lock()
	defer i.Unlock()
	if i.handedOver {
		return false, true
	}
	_, added = i.setLocked(m)
	return added, false
}

// GetAll returns all the inflight messages, in their order in the queue
// (mqtk: see inflightEntry).
func (i *Inflight) GetAll(immediate bool) []packets.Packet {
	i.RLock()
	defer i.RUnlock()
	e := i.sortedLocked(immediate, math.MaxUint64)
	m := make([]packets.Packet, len(e))
	for k, v := range e {
		m[k] = v.Packet
	}
	return m
}

// getAll is GetAll for the packets placed before before, in entries
// (mqtk).
func (i *Inflight) getAll(immediate bool, before uint64) []inflightEntry {
	i.RLock()
	defer i.RUnlock()
	e := i.sortedLocked(immediate, before)
	m := make([]inflightEntry, len(e))
	for k, v := range e {
		m[k] = *v
	}
	return m
}

// sortedLocked lists, with the lock held, the entries placed before before
// (only those waiting for quota if immediate), in their order in the
// queue (mqtk: see inflightEntry).
func (i *Inflight) sortedLocked(immediate bool, before uint64) []*inflightEntry {
	e := make([]*inflightEntry, 0, len(i.internal))
	for _, v := range i.internal {
		if (!immediate || v.Expiry < 0) && v.seq < before {
			e = append(e, v)
		}
	}
	slices.SortFunc(e, func(a, b *inflightEntry) int { return cmp.Compare(a.seq, b.seq) })
	return e
}

// NextImmediate returns the next inflight packet which is indicated to be sent immediately.
// This typically occurs when the quota has been exhausted, and we need to wait until new quota
// is free to continue sending.
//
// mqtk: it finds the first such packet (GetAll's order) where it called
// GetAll(true), which copied them all into a sorted slice for every packet
// the client sent while it had messages in flight, and took the read lock
// a second time inside its own: a Set or Delete waiting in between (a
// publisher routing a message to this client) deadlocked both.
func (i *Inflight) NextImmediate() (packets.Packet, bool) {
	i.RLock()
	defer i.RUnlock()

	var next *inflightEntry
	for _, v := range i.internal {
		if v.Expiry < 0 && (next == nil || v.seq < next.seq) {
			next = v
		}
	}
	if next == nil {
		return packets.Packet{}, false
	}

	return next.Packet, true
}

// DeleteExpired removes the packets in flight that have expired at now
// (unix seconds), those of MQTT 5 whose expiry has passed and, when
// maximumExpiry is positive, those older than it, and returns copies of
// them. mqtk: ClearExpiredInflights asked GetAll for a sorted copy of every
// packet in flight, every second for every client, and deleted by packet id
// what had expired in that copy. For a subscriber that stopped reading, with
// thousands in flight, that was megabytes a second and milliseconds under
// the lock that every publisher routing a message to it waits for (the p99
// of the other subscribers doubled). This looks under the read lock, and
// deletes under the write lock only what is still expired (a packet id can
// be used again in between).
func (i *Inflight) DeleteExpired(now, maximumExpiry int64) []packets.Packet {
	var ids []uint16
	i.RLock()
	for id, v := range i.internal {
		if v.Expired(now, maximumExpiry) {
			ids = append(ids, id)
		}
	}
	i.RUnlock()
	if len(ids) == 0 {
		return nil
	}

	i.Lock()
	defer i.Unlock()
	m := make([]packets.Packet, 0, len(ids))
	for _, id := range ids {
		if p, ok := i.internal[id]; ok && p.Expired(now, maximumExpiry) {
			m = append(m, p.Packet)
			i.freeLocked(id, p)
		}
	}

	return m
}

// Delete removes an in-flight message from the map. Returns true if the message existed.
func (i *Inflight) Delete(id uint16) bool {
	i.Lock()
	defer i.Unlock()

	p, ok := i.internal[id]
	if ok {
		i.freeLocked(id, p)
	}

	return ok
}

// TakeRecieveQuota reduces the receive quota by 1.
func (i *Inflight) DecreaseReceiveQuota() {
	if atomic.LoadInt32(&i.receiveQuota) > 0 {
		atomic.AddInt32(&i.receiveQuota, -1)
	}
}

// TakeRecieveQuota increases the receive quota by 1.
func (i *Inflight) IncreaseReceiveQuota() {
	if atomic.LoadInt32(&i.receiveQuota) < atomic.LoadInt32(&i.maximumReceiveQuota) {
		atomic.AddInt32(&i.receiveQuota, 1)
	}
}

// ResetReceiveQuota resets the receive quota to the maximum allowed value.
func (i *Inflight) ResetReceiveQuota(n int32) {
	atomic.StoreInt32(&i.receiveQuota, n)
	atomic.StoreInt32(&i.maximumReceiveQuota, n)
}

// DecreaseSendQuota reduces the send quota by 1.
func (i *Inflight) DecreaseSendQuota() {
	if atomic.LoadInt32(&i.sendQuota) > 0 {
		atomic.AddInt32(&i.sendQuota, -1)
	}
}

// IncreaseSendQuota increases the send quota by 1.
func (i *Inflight) IncreaseSendQuota() {
	if atomic.LoadInt32(&i.sendQuota) < atomic.LoadInt32(&i.maximumSendQuota) {
		atomic.AddInt32(&i.sendQuota, 1)
	}
}

// ResetSendQuota resets the send quota to the maximum allowed value.
func (i *Inflight) ResetSendQuota(n int32) {
	atomic.StoreInt32(&i.sendQuota, n)
	atomic.StoreInt32(&i.maximumSendQuota, n)
}
