//go:build linux && race

package broker

import "syscall"

// rawSockets: rawSocket is written for this system.
const rawSockets = true

// rawRead is rawsocket_linux.go's, through syscall.Read, which tells the
// race detector what it writes (and goes through the runtime's syscall
// entry: tests run with -race, and the detector must see socket I/O).
func rawRead(fd uintptr, p []byte) (int, syscall.Errno) {
	n, err := syscall.Read(int(fd), p)
	return n, errnoOf(err)
}

// rawWrite is rawsocket_linux.go's, through syscall.Write.
func rawWrite(fd uintptr, p []byte) (int, syscall.Errno) {
	n, err := syscall.Write(int(fd), p)
	return n, errnoOf(err)
}

func errnoOf(err error) syscall.Errno {
	if err == nil {
		return 0
	}
	return err.(syscall.Errno)
}
