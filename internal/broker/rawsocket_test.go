package broker

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestRawSocket: rawSocket reads and writes TCP and Unix sockets as the net
// package does, errors included: the data both ways, io.EOF when the peer
// closes, a timeout (a net.Error, "read") at the read deadline, net.ErrClosed
// after Close; and WriteNow takes nothing, without waiting, from a socket
// whose buffers are full.
func TestRawSocket(t *testing.T) {
	if !rawSockets {
		t.Skip("no raw sockets on this system")
	}
	for _, network := range []string{"tcp", "unix"} {
		t.Run(network, func(t *testing.T) {
			s, c, peer := rawSocketPair(t, network)
			if n, err := s.Write([]byte("ping")); n != 4 || err != nil {
				t.Fatalf("Write: %d, %v", n, err)
			}
			got := make([]byte, 4)
			if _, err := io.ReadFull(peer, got); err != nil || string(got) != "ping" {
				t.Fatalf("the peer read %q, %v", got, err)
			}
			peer.Write([]byte("pong"))
			if n, err := io.ReadFull(readerFunc(s.Read), got); n != 4 || err != nil || string(got) != "pong" {
				t.Fatalf("Read: %q, %v", got[:n], err)
			}

			c.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
			_, err := s.Read(got)
			var ne net.Error
			var oe *net.OpError
			if !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &oe) || oe.Op != "read" {
				t.Errorf("Read past the deadline: %v; want a read timeout", err)
			}
			c.SetReadDeadline(time.Time{})

			peer.Close()
			for {
				if _, err = s.Read(got); err != nil {
					break
				}
			}
			if err != io.EOF {
				t.Errorf("Read after the peer closed: %v; want io.EOF", err)
			}
			c.Close()
			if _, err := s.Read(got); !errors.Is(err, net.ErrClosed) {
				t.Errorf("Read after Close: %v; want net.ErrClosed", err)
			}
			if _, err := s.Write(got); !errors.Is(err, net.ErrClosed) {
				t.Errorf("Write after Close: %v; want net.ErrClosed", err)
			}

			s, c, _ = rawSocketPair(t, network)
			c.SetWriteDeadline(time.Now().Add(time.Minute)) // a WriteNow that waited fails, not hangs
			// A peer that reads nothing: fill the socket until it takes nothing.
			chunk := bytes.Repeat([]byte("x"), 64<<10)
			full := false
			for range 10000 { // loopback buffers hold a few MiB at most
				n, err := s.WriteNow(chunk)
				if err != nil {
					t.Fatalf("WriteNow: %v", err)
				}
				if n == 0 {
					full = true
					break
				}
			}
			if !full {
				t.Fatal("WriteNow never found the socket full")
			}

		})
	}
}

// rawSocketPair connects two sockets of network, and returns the rawSocket
// of one, that one, and its peer; they are closed when the test ends.
func rawSocketPair(t *testing.T, network string) (*rawSocket, net.Conn, net.Conn) {
	t.Helper()
	addr := "127.0.0.1:0"
	if network == "unix" {
		addr = filepath.Join(t.TempDir(), "s")
	}
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	peer, err := net.Dial(network, ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { peer.Close() })
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	s := newRawSocket(c)
	if s == nil {
		t.Fatal("no rawSocket for a", network, "connection")
	}
	return s, c, peer
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }
