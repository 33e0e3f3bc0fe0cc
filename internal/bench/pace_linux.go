package bench

import (
	"syscall"
	"time"
)

// prSetTimerSlack is PR_SET_TIMERSLACK from <linux/prctl.h>.
const prSetTimerSlack = 29

// fineSleep sleeps for d in a nanosleep of the calling thread, which the
// kernel ends within the thread's timer slack (50 µs by default; set to
// 1 ns, the least, here). The goroutine may move to another thread between
// the two calls; then that sleep has the default slack, which is still far
// below Go's millisecond. Setting the slack of a runtime thread affects only
// its own timed waits.
func fineSleep(d time.Duration) {
	syscall.RawSyscall(syscall.SYS_PRCTL, prSetTimerSlack, 1, 0)
	ts := syscall.NsecToTimespec(int64(d))
	for syscall.Nanosleep(&ts, &ts) == syscall.EINTR { // the runtime's preemption signal
	}
}
