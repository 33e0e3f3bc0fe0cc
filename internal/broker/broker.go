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
	"strings"
	"sync"
	"syscall"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// DefaultPort is MQTT's registered port.
const DefaultPort = 1883

// Config is how a broker is set up.
type Config struct {
	// Listen are the TCP addresses (host:port) to accept MQTT on. With
	// Loopback, or with no listener of any kind, the broker also listens on
	// 127.0.0.1 and [::1] (when the machine has IPv6) at Port. Port 0 picks
	// a free port.
	Listen   []string
	Loopback bool
	Port     int
	// TLSListen are TCP addresses that accept MQTT over TLS with TLS.
	TLSListen []string
	TLS       *tls.Config
	// WSListen are TCP addresses that accept MQTT over WebSocket
	// (subprotocol mqtt, any path).
	WSListen []string
	// Unix are Unix domain socket paths to accept MQTT on.
	Unix []string

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
	// WriteTimeout closes a connection when a write to it makes no
	// progress in time: a client that stopped reading (default
	// DefaultWriteTimeout).
	WriteTimeout time.Duration

	// PersistDir, if set, keeps retained messages, sessions and queued
	// messages in a database there, across restarts.
	PersistDir string

	// MaximumPacketSize, if not 0, is announced in CONNACK and enforced.
	MaximumPacketSize uint32
	// MaxConnections, if not 0, refuses clients beyond it ("server busy").
	MaxConnections int
	// MaxKeepalive, if not 0, caps the keep-alive a client may ask for (and
	// replaces 0, "never"); MQTT 5 clients are told in CONNACK.
	MaxKeepalive uint16
	// MaxQueued bounds the messages waiting to be written to one client;
	// beyond it messages to that client are dropped and counted (mochi's
	// default 8192 when 0).
	MaxQueued int
	// MaxInflight bounds the QoS 1/2 messages stored per client (mochi's
	// default 8192 when 0).
	MaxInflight int
	// QueueWait is how long a message routed to a client whose queue is
	// full (MaxQueued) waits for room before it is dropped; after a wait in
	// vain, that client's messages are dropped at once until it takes
	// another from its queue. With it, a subscriber that reads more slowly
	// than messages come gets every one, at its pace, and so do the other
	// subscribers of its publishers (the publisher is held back, as TCP
	// holds back a publisher of a broker that cannot keep up); one that
	// stopped reading holds its publishers up once. 0, the default: a
	// message that finds the queue full is dropped at once, so a slow
	// subscriber never slows anyone else, and loses what does not fit.
	QueueWait time.Duration
	// SysInterval is how often $SYS topics are published (10s when 0;
	// never when negative, as mosquitto's sys_interval 0).
	SysInterval time.Duration
	// Version is what $SYS/broker/version says, followed by mochi's
	// version (mochi's alone when "").
	Version string
	// Verbose logs every connect, disconnect, subscribe and publish at
	// Info level (never payloads or passwords).
	Verbose bool

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
	m         *mqtt.Server
	closeOnce sync.Once
	auth      *authHook
	log       *slog.Logger
	addrs     []string
	listeners []*listener
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
	// As mosquitto's max_topic_alias: each alias a client sets pins a topic
	// name for the connection's life (mochi's default allows 65535).
	caps.TopicAliasMaximum = 10
	caps.Compatibilities = mqtt.Compatibilities{
		// SUBACK says 0x87 "not authorized" (MQTT 5), as mosquitto does,
		// not 0x80 "unspecified error": clients (paho) report it by name.
		ObscureNotAuthorized: false,
		// Having sent DISCONNECT, close the connection [MQTT-3.14.4-2], as
		// mosquitto does, rather than wait (up to the keep-alive) for the
		// client to close it.
		PassiveClientDisconnect: false,
		// Response Information only when asked for [MQTT-3.1.2-28] (mqtk
		// sets none).
		AlwaysReturnResponseInfo: false,
		// $SYS counters count from this start, as mosquitto's do (the
		// store keeps none).
		RestoreSysInfoOnRestart: false,
		// PUBACK, PUBREC, PUBREL and PUBCOMP carry no copy of the user
		// properties of the packet they answer, as from mosquitto; with
		// them mochi also writes its reason code 0x01 on PUBACK, which is
		// not a PUBACK reason code [MQTT-3.4.2-1].
		NoInheritedPropertiesOnAck: true,
	}
	if cfg.MaxConnections > 0 {
		caps.MaximumClients = int64(cfg.MaxConnections)
	}
	if cfg.MaxQueued > 0 {
		caps.MaximumClientWritesPending = int32(cfg.MaxQueued)
	}
	if cfg.MaxInflight > 0 {
		caps.MaximumInflight = uint16(min(cfg.MaxInflight, 65535))
	}
	sysInterval := int64(cfg.SysInterval / time.Second)
	switch {
	case cfg.SysInterval < 0:
		sysInterval = -1 // none
	case sysInterval == 0:
		sysInterval = 10
	}
	m := mqtt.New(&mqtt.Options{Capabilities: caps, Logger: log, SysTopicResendInterval: sysInterval, QueueFullWait: max(cfg.QueueWait, 0),
		DisconnectWait: shutdownGrace}) // a client being disconnected gets as long to take its DISCONNECT as one at shutdown
	if cfg.Version != "" {
		m.Info.Version = cfg.Version + ", mochi-mqtt " + mqtt.Version
	}
	fail := func(err error) (*Server, error) {
		m.Close() // releases what hooks hold, such as the persistence file
		return nil, err
	}
	auth, err := newAuthHook(cfg, m)
	if err != nil {
		return fail(err)
	}
	for _, h := range []mqtt.Hook{
		auth,
		&eventHook{cfg: cfg},
		&packetIDHook{pending: map[*mqtt.Client]swappedID{}},
		&encodeHook{topicAliasMax: caps.TopicAliasMaximum, maxPacket: caps.MaximumPacketSize},
		&limitsHook{maxKeepalive: cfg.MaxKeepalive},
		&writeTimeoutHook{log: log, timeout: writeTimeout(cfg)},
		&logHook{log: log, verbose: cfg.Verbose, maxInflight: int(caps.MaximumInflight), now: time.Now},
		newInboundHook(),
		&sessionHook{m: m},
		newAliasHook(m, caps.TopicAliasMaximum),
		&subscribeHook{m: m},
	} {
		if err := m.AddHook(h, nil); err != nil {
			return fail(err)
		}
	}
	if cfg.PersistDir != "" {
		if err := addPersistence(m, cfg.PersistDir); err != nil {
			return fail(err)
		}
	}
	for _, h := range []mqtt.Hook{newFlowHook(), &mqtt3Hook{}} {
		if err := m.AddHook(h, nil); err != nil {
			return fail(err)
		}
	}
	s := &Server{m: m, auth: auth, log: log}
	connectTimeout := cfg.ConnectTimeout
	if connectTimeout <= 0 {
		connectTimeout = DefaultConnectTimeout
	}
	if err := s.listen(cfg, connectTimeout); err != nil {
		return fail(err)
	}
	if err := m.Serve(); err != nil {
		return fail(err)
	}
	return s, nil
}

// listen binds every listener of cfg, refusing to expose anonymous access
// beyond this machine.
func (s *Server) listen(cfg Config, connectTimeout time.Duration) error {
	type spec struct{ scheme, network, addr string }
	var specs []spec
	for _, a := range cfg.Listen {
		specs = append(specs, spec{"mqtt", "tcp", a})
	}
	for _, a := range cfg.TLSListen {
		specs = append(specs, spec{"mqtts", "tcp", a})
	}
	for _, a := range cfg.WSListen {
		specs = append(specs, spec{"ws", "tcp", a})
	}
	for _, a := range cfg.Unix {
		specs = append(specs, spec{"unix", "unix", a})
	}
	if len(cfg.TLSListen) > 0 && cfg.TLS == nil {
		return errors.New("a TLS listener needs a certificate and key")
	}
	protected := cfg.PasswordFile != "" || cfg.Users != nil
	for _, sp := range specs {
		if sp.network == "tcp" && !IsLoopback(sp.addr) && !protected && !cfg.AllowAnonymous {
			return fmt.Errorf("listen on %s: %w", sp.addr, ErrExposed)
		}
	}
	add := func(sp spec) error {
		l := &listener{id: fmt.Sprintf("%s-%d", sp.scheme, len(s.addrs)), scheme: sp.scheme, network: sp.network,
			address: sp.addr, connectTimeout: connectTimeout, writeTimeout: writeTimeout(cfg)}
		if sp.scheme == "mqtts" {
			l.tls = cfg.TLS
		}
		if err := s.m.AddListener(l); err != nil {
			return fmt.Errorf("listen on %s: %w", sp.addr, err)
		}
		s.addrs = append(s.addrs, l.URL())
		s.listeners = append(s.listeners, l)
		return nil
	}
	if len(specs) == 0 || cfg.Loopback {
		// The default: loopback only, IPv4 and IPv6 on the same port.
		if err := add(spec{"mqtt", "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(cfg.Port))}); err != nil {
			return err
		}
		_, port, _ := net.SplitHostPort(strings.TrimPrefix(s.addrs[len(s.addrs)-1], "mqtt://"))
		if err := add(spec{"mqtt", "tcp", net.JoinHostPort("::1", port)}); err != nil {
			if !errors.Is(err, syscall.EADDRNOTAVAIL) && !errors.Is(err, syscall.EAFNOSUPPORT) {
				return err
			}
			s.log.Warn("no IPv6 loopback on this machine; listening on 127.0.0.1 only")
		}
	}
	for _, sp := range specs {
		if err := add(sp); err != nil {
			return err
		}
	}
	return nil
}

// ErrExposed is the refusal to open a listener beyond this machine to
// anonymous clients.
var ErrExposed = errors.New("not a loopback address, and with no password file anyone on the network could connect: give --password-file, or --allow-anonymous if that is what you want")

// IsLoopback reports whether a listen address (host:port) accepts
// connections from this machine only.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") { // always loopback (RFC 6761); other names are not resolved here
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// URLs are the listeners' addresses as URLs, e.g. mqtt://127.0.0.1:41234.
func (s *Server) URLs() []string { return s.addrs }

// Reload reads the password and ACL files again (on SIGHUP). Connections
// stay, under the new rules, except those of users removed from the
// password file or whose entry changed: they are disconnected ("not
// authorized" in MQTT 5), and their number returned; and a connected
// client's will that the new ACL no longer lets it publish is dropped, as
// it would have been at connect. On error the previous files stay in
// force.
func (s *Server) Reload() (disconnected int, err error) {
	if err := s.auth.reload(); err != nil {
		return 0, err
	}
	clients := s.m.Clients.GetAll()
	n := s.auth.revokeConnected(clients)
	s.auth.dropWills(clients)
	return n, nil
}

// Close disconnects every client and stops the listeners, within
// shutdownGrace of writing to clients whatever state they are in. Calling it
// again does nothing (mochi's own Close panics the second time).
func (s *Server) Close() error {
	var err error
	s.closeOnce.Do(func() {
		by := time.Now().Add(shutdownGrace) // one instant for all listeners
		for _, l := range s.listeners {
			l.stop(by)
		}
		err = s.m.Close()
	})
	return err
}

func writeTimeout(cfg Config) time.Duration {
	if cfg.WriteTimeout > 0 {
		return cfg.WriteTimeout
	}
	return DefaultWriteTimeout
}

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

// The hooks that see packets read, and change packets before they are
// encoded, do it through a pointer (mqtt.PacketReader, mqtt.PacketEncoder);
// one whose method did not match the interface would silently never be
// called.
var (
	_ mqtt.PacketEncoder = (*authHook)(nil)
	_ mqtt.PacketEncoder = (*encodeHook)(nil)
	_ mqtt.PacketEncoder = (*packetIDHook)(nil)
	_ mqtt.PacketEncoder = (*inboundHook)(nil)
	_ mqtt.PacketEncoder = (*subscribeHook)(nil)
	_ mqtt.PacketEncoder = (*flowHook)(nil)
	_ mqtt.PacketEncoder = (*mqtt3Hook)(nil)

	_ mqtt.PacketReader = (*packetIDHook)(nil)
	_ mqtt.PacketReader = (*inboundHook)(nil)
	_ mqtt.PacketReader = (*sessionHook)(nil)
	_ mqtt.PacketReader = (*aliasHook)(nil)
	_ mqtt.PacketReader = (*subscribeHook)(nil)
	_ mqtt.PacketReader = (*store)(nil)
	_ mqtt.PacketReader = (*flowHook)(nil)
)

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

func (h *encodeHook) EncodePacket(cl *mqtt.Client, pk *packets.Packet) {
	if pk.FixedHeader.Type == packets.Publish {
		pk.Mods.DisallowProblemInfo = false
	}
	if pk.FixedHeader.Type == packets.Connack && cl.Properties.ProtocolVersion == 5 && pk.ReasonCode < 0x80 {
		pk.Properties.TopicAliasMaximum = h.topicAliasMax
		pk.Properties.MaximumPacketSize = h.maxPacket
	}
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
