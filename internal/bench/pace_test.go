package bench

import (
	"context"
	"sync"
	"testing"
	"time"
)

// TestSleepUntil: the --rate pacer never returns before the scheduled time
// (in the precise part of a wait as in the coarse one), and a cancelled
// context ends a long wait.
func TestSleepUntil(t *testing.T) {
	r := &run{epoch: time.Now()}
	ctx := context.Background()
	for _, d := range []time.Duration{0, 50 * time.Microsecond, 700 * time.Microsecond, coarseSlack + time.Millisecond} {
		at := r.now() + int64(d)
		if !r.sleepUntil(ctx, at) {
			t.Fatalf("%v: reported a cancelled context", d)
		}
		if now := r.now(); now < at {
			t.Errorf("%v: returned %v early", d, time.Duration(at-now))
		}
	}

	// More sleepers at once than fineSleepers: the rest use Go timers.
	var wg sync.WaitGroup
	early := make(chan time.Duration, 8)
	for range 8 {
		wg.Go(func() {
			at := r.now() + int64(500*time.Microsecond)
			r.sleepUntil(ctx, at)
			if now := r.now(); now < at {
				early <- time.Duration(at - now)
			}
		})
	}
	wg.Wait()
	close(early)
	for d := range early {
		t.Errorf("a concurrent sleeper returned %v early", d)
	}

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if r.sleepUntil(cancelled, r.now()+int64(time.Hour)) {
		t.Error("a wait of an hour with a cancelled context did not report it")
	}
}
