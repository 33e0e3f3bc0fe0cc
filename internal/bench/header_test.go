package bench

import (
	"bytes"
	"testing"
)

func TestHeaderRoundTrip(t *testing.T) {
	for _, h := range []Header{
		{},
		{Run: 1, Publisher: 2, Seq: 3, Sent: 4},
		{Run: 0xdeadbeef, Publisher: 0xffffffff, Seq: 1<<64 - 1, Sent: -1, Warmup: true},
		{Run: 7, Publisher: 9, Seq: 1 << 40, Sent: 1<<63 - 1},
	} {
		b := make([]byte, HeaderSize+10)
		for i := range b {
			b[i] = 0xaa
		}
		h.Put(b)
		if !bytes.Equal(b[HeaderSize:], bytes.Repeat([]byte{0xaa}, 10)) {
			t.Errorf("Put(%+v) wrote past HeaderSize: % x", h, b)
		}
		got, ok := ParseHeader(b)
		if !ok || got != h {
			t.Errorf("ParseHeader(Put(%+v)) = %+v, %v", h, got, ok)
		}
	}
}

func TestHeaderLayout(t *testing.T) {
	b := make([]byte, HeaderSize)
	Header{Run: 0x01020304, Publisher: 0x05060708, Seq: 0x090a0b0c0d0e0f10, Sent: 0x1112131415161718, Warmup: true}.Put(b)
	want := []byte{
		'm', 'q', 't', 'k',
		0x01, 0x02, 0x03, 0x04,
		0x05, 0x06, 0x07, 0x08,
		0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10,
		0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18,
		0x01,
	}
	if !bytes.Equal(b, want) {
		t.Errorf("Put wrote\n% x\nwant\n% x", b, want)
	}
	Header{}.Put(b)
	if b[28] != 0 {
		t.Errorf("flags without warm-up = %#x, want 0", b[28])
	}
}

func TestParseHeaderRejects(t *testing.T) {
	good := make([]byte, HeaderSize)
	Header{Seq: 5}.Put(good)
	tests := []struct {
		name string
		b    []byte
	}{
		{"nil", nil},
		{"empty", []byte{}},
		{"magic only", []byte("mqtk")},
		{"one short", good[:HeaderSize-1]},
		{"wrong magic", append([]byte("MQTK"), good[4:]...)},
		{"other text", []byte("hello, this is not a benchmark message")},
	}
	for _, tt := range tests {
		if h, ok := ParseHeader(tt.b); ok || h != (Header{}) {
			t.Errorf("%s: ParseHeader = %+v, %v; want zero, false", tt.name, h, ok)
		}
	}
	// Trailing payload and unknown flag bits are fine.
	long := append(append([]byte{}, good...), "padding"...)
	long[28] = 0xfe
	if h, ok := ParseHeader(long); !ok || h != (Header{Seq: 5}) {
		t.Errorf("ParseHeader(long, flags 0xfe) = %+v, %v", h, ok)
	}
}

func TestPutShortPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("Put into a short buffer did not panic")
		}
	}()
	Header{}.Put(make([]byte, HeaderSize-1))
}

func TestHeaderAllocs(t *testing.T) {
	b := make([]byte, HeaderSize)
	var sink Header
	n := testing.AllocsPerRun(1000, func() {
		Header{Run: 1, Publisher: 2, Seq: 3, Sent: 4, Warmup: true}.Put(b)
		sink, _ = ParseHeader(b)
	})
	if n != 0 {
		t.Errorf("Put+ParseHeader: %v allocations per run, want 0", n)
	}
	_ = sink
}

func BenchmarkHeader(b *testing.B) {
	buf := make([]byte, 100)
	b.ReportAllocs()
	var seq uint64
	for b.Loop() {
		Header{Run: 42, Publisher: 3, Seq: seq, Sent: int64(seq)}.Put(buf)
		h, ok := ParseHeader(buf)
		if !ok || h.Seq != seq {
			b.Fatal("round trip failed")
		}
		seq++
	}
}
