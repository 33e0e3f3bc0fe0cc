package broker

import (
	"errors"
	"io"
	"net"
	"os"
	"syscall"
)

// rawSocket does the reads and writes of a TCP or Unix socket itself: the
// same non-blocking system calls as the net package, waiting for the socket
// in the same poller (through syscall.RawConn, so deadlines and Close work
// as on the net.Conn), but made as raw system calls (rawsocket_linux.go).
//
// Why: the net package makes each read and write through the Go runtime's
// syscall entry, and the first one after the broker has been idle wakes the
// runtime's monitor thread (sysmon), which then polls every 20 µs until the
// broker is idle again. At 1,000 messages a second that was 3.3 of the
// broker's 5.7 context switches per message and a fifth of its CPU, on the
// path of every message (docs/performance.md). A non-blocking socket call
// never blocks, which is all the runtime's syscall entry is for.
type rawSocket struct {
	rc   syscall.RawConn
	conn net.Conn // for the addresses in errors
}

// newRawSocket returns the rawSocket of c, or nil where there is none: a
// connection that is not a TCP or Unix socket (TLS, WebSocket), or a system
// this is not written for.
func newRawSocket(c net.Conn) *rawSocket {
	if !rawSockets {
		return nil
	}
	switch c.(type) {
	case *net.TCPConn, *net.UnixConn:
	default:
		return nil
	}
	rc, err := c.(syscall.Conn).SyscallConn()
	if err != nil {
		return nil
	}
	return &rawSocket{rc: rc, conn: c}
}

// Read is net.Conn's Read.
func (s *rawSocket) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	var n int
	var errno syscall.Errno
	err := s.rc.Read(func(fd uintptr) bool {
		for {
			n, errno = rawRead(fd, p)
			if errno != syscall.EINTR {
				return errno != syscall.EAGAIN
			}
		}
	})
	switch {
	case err != nil:
		return 0, s.opError("read", err)
	case errno != 0:
		return 0, s.opError("read", os.NewSyscallError("read", errno))
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

// Write is net.Conn's Write: it writes all of p, waiting for room as long
// as the write deadline allows.
func (s *rawSocket) Write(p []byte) (int, error) {
	return s.write(p, true)
}

// WriteNow writes what of p the socket takes at once, without waiting:
// 0 and no error if it takes nothing.
func (s *rawSocket) WriteNow(p []byte) (int, error) {
	return s.write(p, false)
}

func (s *rawSocket) write(p []byte, wait bool) (int, error) {
	var n int
	var errno syscall.Errno
	var short bool // write(2) took nothing and said nothing
	err := s.rc.Write(func(fd uintptr) bool {
		for n < len(p) {
			m, e := rawWrite(fd, p[n:])
			switch e {
			case 0:
				if m <= 0 || m > len(p)-n { // as internal/poll guards (go.dev/issue/61060)
					short = true
					return true
				}
				n += m
			case syscall.EINTR:
			case syscall.EAGAIN:
				return !wait
			default:
				errno = e
				return true
			}
		}
		return true
	})
	switch {
	case err != nil:
		return n, s.opError("write", err)
	case errno != 0:
		return n, s.opError("write", os.NewSyscallError("write", errno))
	case short:
		return n, s.opError("write", io.ErrUnexpectedEOF)
	}
	return n, nil
}

// opError is err as the net package would return it from op: an
// *net.OpError naming op and the addresses. (RawConn's own errors, for a
// closed connection or a passed deadline, name "raw-read" or "raw-write".)
func (s *rawSocket) opError(op string, err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) {
		err = oe.Err
	}
	return &net.OpError{Op: op, Net: s.conn.LocalAddr().Network(), Source: s.conn.LocalAddr(), Addr: s.conn.RemoteAddr(), Err: err}
}
