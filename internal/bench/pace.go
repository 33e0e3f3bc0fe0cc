package bench

import (
	"context"
	"time"
)

// The --rate schedule has to be kept to the microsecond, because end-to-end
// latency is measured from the scheduled send time: whatever the pacer is
// late by is counted as the broker's latency. Go's timers are not that
// precise when the process is idle: the runtime then waits for the next
// timer in epoll_wait, whose timeout is in whole milliseconds, so a short
// sleep ends up to a millisecond late (runtime/netpoll_epoll.go). At
// 1,000 msg/s that put a uniform 0-1 ms of the load generator's own
// lateness into every figure (p50 ~650 µs against a loopback broker).
//
// So a wait is a Go timer for all but the last coarseSlack of it, and a
// precise sleep (fineSleep: nanosleep with a 1 ns timer slack on Linux) for
// the rest. A precise sleep holds an OS thread (and, while the runtime lets
// it, a P) for its length, so at most fineSleepers publishers sleep that
// way at once; the others use a Go timer, which is as precise while the
// process is busy, as it is with that many publishers on a tight schedule.
const (
	coarseSlack  = 2 * time.Millisecond
	fineSleepers = 2
)

var fineSlots = make(chan struct{}, fineSleepers)

// sleepUntil waits until the run's clock reads t (ns since the epoch). It
// returns false if ctx ended first; the precise part of a wait is at most
// coarseSlack long and is not interrupted.
func (r *run) sleepUntil(ctx context.Context, t int64) bool {
	for {
		d := time.Duration(t - r.now())
		switch {
		case d <= 0:
			return true
		case d > coarseSlack:
			if !sleepCtx(ctx, d-coarseSlack) {
				return false
			}
		default:
			if ctx.Err() != nil {
				return false
			}
			select {
			case fineSlots <- struct{}{}:
				fineSleep(d)
				<-fineSlots
			default:
				if !sleepCtx(ctx, d) {
					return false
				}
			}
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
