package bench

import "math/bits"

// maxSeq bounds the sequence numbers a Tracker accepts. Sequences are dense
// from 0, so the bitset of a publisher grows to seq/8 bytes; a corrupt
// sequence far beyond any real run (2^40 messages from one publisher) is
// ignored rather than allowed to exhaust memory.
const maxSeq = 1 << 40

// Tracker records the deliveries one subscriber receives and counts unique
// messages, duplicates and messages out of order. It keeps one growable
// bitset per publisher, indexed by sequence number.
//
// A Tracker is not safe for concurrent use: the caller serialises calls.
type Tracker struct {
	pubs       []pubSeen
	unique     uint64
	duplicates uint64
	outOfOrder uint64
}

// pubSeen is what a Tracker knows of one publisher.
type pubSeen struct {
	seen    []uint64 // bit seq%64 of word seq/64 is set once seq was received
	highest uint64   // highest seq received; meaningful when any
	any     bool
}

// NewTracker returns a Tracker for messages from publishers 0..publishers-1.
func NewTracker(publishers int) *Tracker {
	return &Tracker{pubs: make([]pubSeen, max(publishers, 0))}
}

// Record records the delivery of message h.Seq of publisher h.Publisher. dup
// is true when this tracker already had that message; outOfOrder is true
// when it is new but its sequence is lower than the highest already received
// from that publisher. A publisher index out of range, or a sequence at or
// beyond 2^40, is ignored: nothing is counted and both are false.
//
// Record does not look at h.Run or h.Warmup: the caller filters foreign and
// warm-up messages.
func (t *Tracker) Record(h Header) (dup, outOfOrder bool) {
	if uint64(h.Publisher) >= uint64(len(t.pubs)) || h.Seq >= maxSeq {
		return false, false
	}
	p := &t.pubs[h.Publisher]
	w := int(h.Seq >> 6)
	bit := uint64(1) << (h.Seq & 63)
	if w >= len(p.seen) {
		p.grow(w + 1)
	}
	if p.seen[w]&bit != 0 {
		t.duplicates++
		return true, false
	}
	p.seen[w] |= bit
	t.unique++
	if p.any && h.Seq < p.highest {
		t.outOfOrder++
		return false, true
	}
	p.highest, p.any = h.Seq, true
	return false, false
}

// grow makes room for at least n words, at least doubling the bitset so that
// growth is amortised.
func (p *pubSeen) grow(n int) {
	size := max(n, 2*len(p.seen), 16)
	seen := make([]uint64, size)
	copy(seen, p.seen)
	p.seen = seen
}

// Counts returns the distinct messages received, the deliveries of a message
// already received, and the distinct messages received after one with a
// higher sequence from the same publisher.
func (t *Tracker) Counts() (unique, duplicates, outOfOrder uint64) {
	return t.unique, t.duplicates, t.outOfOrder
}

// Lost returns how many of the messages publishers sent this tracker never
// received: the sum over publishers p of sent[p] minus the distinct sequences
// below sent[p] received from p. Sequences at or above sent[p] are neither
// lost nor subtracted. A publisher beyond the tracker's range received
// nothing, so all it sent is lost.
func (t *Tracker) Lost(sent []uint64) uint64 {
	var lost uint64
	for p, n := range sent {
		if p >= len(t.pubs) {
			lost += n
			continue
		}
		lost += n - t.pubs[p].countBelow(n)
	}
	return lost
}

// countBelow returns the number of distinct sequences below n received.
func (p *pubSeen) countBelow(n uint64) uint64 {
	var c uint64
	full := n >> 6
	for i, word := range p.seen {
		switch {
		case uint64(i) < full:
			c += uint64(bits.OnesCount64(word))
		case uint64(i) == full:
			mask := uint64(1)<<(n&63) - 1
			c += uint64(bits.OnesCount64(word & mask))
			return c
		default:
			return c
		}
	}
	return c
}
