//go:build !linux

package bench

import "time"

// fineSleep is time.Sleep where no more precise sleep is known; there the
// --rate schedule is as precise as Go's timers.
func fineSleep(d time.Duration) { time.Sleep(d) }
