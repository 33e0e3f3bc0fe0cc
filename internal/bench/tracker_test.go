package bench

import "testing"

// deliver records seqs of publisher p and returns how many were reported as
// duplicates and out of order.
func deliver(tr *Tracker, p uint32, seqs ...uint64) (dups, ooo int) {
	for _, s := range seqs {
		d, o := tr.Record(Header{Publisher: p, Seq: s})
		if d && o {
			panic("both dup and out of order")
		}
		if d {
			dups++
		}
		if o {
			ooo++
		}
	}
	return dups, ooo
}

func TestTrackerRecord(t *testing.T) {
	tests := []struct {
		name              string
		seqs              []uint64
		sent              uint64
		unique, dups, ooo uint64
		lost              uint64
	}{
		{"in order", []uint64{0, 1, 2, 3, 4}, 5, 5, 0, 0, 0},
		{"nothing", nil, 3, 0, 0, 0, 3},
		{"drop some", []uint64{0, 2, 4, 5, 9}, 10, 5, 0, 0, 5},
		{"drop the last", []uint64{0, 1, 2}, 4, 3, 0, 0, 1},
		{"duplicate some", []uint64{0, 1, 1, 2, 0, 2, 2}, 3, 3, 4, 0, 0},
		{"swap two", []uint64{0, 2, 1, 3}, 4, 4, 0, 1, 0},
		{"reversed", []uint64{4, 3, 2, 1, 0}, 5, 5, 0, 4, 0},
		{"late duplicate is not out of order", []uint64{0, 1, 2, 1}, 3, 3, 1, 0, 0},
		{"duplicate of reordered", []uint64{1, 0, 0}, 2, 2, 1, 1, 0},
		{"across words", []uint64{63, 64, 127, 128, 1000, 64, 65}, 1001, 6, 1, 1, 995},
		{"beyond sent not counted", []uint64{0, 1, 7}, 2, 3, 0, 0, 0},
		{"sent zero", []uint64{0}, 0, 1, 0, 0, 0},
		{"sent not a word boundary", []uint64{0, 63, 64}, 64, 3, 0, 0, 62},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := NewTracker(1)
			deliver(tr, 0, tt.seqs...)
			u, d, o := tr.Counts()
			if u != tt.unique || d != tt.dups || o != tt.ooo {
				t.Errorf("Counts() = %d, %d, %d; want %d, %d, %d", u, d, o, tt.unique, tt.dups, tt.ooo)
			}
			if lost := tr.Lost([]uint64{tt.sent}); lost != tt.lost {
				t.Errorf("Lost(%d) = %d, want %d", tt.sent, lost, tt.lost)
			}
		})
	}
}

func TestTrackerRecordResults(t *testing.T) {
	tr := NewTracker(1)
	steps := []struct {
		seq      uint64
		dup, ooo bool
	}{
		{0, false, false},
		{2, false, false},
		{1, false, true},
		{2, true, false},
		{1, true, false},
		{3, false, false},
	}
	for _, s := range steps {
		dup, ooo := tr.Record(Header{Seq: s.seq})
		if dup != s.dup || ooo != s.ooo {
			t.Errorf("Record(seq %d) = %v, %v; want %v, %v", s.seq, dup, ooo, s.dup, s.ooo)
		}
	}
}

func TestTrackerPublishers(t *testing.T) {
	tr := NewTracker(3)
	// Publishers are independent: the same seq from each is not a duplicate,
	// and a low seq of one after a high seq of another is in order.
	deliver(tr, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9)
	deliver(tr, 1, 0, 1, 2)
	deliver(tr, 2, 0, 2, 1, 1) // one out of order, one duplicate
	deliver(tr, 1, 4)          // 3 lost
	if d, o := deliver(tr, 3, 0, 1); d != 0 || o != 0 {
		t.Errorf("publisher out of range reported dup %d, ooo %d", d, o)
	}
	if d, o := deliver(tr, 1<<31, 0); d != 0 || o != 0 {
		t.Errorf("huge publisher reported dup %d, ooo %d", d, o)
	}
	u, d, o := tr.Counts()
	if u != 10+4+3 || d != 1 || o != 1 {
		t.Errorf("Counts() = %d, %d, %d; want 17, 1, 1", u, d, o)
	}
	tests := []struct {
		sent []uint64
		want uint64
	}{
		{[]uint64{10, 5, 3}, 0 + 1 + 0},
		{[]uint64{12, 5, 3}, 2 + 1 + 0},
		{[]uint64{10, 6, 5}, 0 + 2 + 2},
		{[]uint64{10}, 0},              // only publisher 0
		{[]uint64{10, 5, 3, 7}, 1 + 7}, // publisher 3 was ignored: all lost
		{[]uint64{0, 0, 0}, 0},
		{nil, 0},
	}
	for _, tt := range tests {
		if got := tr.Lost(tt.sent); got != tt.want {
			t.Errorf("Lost(%v) = %d, want %d", tt.sent, got, tt.want)
		}
	}
}

func TestTrackerIgnoresHugeSeq(t *testing.T) {
	tr := NewTracker(1)
	if d, o := tr.Record(Header{Seq: 1<<64 - 1}); d || o {
		t.Errorf("Record(huge seq) = %v, %v", d, o)
	}
	if u, d, o := tr.Counts(); u+d+o != 0 {
		t.Errorf("huge seq was counted: %d, %d, %d", u, d, o)
	}
}

func TestTrackerZeroPublishers(t *testing.T) {
	for _, n := range []int{0, -1} {
		tr := NewTracker(n)
		tr.Record(Header{})
		if u, _, _ := tr.Counts(); u != 0 {
			t.Errorf("NewTracker(%d) counted a message", n)
		}
		if got := tr.Lost([]uint64{4}); got != 4 {
			t.Errorf("NewTracker(%d).Lost([4]) = %d, want 4", n, got)
		}
	}
}

func TestTrackerLarge(t *testing.T) {
	// 100,000 messages from each of 4 publishers, every 10th dropped, every
	// 7th delivered twice, every pair (2k, 2k+1) with k%50 == 0 swapped.
	const n = 100_000
	tr := NewTracker(4)
	var wantUnique, wantDups, wantOOO uint64
	for p := uint32(0); p < 4; p++ {
		for s := uint64(0); s < n; s++ {
			seq := s
			if (s/2)%50 == 0 {
				seq = s ^ 1
			}
			if seq%10 == 9 {
				continue
			}
			_, o := tr.Record(Header{Publisher: p, Seq: seq})
			wantUnique++
			if seq%2 == 0 && (seq/2)%50 == 0 && seq%10 != 9 {
				// seq = 2k arrives after 2k+1, unless 2k+1 was dropped.
				if (seq+1)%10 != 9 {
					wantOOO++
					if !o {
						t.Fatalf("publisher %d seq %d not reported out of order", p, seq)
					}
				}
			}
			if seq%7 == 0 {
				if d, _ := tr.Record(Header{Publisher: p, Seq: seq}); !d {
					t.Fatalf("publisher %d seq %d not reported duplicate", p, seq)
				}
				wantDups++
			}
		}
	}
	u, d, o := tr.Counts()
	if u != wantUnique || d != wantDups || o != wantOOO {
		t.Errorf("Counts() = %d, %d, %d; want %d, %d, %d", u, d, o, wantUnique, wantDups, wantOOO)
	}
	if got, want := tr.Lost([]uint64{n, n, n, n}), uint64(4*n/10); got != want {
		t.Errorf("Lost = %d, want %d", got, want)
	}
}

func TestTrackerRecordAllocs(t *testing.T) {
	tr := NewTracker(2)
	var seq uint64
	// Growth doubles the bitset, so allocations are amortised to nothing.
	n := testing.AllocsPerRun(100_000, func() {
		tr.Record(Header{Publisher: uint32(seq & 1), Seq: seq >> 1})
		seq++
	})
	if n != 0 {
		t.Errorf("Record: %v allocations per run, want 0", n)
	}
}

func BenchmarkTrackerRecord(b *testing.B) {
	tr := NewTracker(16)
	b.ReportAllocs()
	var i uint64
	for b.Loop() {
		tr.Record(Header{Publisher: uint32(i % 16), Seq: i / 16})
		i++
	}
}
