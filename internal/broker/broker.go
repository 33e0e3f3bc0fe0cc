// Package broker is mqtk's embedded MQTT broker: mochi-mqtt/server/v2 with
// mqtk's defaults (loopback only, no retained-message expiry unless the
// publisher set one) and mqtk's own authentication and ACL.
package broker

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// DefaultPort is MQTT's registered port.
const DefaultPort = 1883

// Config is how a broker is set up.
type Config struct {
	// Listen are the TCP addresses (host:port) to accept MQTT on; empty means
	// 127.0.0.1:1883. Port 0 picks a free port.
	Listen []string
	// TLSListen are TCP addresses that accept MQTT over TLS with TLS.
	TLSListen []string
	TLS       *tls.Config

	// Users, when not nil, are the only accepted user names and their
	// passwords; a client without a valid pair is refused with "bad user name
	// or password" unless AllowAnonymous and it sent no user name.
	Users          map[string]string
	AllowAnonymous bool
	// ACL rules, checked in order for every publish and subscription; with
	// no rules everything is allowed.
	ACL []Rule

	// ConnectTimeout closes a connection that sends no CONNECT in time
	// (default 10s).
	ConnectTimeout time.Duration

	// MaximumPacketSize, if not 0, is announced in CONNACK and enforced.
	MaximumPacketSize uint32

	// Logger receives the broker's log; nil discards it.
	Logger *slog.Logger
	// OnSubscribed is called after a client's subscription to a filter is
	// granted (used by tests to wait for a subscriber without sleeping).
	OnSubscribed func(clientID, filter string)
	// OnDelivered is called when a client has acknowledged a QoS 1 or 2
	// message the broker sent it (PUBACK or PUBCOMP received).
	OnDelivered func(clientID string)
}

// Server is a running broker.
type Server struct {
	m     *mqtt.Server
	addrs []string
}

// Start binds every listener and begins serving. It returns once the
// listeners accept connections.
func Start(cfg Config) (*Server, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumMessageExpiryInterval = 0 // never expire a message whose publisher set no expiry
	caps.MaximumPacketSize = cfg.MaximumPacketSize
	m := mqtt.New(&mqtt.Options{Capabilities: caps, Logger: log})
	if err := m.AddHook(&authHook{cfg: cfg}, nil); err != nil {
		return nil, err
	}
	if err := m.AddHook(&packetIDHook{pending: map[*mqtt.Client]swappedID{}}, nil); err != nil {
		return nil, err
	}
	if err := m.AddHook(&encodeHook{topicAliasMax: caps.TopicAliasMaximum, maxPacket: caps.MaximumPacketSize}, nil); err != nil {
		return nil, err
	}
	s := &Server{m: m}
	connectTimeout := cfg.ConnectTimeout
	if connectTimeout <= 0 {
		connectTimeout = DefaultConnectTimeout
	}
	listen := cfg.Listen
	if len(listen) == 0 && len(cfg.TLSListen) == 0 {
		listen = []string{net.JoinHostPort("127.0.0.1", strconv.Itoa(DefaultPort))}
	}
	add := func(addr string, tlsConf *tls.Config, scheme string) error {
		l := &tcpListener{id: scheme + "-" + strconv.Itoa(len(s.addrs)), address: addr, tls: tlsConf, connectTimeout: connectTimeout}
		if err := m.AddListener(l); err != nil {
			return fmt.Errorf("listen on %s: %w", addr, err)
		}
		s.addrs = append(s.addrs, scheme+"://"+l.Address())
		return nil
	}
	for _, a := range listen {
		if err := add(a, nil, "mqtt"); err != nil {
			m.Close()
			return nil, err
		}
	}
	if len(cfg.TLSListen) > 0 && cfg.TLS == nil {
		return nil, errors.New("a TLS listener needs a certificate")
	}
	for _, a := range cfg.TLSListen {
		if err := add(a, cfg.TLS, "mqtts"); err != nil {
			m.Close()
			return nil, err
		}
	}
	if err := m.Serve(); err != nil {
		m.Close()
		return nil, err
	}
	return s, nil
}

// URLs are the listeners' addresses as URLs, e.g. mqtt://127.0.0.1:41234.
func (s *Server) URLs() []string { return s.addrs }

// Close disconnects every client and stops the listeners.
func (s *Server) Close() error { return s.m.Close() }

// Access is what an ACL rule grants or denies.
type Access int

const (
	Read Access = 1 << iota
	Write
	ReadWrite = Read | Write
)

// Rule allows (or, with Deny, forbids) Access to topics matching Filter.
type Rule struct {
	Filter string
	Access Access
	Deny   bool
}

// authHook is mqtk's authentication and authorisation, replacing mochi's
// ledger (whose topic matching gets corner cases wrong).
type authHook struct {
	mqtt.HookBase
	cfg Config
}

func (h *authHook) ID() string { return "mqtk-auth" }

func (h *authHook) Provides(b byte) bool {
	return b == mqtt.OnConnectAuthenticate || b == mqtt.OnACLCheck || b == mqtt.OnSubscribed || b == mqtt.OnQosComplete
}

func (h *authHook) OnQosComplete(cl *mqtt.Client, pk packets.Packet) {
	if h.cfg.OnDelivered != nil {
		h.cfg.OnDelivered(cl.ID)
	}
}

func (h *authHook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	if h.cfg.Users == nil {
		return true
	}
	if !pk.Connect.UsernameFlag {
		return h.cfg.AllowAnonymous
	}
	want, ok := h.cfg.Users[string(pk.Connect.Username)]
	return ok && constantTimeEqual(want, string(pk.Connect.Password))
}

func (h *authHook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	return allowed(h.cfg.ACL, topic, write)
}

func (h *authHook) OnSubscribed(cl *mqtt.Client, pk packets.Packet, reasonCodes []byte) {
	if h.cfg.OnSubscribed == nil {
		return
	}
	for i, sub := range pk.Filters {
		if i < len(reasonCodes) && reasonCodes[i] < 0x80 {
			h.cfg.OnSubscribed(cl.ID, sub.Filter)
		}
	}
}

// encodeHook mends what mochi gets wrong in packets it sends:
//   - CONNACK leaves out the Topic Alias Maximum that mochi enforces (absent
//     means 0 to a client, so no client could use aliases) and the Maximum
//     Packet Size (absent means unlimited, so clients would be disconnected
//     instead of warned);
//   - a client that sets Request Problem Information to 0 gets PUBLISH
//     packets without their user properties, although MQTT-3.1.2-29 allows
//     them on PUBLISH.
type encodeHook struct {
	mqtt.HookBase
	topicAliasMax uint16
	maxPacket     uint32
}

func (h *encodeHook) ID() string           { return "mqtk-encode" }
func (h *encodeHook) Provides(b byte) bool { return b == mqtt.OnPacketEncode }

func (h *encodeHook) OnPacketEncode(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	if pk.FixedHeader.Type == packets.Publish {
		pk.Mods.DisallowProblemInfo = false
	}
	if pk.FixedHeader.Type == packets.Connack && cl.Properties.ProtocolVersion == 5 && pk.ReasonCode < 0x80 {
		pk.Properties.TopicAliasMaximum = h.topicAliasMax
		pk.Properties.MaximumPacketSize = h.maxPacket
	}
	return pk
}

// Disconnect closes a client's connection with DISCONNECT "administrative
// action", as an operator's kick does. It reports whether the client was
// connected.
func (s *Server) Disconnect(clientID string) bool {
	cl, ok := s.m.Clients.Get(clientID)
	if !ok || cl.Closed() {
		return false
	}
	_ = s.m.DisconnectClient(cl, packets.ErrAdministrativeAction)
	return true
}
