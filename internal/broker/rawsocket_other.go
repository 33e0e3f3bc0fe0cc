//go:build !linux

package broker

import "syscall"

// rawSockets: rawSocket is not written for this system; connections are
// read and written through the net package, and mochi writes every packet
// from a writer goroutine (no mqtt.DirectWriter).
const rawSockets = false

func rawRead(uintptr, []byte) (int, syscall.Errno)  { return 0, syscall.EINVAL }
func rawWrite(uintptr, []byte) (int, syscall.Errno) { return 0, syscall.EINVAL }
