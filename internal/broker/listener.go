package broker

import (
	"crypto/tls"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/mochi-mqtt/server/v2/listeners"
)

// DefaultConnectTimeout is how long a new connection may take to send CONNECT.
const DefaultConnectTimeout = 10 * time.Second

// tcpListener is mochi's TCP listener done our way: a connection that sends
// no CONNECT within connectTimeout is closed (mochi would wait forever), and
// Close closes every connection it accepted, so that shutdown never waits on
// a socket that never spoke. mochi replaces the deadline with its keep-alive
// deadline once CONNECT has been read.
type tcpListener struct {
	id, address    string
	tls            *tls.Config
	connectTimeout time.Duration

	ln     net.Listener
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
}

var _ listeners.Listener = (*tcpListener)(nil)

func (l *tcpListener) ID() string       { return l.id }
func (l *tcpListener) Protocol() string { return "tcp" }

func (l *tcpListener) Address() string {
	if l.ln != nil {
		return l.ln.Addr().String()
	}
	return l.address
}

func (l *tcpListener) Init(*slog.Logger) error {
	ln, err := net.Listen("tcp", l.address)
	if err != nil {
		return err
	}
	if l.tls != nil {
		ln = tls.NewListener(ln, l.tls)
	}
	l.ln = ln
	l.conns = map[net.Conn]struct{}{}
	return nil
}

func (l *tcpListener) Serve(establish listeners.EstablishFn) {
	for {
		conn, err := l.ln.Accept()
		if err != nil {
			return
		}
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			conn.Close()
			return
		}
		l.conns[conn] = struct{}{}
		l.mu.Unlock()
		_ = conn.SetDeadline(time.Now().Add(l.connectTimeout))
		go func() {
			_ = establish(l.id, conn) // mochi logs and closes what fails
			l.mu.Lock()
			delete(l.conns, conn)
			l.mu.Unlock()
		}()
	}
}

func (l *tcpListener) Close(closeClients listeners.CloseFn) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.closed = true
	l.mu.Unlock()
	_ = l.ln.Close()
	closeClients(l.id) // DISCONNECT (server shutting down) to MQTT clients
	l.mu.Lock()
	for c := range l.conns {
		_ = c.Close()
	}
	l.mu.Unlock()
}
