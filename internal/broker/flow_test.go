package broker

import "testing"

// TestFlowAdmitInOrder: with messages held back for a Receive Maximum, a new
// message is held back behind them even when an acknowledgement has just
// freed quota (before the hook writes what it held back), so it cannot
// overtake them; once nothing is held back, the quota alone decides.
func TestFlowAdmitInOrder(t *testing.T) {
	f := &flow{max: 2, unacked: map[uint16]bool{}}
	for id, want := range map[uint16]bool{1: true, 2: true} {
		if got := f.admit(id); got != want {
			t.Fatalf("admit(%d) = %v, want %v", id, got, want)
		}
	}
	if f.admit(3) {
		t.Fatal("admit(3) beyond a Receive Maximum of 2")
	}
	delete(f.unacked, 1) // PUBACK 1: quota for one more, 3 not yet written
	if f.admit(4) {
		t.Fatal("admit(4) ahead of 3, which was held back first")
	}
	if len(f.held) != 2 || f.held[0].id != 3 || f.held[1].id != 4 {
		t.Fatalf("held back %v, want 3 then 4", f.held)
	}
	f.held = nil // the hook wrote them (next counts them as it takes them)
	f.unacked[3] = true
	delete(f.unacked, 2)
	delete(f.unacked, 3)
	if !f.admit(5) {
		t.Error("admit(5) held back with quota free and nothing held back")
	}
}
