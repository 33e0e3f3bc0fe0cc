//go:build linux && !race

package broker

import (
	"syscall"
	"unsafe"
)

// rawSockets: rawSocket is written for this system.
const rawSockets = true

// rawRead is read(2) on fd, a non-blocking socket, as a raw system call
// (see rawSocket). It returns what read(2) does.
func rawRead(fd uintptr, p []byte) (int, syscall.Errno) {
	n, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	return int(n), e
}

// rawWrite is write(2) on fd, a non-blocking socket, as a raw system call.
// (Under the race detector: rawsocket_race.go.)
func rawWrite(fd uintptr, p []byte) (int, syscall.Errno) {
	n, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	return int(n), e
}
