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
//
// The state of a call lives in the rawSocket, and the functions RawConn
// calls are bound once: a closure per call escapes through the RawConn
// interface, allocations on every read and write. Reads come from one
// goroutine (the client's read loop) and writes are serialised by the
// caller (deadlineConn.wmu), so one set of read state and one of write
// state suffice.
type rawSocket struct {
	rc   syscall.RawConn
	conn net.Conn // for the addresses in errors

	readFn func(fd uintptr) bool // s.doRead
	rp     []byte                // being read into
	rn     int
	rerrno syscall.Errno

	writeFn func(fd uintptr) bool // s.doWrite
	wp      []byte                // being written
	wn      int
	wwait   bool          // wait for room (Write) or not (WriteNow)
	werrno  syscall.Errno // write(2) failed
	wshort  bool          // write(2) took nothing and said nothing
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
	s := &rawSocket{rc: rc, conn: c}
	s.readFn, s.writeFn = s.doRead, s.doWrite
	return s
}

// Read is net.Conn's Read.
func (s *rawSocket) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	s.rp, s.rn, s.rerrno = p, 0, 0
	err := s.rc.Read(s.readFn)
	n, errno := s.rn, s.rerrno
	s.rp = nil
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

// doRead is Read's function for RawConn.Read: it reports false, to wait
// for input, while the socket has none.
func (s *rawSocket) doRead(fd uintptr) bool {
	for {
		s.rn, s.rerrno = rawRead(fd, s.rp)
		if s.rerrno != syscall.EINTR {
			return s.rerrno != syscall.EAGAIN
		}
	}
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
	s.wp, s.wn, s.wwait, s.werrno, s.wshort = p, 0, wait, 0, false
	err := s.rc.Write(s.writeFn)
	n := s.wn
	s.wp = nil
	switch {
	case err != nil:
		return n, s.opError("write", err)
	case s.werrno != 0:
		return n, s.opError("write", os.NewSyscallError("write", s.werrno))
	case s.wshort:
		return n, s.opError("write", io.ErrUnexpectedEOF)
	}
	return n, nil
}

// doWrite is write's function for RawConn.Write: it reports false, to wait
// for room, when the socket takes no more and the write waits.
func (s *rawSocket) doWrite(fd uintptr) bool {
	for s.wn < len(s.wp) {
		m, e := rawWrite(fd, s.wp[s.wn:])
		switch e {
		case 0:
			if m <= 0 || m > len(s.wp)-s.wn { // as internal/poll guards (go.dev/issue/61060)
				s.wshort = true
				return true
			}
			s.wn += m
		case syscall.EINTR:
		case syscall.EAGAIN:
			return !s.wwait
		default:
			s.werrno = e
			return true
		}
	}
	return true
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
