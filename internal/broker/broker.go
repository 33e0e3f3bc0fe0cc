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

	// PasswordFile is a mosquitto_passwd file; when set, every client must
	// authenticate against it unless AllowAnonymous.
	PasswordFile string
	// ACLFile is a mosquitto acl_file.
	ACLFile string

	// ConnectTimeout closes a connection that sends no CONNECT in time
	// (default 10s).
	ConnectTimeout time.Duration

	// PersistDir, if set, keeps retained messages, sessions and queued
	// messages in a database there, across restarts.
	PersistDir string

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
	auth  *authHook
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
	auth, err := newAuthHook(cfg)
	if err != nil {
		return nil, err
	}
	if err := m.AddHook(auth, nil); err != nil {
		return nil, err
	}
	if err := m.AddHook(&eventHook{cfg: cfg}, nil); err != nil {
		return nil, err
	}
	if cfg.PersistDir != "" {
		if err := addPersistence(m, cfg.PersistDir); err != nil {
			return nil, err
		}
	}
	if err := m.AddHook(&packetIDHook{pending: map[*mqtt.Client]swappedID{}}, nil); err != nil {
		return nil, err
	}
	if err := m.AddHook(&encodeHook{topicAliasMax: caps.TopicAliasMaximum, maxPacket: caps.MaximumPacketSize}, nil); err != nil {
		return nil, err
	}
	s := &Server{m: m, auth: auth}
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

// Reload reads the password and ACL files again (on SIGHUP) without
// dropping connections. On error the previous files stay in force.
func (s *Server) Reload() error { return s.auth.reload() }

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

// eventHook reports subscriptions and completed deliveries to the Config's
// callbacks (tests wait on them instead of sleeping).
type eventHook struct {
	mqtt.HookBase
	cfg Config
}

func (h *eventHook) ID() string { return "mqtk-events" }

func (h *eventHook) Provides(b byte) bool {
	return (b == mqtt.OnSubscribed && h.cfg.OnSubscribed != nil) || (b == mqtt.OnQosComplete && h.cfg.OnDelivered != nil)
}

func (h *eventHook) OnQosComplete(cl *mqtt.Client, pk packets.Packet) {
	h.cfg.OnDelivered(cl.ID)
}

func (h *eventHook) OnSubscribed(cl *mqtt.Client, pk packets.Packet, reasonCodes []byte) {
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
