package broker

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"mqtk/internal/wsconn"
)

// DefaultConnectTimeout is how long a new connection may take to send CONNECT.
const DefaultConnectTimeout = 10 * time.Second

// listener is mochi's listener done our way, for TCP, TLS, Unix sockets and
// WebSockets alike: it binds in Init (so the address, port 0 included, is
// known before Start returns), closes a connection that sends no CONNECT
// within connectTimeout (mochi would wait forever), and on Close closes
// every connection it accepted, so shutdown never waits on a socket that
// never spoke. mochi replaces the (read) deadline with its keep-alive
// deadline once CONNECT has been read. Every connection is a deadlineConn:
// a write that makes no progress within writeTimeout closes it.
type listener struct {
	id             string
	scheme         string // mqtt, mqtts, ws, wss, unix
	network        string // tcp or unix
	address        string
	tls            *tls.Config
	connectTimeout time.Duration
	writeTimeout   time.Duration

	ln      net.Listener
	http    *http.Server // ws and wss only
	log     *slog.Logger
	mu      sync.Mutex
	conns   map[*deadlineConn]struct{}
	closed  bool
	handled sync.WaitGroup // connections still inside mochi
	stopBy  atomic.Int64   // see stop
	abort   *time.Timer    // see stop
}

var _ listeners.Listener = (*listener)(nil)

func (l *listener) ID() string       { return l.id }
func (l *listener) Protocol() string { return l.scheme }

func (l *listener) Address() string {
	if l.ln != nil {
		return l.ln.Addr().String()
	}
	return l.address
}

// URL is where clients connect, e.g. mqtt://127.0.0.1:1883 or unix:///run/mqtk.sock.
func (l *listener) URL() string {
	switch l.scheme {
	case "unix":
		return "unix://" + l.Address()
	case "ws", "wss":
		return l.scheme + "://" + l.Address() + "/mqtt"
	}
	return l.scheme + "://" + l.Address()
}

func (l *listener) Init(log *slog.Logger) error {
	l.log = log
	if l.network == "unix" {
		// A socket file left by a broker that died is in the way; anything
		// else at that path is not ours to remove.
		if fi, err := os.Lstat(l.address); err == nil && fi.Mode()&os.ModeSocket != 0 {
			if c, err := net.Dial("unix", l.address); err == nil {
				c.Close()
				return errors.New("another broker is listening on it")
			}
			_ = os.Remove(l.address)
		}
	}
	network := l.network
	if host, _, err := net.SplitHostPort(l.address); err == nil && network == "tcp" {
		// Listen where asked: Go would make 0.0.0.0 dual-stack.
		if ip := net.ParseIP(host); ip != nil && ip.To4() != nil {
			network = "tcp4"
		} else if ip != nil {
			network = "tcp6"
		}
	}
	ln, err := net.Listen(network, l.address)
	if err != nil {
		return err
	}
	if l.tls != nil {
		ln = tls.NewListener(ln, l.tls)
	}
	l.ln = ln
	l.conns = map[*deadlineConn]struct{}{}
	return nil
}

func (l *listener) Serve(establish listeners.EstablishFn) {
	if l.scheme == "ws" || l.scheme == "wss" {
		l.serveWebSocket(establish)
		return
	}
	var warned time.Time
	for {
		conn, err := l.ln.Accept()
		if err != nil {
			if isTemporary(err) {
				if errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
					if time.Since(warned) > 10*time.Second { // once in a while, not per attempt
						warned = time.Now()
						// l.log names the listener (mochi's Init gave it).
						l.log.Warn("cannot accept connections: out of file descriptors (raise the limit, e.g. ulimit -n); they wait until some are free",
							"error", err.Error())
					}
				}
				time.Sleep(10 * time.Millisecond) // let descriptors free up rather than spin
				continue
			}
			return
		}
		go l.handle(conn, establish)
	}
}

// handle runs one connection through mochi; it returns when the client is gone.
func (l *listener) handle(nc net.Conn, establish listeners.EstablishFn) {
	conn := newDeadlineConn(nc, l.writeTimeout, &l.stopBy)
	if !l.track(conn) {
		nc.Close()
		return
	}
	defer l.handled.Done()
	defer l.untrack(conn)
	_ = conn.SetDeadline(time.Now().Add(l.connectTimeout)) // the read deadline
	err := establish(l.id, conn)                           // mochi closes what fails
	// A CONNECT refused for what it holds (an MQTT 3 client may get no
	// CONNACK at all, fork change 43): the operator learns why here, as
	// from mosquitto's log. A bad password is logged by the auth hook.
	var code packets.Code
	if errors.As(err, &code) && code.Code >= packets.ErrUnspecifiedError.Code && code != packets.ErrBadUsernameOrPassword {
		l.log.Info("connection refused", "reason", code.Reason, "code", fmt.Sprintf("%#x", code.Code), "remote", nc.RemoteAddr().String())
	}
	if conn.timedOut.Load() && conn.reported.CompareAndSwap(false, true) {
		// Before a session was established (writing CONNACK), so no
		// hook has said so.
		l.log.Warn("closed the connection: write timeout", "remote", nc.RemoteAddr().String(), "timeout", l.writeTimeout)
	}
}

func (l *listener) serveWebSocket(establish listeners.EstablishFn) {
	up := websocket.Upgrader{
		Subprotocols: []string{wsconn.Subprotocol},
		// MQTT clients in browsers connect from pages of any origin; who may
		// connect is decided by authentication, as on the other listeners.
		CheckOrigin: func(*http.Request) bool { return true },
	}
	l.http = &http.Server{
		ReadHeaderTimeout: l.connectTimeout,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ws, err := up.Upgrade(w, r, nil)
			if err != nil {
				return // Upgrade has answered with an HTTP error
			}
			l.handle(wsconn.New(ws), establish)
		}),
		ErrorLog: nil,
	}
	_ = l.http.Serve(l.ln)
}

func (l *listener) track(c *deadlineConn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	l.conns[c] = struct{}{}
	l.handled.Add(1) // under mu, so never concurrent with Close's Wait
	return true
}

func (l *listener) untrack(c *deadlineConn) {
	l.mu.Lock()
	delete(l.conns, c)
	l.mu.Unlock()
}

// stop starts the shutdown of the listener's connections (Server.Close
// calls it on every listener before mochi closes them one listener after
// another): from now on writes must be done by the instant by, and any
// still under way then is cut off by closing its connection. Without it,
// the DISCONNECT mochi sends each client on shutdown would wait for a
// stalled client's pending write, up to the write timeout.
func (l *listener) stop(by time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.stopLocked(by)
}

func (l *listener) stopLocked(by time.Time) {
	if l.abort != nil {
		return
	}
	l.stopBy.Store(by.UnixNano())
	l.abort = time.AfterFunc(time.Until(by), func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		for c := range l.conns {
			c.abortWrite()
		}
	})
}

func (l *listener) Close(closeClients listeners.CloseFn) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.closed = true
	l.stopLocked(time.Now().Add(shutdownGrace)) // unless Server.Close has
	abort := l.abort
	l.mu.Unlock()
	defer abort.Stop()
	if l.http != nil {
		_ = l.http.Close()
	} else {
		_ = l.ln.Close()
	}
	closeClients(l.id) // DISCONNECT (server shutting down) to MQTT clients
	l.mu.Lock()
	for c := range l.conns {
		_ = c.Close()
	}
	l.mu.Unlock()
	// Only then may mochi wait for its clients: no connection enters it now
	// (mochi's own WaitGroup.Add would race with its Wait).
	l.handled.Wait()
	if l.network == "unix" {
		_ = os.Remove(l.address)
	}
}

// isTemporary reports an Accept error worth retrying (out of file
// descriptors, a connection aborted before it was accepted).
func isTemporary(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) || errors.Is(err, syscall.ECONNABORTED)
}
