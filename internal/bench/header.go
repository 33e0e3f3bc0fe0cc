package bench

import "encoding/binary"

// magic opens every benchmark payload.
const magic = "mqtk"

// flagWarmup is bit 0 of the flags byte: a warm-up message.
const flagWarmup = 1 << 0

// Put writes h as the HeaderSize bytes at the start of b, in the layout
// documented at HeaderSize. It panics if len(b) < HeaderSize.
func (h Header) Put(b []byte) {
	_ = b[HeaderSize-1] // one bounds check
	copy(b[0:4], magic)
	binary.BigEndian.PutUint32(b[4:8], h.Run)
	binary.BigEndian.PutUint32(b[8:12], h.Publisher)
	binary.BigEndian.PutUint64(b[12:20], h.Seq)
	binary.BigEndian.PutUint64(b[20:28], uint64(h.Sent))
	var flags byte
	if h.Warmup {
		flags |= flagWarmup
	}
	b[28] = flags
}

// ParseHeader decodes the header at the start of b. It reports false when b
// is shorter than HeaderSize or does not start with the magic "mqtk": the
// payload is not a benchmark message. Flag bits other than warm-up are
// ignored.
func ParseHeader(b []byte) (Header, bool) {
	if len(b) < HeaderSize || string(b[0:4]) != magic {
		return Header{}, false
	}
	return Header{
		Run:       binary.BigEndian.Uint32(b[4:8]),
		Publisher: binary.BigEndian.Uint32(b[8:12]),
		Seq:       binary.BigEndian.Uint64(b[12:20]),
		Sent:      int64(binary.BigEndian.Uint64(b[20:28])),
		Warmup:    b[28]&flagWarmup != 0,
	}, true
}
