// Package wsconn turns a WebSocket into the byte stream MQTT runs on, for
// both ends: mqttc dials ws:// and wss://, the broker accepts them.
package wsconn

import (
	"io"
	"net"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// Subprotocol is the WebSocket subprotocol of MQTT.
const Subprotocol = "mqtt"

// New wraps ws: every Write is one binary message, and Read returns the
// bytes of the binary messages in order, whatever their framing.
func New(ws *websocket.Conn) net.Conn { return &conn{Conn: ws} }

type conn struct {
	*websocket.Conn
	r  io.Reader
	mu sync.Mutex // serialises writes, and write deadlines with them
}

func (c *conn) Read(p []byte) (int, error) {
	for {
		if c.r == nil {
			typ, r, err := c.NextReader()
			if err != nil {
				return 0, err
			}
			if typ != websocket.BinaryMessage {
				continue
			}
			c.r = r
		}
		n, err := c.r.Read(p)
		if err == io.EOF {
			c.r = nil
			if n > 0 {
				return n, nil
			}
			continue
		}
		return n, err
	}
}

func (c *conn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// SetWriteDeadline may be called while another goroutine writes (mochi
// refreshes deadlines from its reader); gorilla's is not safe for that.
func (c *conn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.Conn.SetWriteDeadline(t)
}

func (c *conn) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.SetWriteDeadline(t)
}
