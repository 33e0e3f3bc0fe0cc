package broker_test

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"mqtk/internal/broker"
	"mqtk/internal/brokertest"
	"mqtk/internal/mosquittotest"
)

// The conformance tests (conformance*_test.go) talk to the broker through
// client, a raw MQTT client that encodes and decodes packets with mochi's
// codec and nothing else, so that a test sees exactly what the broker puts
// on the wire: no client library retries, reorders, acknowledges or hides
// anything.
//
// Nothing is awaited by time. Where a test must show that a packet does not
// come, it waits for one that must come after it: a PINGRESP (the broker
// answers a connection's packets in order), or a marker message published
// after the one that must not arrive (a subscriber's messages are queued in
// the order their publisher's packets were processed). Read deadlines are a
// bound against hangs only.

var onMosquitto = flag.Bool("conformance.mosquitto", false,
	"run the MQTT conformance tests against mosquitto (found on PATH or in /usr/sbin) instead of mqtk's broker, to check the tests themselves")

// wireTimeout bounds every read and write; it is a safety net, never a
// synchronisation.
const wireTimeout = 10 * time.Second

// Protocol levels.
const (
	v31  byte = 3 // MQTT 3.1, protocol name "MQIsdp"
	v311 byte = 4
	v5   byte = 5
)

var (
	allVersions = []byte{v31, v311, v5}
	v3Versions  = []byte{v31, v311}
)

func versionName(v byte) string {
	switch v {
	case v31:
		return "3.1"
	case v311:
		return "3.1.1"
	case v5:
		return "5"
	}
	return "level-" + strconv.Itoa(int(v))
}

// forVersions runs f in a parallel subtest per protocol version, named
// after the version.
func forVersions(t *testing.T, versions []byte, f func(t *testing.T, v byte)) {
	t.Helper()
	for _, v := range versions {
		t.Run(versionName(v), func(t *testing.T) {
			t.Parallel()
			f(t, v)
		})
	}
}

// statements names, per protocol version, the normative statement a test
// checks. MQTT 3.1 numbers none of its statements; where it says the same
// as 3.1.1, a 3.1 subtest carries the 3.1.1 number.
type statements map[byte]string

// forStatements runs f in a parallel subtest per protocol version in st,
// named after the version and the statement, e.g. "3.1.1/MQTT-3.3.1-5".
func forStatements(t *testing.T, st statements, f func(t *testing.T, v byte)) {
	t.Helper()
	for _, v := range allVersions {
		id, ok := st[v]
		if !ok {
			continue
		}
		t.Run(versionName(v)+"/"+id, func(t *testing.T) {
			t.Parallel()
			f(t, v)
		})
	}
}

// openConns holds, per test that started a broker, the connections its
// clients opened, to close after the broker: mochi (v2.7.9) can deadlock
// when clients go away while it closes (Clients.GetByListener takes the
// read lock twice, and a client's removal waiting in between blocks the
// second), and a test should not hang on that.
var openConns sync.Map // testing.TB -> *conns

type conns struct {
	mu sync.Mutex
	cs []net.Conn
}

func (c *conns) add(conn net.Conn) {
	c.mu.Lock()
	c.cs = append(c.cs, conn)
	c.mu.Unlock()
}

// closeAfterBroker arranges for the connections t's clients open to be
// closed after the broker that the caller then starts (cleanups run last
// in, first out).
func closeAfterBroker(t testing.TB) {
	cs := &conns{}
	openConns.Store(t, cs)
	t.Cleanup(func() {
		openConns.Delete(t)
		cs.mu.Lock()
		defer cs.mu.Unlock()
		for _, c := range cs.cs {
			c.Close()
		}
	})
}

// startBroker starts mqtk's broker as it runs by default (or mosquitto, with
// -conformance.mosquitto) and returns its address.
func startBroker(t *testing.T) string {
	t.Helper()
	closeAfterBroker(t)
	if *onMosquitto {
		port := mosquittotest.Start(t, "allow_anonymous true")
		return net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	}
	return startMQTK(t, broker.Config{})
}

// startMQTK starts mqtk's broker with cfg, for tests of mqtk's own
// configuration; they do not run against mosquitto.
func startMQTK(t *testing.T, cfg broker.Config) string {
	t.Helper()
	if *onMosquitto {
		t.Skip("checks mqtk's broker configuration")
	}
	closeAfterBroker(t)
	b := brokertest.Start(t, cfg)
	return net.JoinHostPort(b.Host, strconv.Itoa(b.Port))
}

// frame is a packet read from the wire and its bytes.
type frame struct {
	pk  packets.Packet
	raw []byte
}

// client is one MQTT network connection.
type client struct {
	t       testing.TB
	id      string
	version byte
	conn    net.Conn
	r       *bufio.Reader
	lastID  uint16
	pending []frame // read while waiting for another packet; next returns them first
	lastRaw []byte  // the bytes of the packet next returned last
	markers int     // marker messages sent by quiet and collect
}

// dial opens a network connection; it sends nothing.
func dial(t testing.TB, addr string, version byte, id string) *client {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, wireTimeout)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	if cs, ok := openConns.Load(t); ok {
		cs.(*conns).add(conn)
	} else {
		t.Cleanup(func() { conn.Close() })
	}
	return &client{t: t, id: id, version: version, conn: conn, r: bufio.NewReader(conn)}
}

// An option changes the CONNECT packet that connect sends.
type option func(*packets.Packet)

// persistent asks for a session that outlives the connection: clean
// session 0, or in MQTT 5 clean start 0 with a session expiry of an hour.
func persistent() option {
	return func(pk *packets.Packet) {
		pk.Connect.Clean = false
		if pk.ProtocolVersion == v5 {
			pk.Properties.SessionExpiryInterval = 3600
			pk.Properties.SessionExpiryIntervalFlag = true
		}
	}
}

// resume is clean session (clean start) 0 without any session expiry.
func resume() option { return func(pk *packets.Packet) { pk.Connect.Clean = false } }

// sessionExpiry sets the MQTT 5 Session Expiry Interval.
func sessionExpiry(seconds uint32) option {
	return func(pk *packets.Packet) {
		pk.Properties.SessionExpiryInterval = seconds
		pk.Properties.SessionExpiryIntervalFlag = true
	}
}

// will gives the connection a will message.
func will(topic, payload string, qos byte, retain bool) option {
	return func(pk *packets.Packet) {
		pk.Connect.WillFlag = true
		pk.Connect.WillTopic = topic
		pk.Connect.WillPayload = []byte(payload)
		pk.Connect.WillQos = qos
		pk.Connect.WillRetain = retain
	}
}

// willDelay sets the MQTT 5 Will Delay Interval.
func willDelay(seconds uint32) option {
	return func(pk *packets.Packet) { pk.Connect.WillProperties.WillDelayInterval = seconds }
}

// receiveMaximum sets the MQTT 5 Receive Maximum.
func receiveMaximum(n uint16) option {
	return func(pk *packets.Packet) { pk.Properties.ReceiveMaximum = n }
}

// topicAliasMaximum sets the MQTT 5 Topic Alias Maximum: how many topic
// aliases the server may set on this connection.
func topicAliasMaximum(n uint16) option {
	return func(pk *packets.Packet) { pk.Properties.TopicAliasMaximum = n }
}

// connect dials and connects with a CONNECT for clean session (clean start
// 1) and the options, and expects a successful CONNACK, which it returns.
func connect(t testing.TB, addr string, version byte, id string, opts ...option) (*client, packets.Packet) {
	t.Helper()
	c := dial(t, addr, version, id)
	ack := c.connect(opts...)
	if ack.ReasonCode != 0 {
		t.Fatalf("%s: CONNACK reason code %#x, want 0 (success)", id, ack.ReasonCode)
	}
	return c, ack
}

// connect sends a CONNECT and returns the CONNACK.
func (c *client) connect(opts ...option) packets.Packet {
	c.t.Helper()
	c.sendConnect(opts...)
	return c.expect(packets.Connack)
}

// sendConnect sends a CONNECT for clean session (clean start 1) and the
// options, and leaves the CONNACK to be read.
func (c *client) sendConnect(opts ...option) {
	c.t.Helper()
	c.write(c.encodeConnect(opts...))
}

// encodeConnect is the CONNECT sendConnect sends, with opts, encoded.
func (c *client) encodeConnect(opts ...option) []byte {
	c.t.Helper()
	pk := packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Connect},
		ProtocolVersion: c.version,
		Connect: packets.ConnectParams{
			ProtocolName:     []byte("MQTT"),
			ClientIdentifier: c.id,
			Keepalive:        60,
			Clean:            true,
		},
	}
	if c.version == v31 {
		pk.Connect.ProtocolName = []byte("MQIsdp")
	}
	for _, o := range opts {
		o(&pk)
	}
	return c.encode(pk)
}

// send writes pk, with the connection's protocol version.
func (c *client) send(pk packets.Packet) {
	c.t.Helper()
	c.write(c.encode(pk))
}

// write writes bytes, packets encoded by encode, or parts of them.
func (c *client) write(b []byte) {
	c.t.Helper()
	_ = c.conn.SetWriteDeadline(time.Now().Add(wireTimeout))
	if _, err := c.conn.Write(b); err != nil {
		c.t.Fatalf("%s: write: %v", c.id, err)
	}
}

// encode encodes pk with the connection's protocol version.
func (c *client) encode(pk packets.Packet) []byte {
	c.t.Helper()
	pk.ProtocolVersion = c.version
	var buf bytes.Buffer
	var err error
	switch pk.FixedHeader.Type {
	case packets.Connect:
		err = pk.ConnectEncode(&buf)
	case packets.Publish:
		err = pk.PublishEncode(&buf)
	case packets.Puback:
		err = pk.PubackEncode(&buf)
	case packets.Pubrec:
		err = pk.PubrecEncode(&buf)
	case packets.Pubrel:
		pk.FixedHeader.Qos = 1 // [MQTT-3.6.1-1]
		err = pk.PubrelEncode(&buf)
	case packets.Pubcomp:
		err = pk.PubcompEncode(&buf)
	case packets.Subscribe:
		pk.FixedHeader.Qos = 1 // [MQTT-3.8.1-1]
		err = pk.SubscribeEncode(&buf)
	case packets.Unsubscribe:
		pk.FixedHeader.Qos = 1 // [MQTT-3.10.1-1]
		err = pk.UnsubscribeEncode(&buf)
	case packets.Pingreq:
		err = pk.PingreqEncode(&buf)
	case packets.Disconnect:
		err = pk.DisconnectEncode(&buf)
	default:
		err = fmt.Errorf("cannot send packet type %d", pk.FixedHeader.Type)
	}
	if err != nil {
		c.t.Fatalf("%s: encode %s: %v", c.id, packets.PacketNames[pk.FixedHeader.Type], err)
	}
	return buf.Bytes()
}

// read reads one packet from the wire.
func (c *client) read() (frame, error) {
	_ = c.conn.SetReadDeadline(time.Now().Add(wireTimeout))
	var f frame
	b, err := c.r.ReadByte()
	if err != nil {
		return f, err
	}
	if err := f.pk.FixedHeader.Decode(b); err != nil {
		return f, fmt.Errorf("fixed header %#x: %w", b, err)
	}
	n, _, err := packets.DecodeLength(c.r)
	if err != nil {
		return f, fmt.Errorf("remaining length: %w", err)
	}
	f.pk.FixedHeader.Remaining = n
	f.raw = make([]byte, n)
	if _, err := io.ReadFull(c.r, f.raw); err != nil {
		return f, err
	}
	f.pk.ProtocolVersion = c.version
	buf := append([]byte(nil), f.raw...)
	switch f.pk.FixedHeader.Type {
	case packets.Connack:
		err = f.pk.ConnackDecode(buf)
	case packets.Publish:
		err = f.pk.PublishDecode(buf)
	case packets.Puback:
		err = f.pk.PubackDecode(buf)
	case packets.Pubrec:
		err = f.pk.PubrecDecode(buf)
	case packets.Pubrel:
		err = f.pk.PubrelDecode(buf)
	case packets.Pubcomp:
		err = f.pk.PubcompDecode(buf)
	case packets.Suback:
		err = f.pk.SubackDecode(buf)
	case packets.Unsuback:
		err = f.pk.UnsubackDecode(buf)
	case packets.Pingresp:
	case packets.Disconnect:
		err = f.pk.DisconnectDecode(buf)
		if f.pk.ProtocolVersion == v5 && n == 1 {
			f.pk.ReasonCode = buf[0] // mochi's decoder wants properties after it
		}
	case packets.Auth:
		err = f.pk.AuthDecode(buf)
	default:
		err = errors.New("not a packet a server sends")
	}
	if err != nil {
		return f, fmt.Errorf("decode %s: %w", packets.PacketNames[f.pk.FixedHeader.Type], err)
	}
	return f, nil
}

// next returns the next packet from the server.
func (c *client) next() packets.Packet {
	c.t.Helper()
	if len(c.pending) > 0 {
		f := c.pending[0]
		c.pending = c.pending[1:]
		c.lastRaw = f.raw
		return f.pk
	}
	f, err := c.read()
	if err != nil {
		c.t.Fatalf("%s: read: %v", c.id, err)
	}
	c.lastRaw = f.raw
	return f.pk
}

// expect returns the next packet, which must be of type typ.
func (c *client) expect(typ byte) packets.Packet {
	c.t.Helper()
	pk := c.next()
	if pk.FixedHeader.Type != typ {
		c.t.Fatalf("%s: got %s, want %s", c.id, describe(pk), packets.PacketNames[typ])
	}
	return pk
}

// await reads until a packet of type typ with packet identifier id comes
// (any id when id is 0) and returns it; packets read on the way are kept
// for next.
func (c *client) await(typ byte, id uint16) packets.Packet {
	c.t.Helper()
	for i, f := range c.pending {
		if f.pk.FixedHeader.Type == typ && (id == 0 || f.pk.PacketID == id) {
			c.pending = append(c.pending[:i:i], c.pending[i+1:]...)
			return f.pk
		}
	}
	for {
		f, err := c.read()
		if err != nil {
			c.t.Fatalf("%s: waiting for %s: %v", c.id, packets.PacketNames[typ], err)
		}
		if f.pk.FixedHeader.Type == typ && (id == 0 || f.pk.PacketID == id) {
			return f.pk
		}
		c.pending = append(c.pending, f)
	}
}

// describe names a packet for a failure message.
func describe(pk packets.Packet) string {
	s := packets.PacketNames[pk.FixedHeader.Type]
	switch pk.FixedHeader.Type {
	case packets.Publish:
		s += fmt.Sprintf(" %q %q qos %d", pk.TopicName, pk.Payload, pk.FixedHeader.Qos)
		if pk.FixedHeader.Retain {
			s += " retain"
		}
		if pk.FixedHeader.Dup {
			s += " dup"
		}
		if pk.PacketID != 0 {
			s += fmt.Sprintf(" id %d", pk.PacketID)
		}
	case packets.Disconnect, packets.Connack:
		s += fmt.Sprintf(" %#x", pk.ReasonCode)
	case packets.Suback, packets.Unsuback:
		s += fmt.Sprintf(" id %d % x", pk.PacketID, pk.ReasonCodes)
	case packets.Puback, packets.Pubrec, packets.Pubrel, packets.Pubcomp:
		s += fmt.Sprintf(" id %d %#x", pk.PacketID, pk.ReasonCode)
	}
	return s
}

func (c *client) newID() uint16 {
	c.lastID++
	if c.lastID == 0 {
		c.lastID = 1
	}
	return c.lastID
}

// sync sends PINGREQ and reads up to its PINGRESP, keeping what comes
// before it for next: the server has then handled every packet sent
// before.
func (c *client) sync() {
	c.t.Helper()
	c.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pingreq}})
	c.await(packets.Pingresp, 0)
}

// nothingPending fails unless the next packet is the PINGRESP to a PINGREQ
// sent now: the server has sent nothing in answer to what came before.
func (c *client) nothingPending(what string) {
	c.t.Helper()
	c.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pingreq}})
	if pk := c.next(); pk.FixedHeader.Type != packets.Pingresp {
		c.t.Fatalf("%s: %s: got %s, want nothing (PINGRESP)", c.id, what, describe(pk))
	}
}

// sub is a subscription for subscribe.
func sub(filter string, qos byte) packets.Subscription {
	return packets.Subscription{Filter: filter, Qos: qos}
}

// subscribe subscribes and returns the SUBACK's reason codes.
func (c *client) subscribe(subs ...packets.Subscription) []byte {
	c.t.Helper()
	return c.subscribeProps(packets.Properties{}, subs...)
}

// subscribeProps subscribes with SUBSCRIBE properties (MQTT 5). It returns
// once the server has done with the SUBSCRIBE, its retained messages
// included (they may follow the SUBACK; next returns them).
func (c *client) subscribeProps(props packets.Properties, subs ...packets.Subscription) []byte {
	c.t.Helper()
	id := c.newID()
	c.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe}, PacketID: id, Filters: subs, Properties: props})
	ack := c.await(packets.Suback, id)
	if len(ack.ReasonCodes) != len(subs) {
		c.t.Fatalf("%s: SUBACK with %d reason codes for %d filters", c.id, len(ack.ReasonCodes), len(subs))
	}
	c.sync()
	return ack.ReasonCodes
}

// mustSubscribe subscribes and fails unless every filter is granted the
// QoS asked for.
func (c *client) mustSubscribe(subs ...packets.Subscription) {
	c.t.Helper()
	c.mustSubscribeProps(packets.Properties{}, subs...)
}

func (c *client) mustSubscribeProps(props packets.Properties, subs ...packets.Subscription) {
	c.t.Helper()
	codes := c.subscribeProps(props, subs...)
	for i, s := range subs {
		if codes[i] != s.Qos {
			c.t.Fatalf("%s: subscribe %q: SUBACK %#x, want %#x", c.id, s.Filter, codes[i], s.Qos)
		}
	}
}

// message is a PUBLISH for publish.
func message(topic, payload string, qos byte, retain bool) packets.Packet {
	return packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: qos, Retain: retain},
		TopicName:   topic,
		Payload:     []byte(payload),
	}
}

// publish sends a PUBLISH and completes its QoS flow: it returns the
// PUBACK or PUBREC (after PUBREL and PUBCOMP), or nothing for QoS 0. The
// server acknowledges a message once it has routed it (MQTK.md change 26).
// A retained message it follows with sync, which also covers QoS 0: the
// server has then stored it and sent it to the subscribers.
func (c *client) publish(pk packets.Packet) packets.Packet {
	c.t.Helper()
	if pk.FixedHeader.Qos > 0 && pk.PacketID == 0 {
		pk.PacketID = c.newID()
	}
	c.send(pk)
	if pk.FixedHeader.Retain {
		defer c.sync()
	}
	switch pk.FixedHeader.Qos {
	case 1:
		return c.await(packets.Puback, pk.PacketID)
	case 2:
		rec := c.await(packets.Pubrec, pk.PacketID)
		if rec.ReasonCode >= 0x80 {
			return rec
		}
		c.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pubrel}, PacketID: pk.PacketID})
		c.await(packets.Pubcomp, pk.PacketID)
		return rec
	}
	return packets.Packet{}
}

// pub publishes a message with no properties.
func (c *client) pub(topic, payload string, qos byte, retain bool) {
	c.t.Helper()
	c.publish(message(topic, payload, qos, retain))
}

// receive expects a PUBLISH next and acknowledges it as its QoS asks.
func (c *client) receive() packets.Packet {
	c.t.Helper()
	pk := c.expect(packets.Publish)
	c.ack(pk)
	return pk
}

// receiveFrom is receive for a message that must be on topic with payload.
func (c *client) receiveFrom(topic, payload string) packets.Packet {
	c.t.Helper()
	pk := c.receive()
	if pk.TopicName != topic || string(pk.Payload) != payload {
		c.t.Fatalf("%s: got %s, want a PUBLISH %q %q", c.id, describe(pk), topic, payload)
	}
	return pk
}

// ack acknowledges a PUBLISH from the server as its QoS asks; for QoS 2 it
// completes the flow (PUBREC, PUBREL, PUBCOMP).
func (c *client) ack(pk packets.Packet) {
	c.t.Helper()
	switch pk.FixedHeader.Qos {
	case 1:
		c.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: pk.PacketID})
	case 2:
		c.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pubrec}, PacketID: pk.PacketID})
		rel := c.await(packets.Pubrel, pk.PacketID)
		if rel.ReasonCode != 0 {
			c.t.Fatalf("%s: PUBREL for %d with reason code %#x", c.id, pk.PacketID, rel.ReasonCode)
		}
		c.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pubcomp}, PacketID: pk.PacketID})
	}
}

// disconnect sends DISCONNECT (normal disconnection) and waits for the
// server to close the connection.
func (c *client) disconnect() {
	c.t.Helper()
	c.disconnectWith(packets.Packet{})
}

// disconnectWith sends a DISCONNECT with pk's reason code and properties
// (MQTT 5) and waits for the server to close the connection.
func (c *client) disconnectWith(pk packets.Packet) {
	c.t.Helper()
	pk.FixedHeader.Type = packets.Disconnect
	c.send(pk)
	c.expectClosed()
}

// expectClosed fails unless the server closes the connection before
// sending anything else.
func (c *client) expectClosed() {
	c.t.Helper()
	if len(c.pending) > 0 {
		c.t.Fatalf("%s: got %s, want the connection closed", c.id, describe(c.pending[0].pk))
	}
	f, err := c.read()
	switch {
	case err == nil:
		c.t.Fatalf("%s: got %s, want the connection closed", c.id, describe(f.pk))
	case errors.Is(err, os.ErrDeadlineExceeded):
		c.t.Fatalf("%s: the server did not close the connection", c.id)
	}
}

// expectClosedAfterError fails unless the server closes the connection,
// in MQTT 5 after a DISCONNECT with reason code (which it may leave out,
// 4.13), in 3.1.1 and 3.1 without sending anything: those have no
// DISCONNECT from the server.
func (c *client) expectClosedAfterError(reason byte) {
	c.t.Helper()
	if c.version == v5 && len(c.pending) == 0 {
		f, err := c.read()
		if err != nil {
			return
		}
		if f.pk.FixedHeader.Type != packets.Disconnect || f.pk.ReasonCode != reason {
			c.t.Fatalf("%s: got %s, want DISCONNECT %#x or the connection closed", c.id, describe(f.pk), reason)
		}
	}
	c.expectClosed()
}

// drop closes the network connection without DISCONNECT, as a network
// failure would.
func (c *client) drop() {
	c.conn.Close()
}

// markerTopic is where a client's marker messages go (see quiet).
func (c *client) markerTopic() string { return "conformance/marker/" + c.id }

// sendMarker publishes a marker message to the client itself (subscribing
// to its marker topic the first time) and returns its payload. The server
// queues it for the client after everything it queued for the client
// before handling this PUBLISH, and after what other clients' packets
// queued if those clients have since had an answer (sync) to a later
// packet.
func (c *client) sendMarker() string {
	c.t.Helper()
	if c.markers == 0 {
		c.mustSubscribe(sub(c.markerTopic(), 0))
	}
	c.markers++
	payload := strconv.Itoa(c.markers)
	c.send(message(c.markerTopic(), payload, 0, false))
	return payload
}

func (c *client) isMarker(pk packets.Packet, payload string) bool {
	return pk.FixedHeader.Type == packets.Publish && pk.TopicName == c.markerTopic() && string(pk.Payload) == payload
}

// quiet fails unless the next packet is a marker message sent now: the
// server had nothing (else) queued for the client.
func (c *client) quiet(what string) {
	c.t.Helper()
	payload := c.sendMarker()
	if pk := c.next(); !c.isMarker(pk, payload) {
		c.t.Fatalf("%s: %s: got %s, want nothing", c.id, what, describe(pk))
	}
}

// collect receives (and acknowledges) messages up to a marker message sent
// now, and returns them.
func (c *client) collect() []packets.Packet {
	c.t.Helper()
	payload := c.sendMarker()
	var got []packets.Packet
	for {
		pk := c.expect(packets.Publish)
		if c.isMarker(pk, payload) {
			return got
		}
		c.ack(pk)
		got = append(got, pk)
	}
}

// startLimited starts a broker that accepts at most n connected clients
// (mqtk's MaxConnections, mosquitto's max_connections), for settle.
func startLimited(t *testing.T, n int) string {
	t.Helper()
	closeAfterBroker(t)
	if *onMosquitto {
		port := mosquittotest.Start(t, "allow_anonymous true", "max_connections "+strconv.Itoa(n))
		return net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	}
	b := brokertest.Start(t, broker.Config{MaxConnections: n})
	return net.JoinHostPort(b.Host, strconv.Itoa(b.Port))
}

// connectRetry is connect on a broker from startLimited: while the broker
// is full it refuses the connection (CONNACK "server unavailable" or
// "server busy", or it closes the connection), and connectRetry tries
// again. It does not wait between attempts: each is a round trip to the
// broker.
func connectRetry(t testing.TB, addr string, version byte, id string, opts ...option) (*client, packets.Packet) {
	t.Helper()
	for {
		c := dial(t, addr, version, id)
		pk := packets.Packet{
			FixedHeader: packets.FixedHeader{Type: packets.Connect}, ProtocolVersion: version,
			Connect: packets.ConnectParams{ProtocolName: []byte("MQTT"), ClientIdentifier: id, Keepalive: 60, Clean: true},
		}
		if version == v31 {
			pk.Connect.ProtocolName = []byte("MQIsdp")
		}
		for _, o := range opts {
			o(&pk)
		}
		c.send(pk)
		f, err := c.read()
		if err != nil {
			c.drop() // refused before CONNACK (mosquitto)
			continue
		}
		if f.pk.FixedHeader.Type != packets.Connack {
			t.Fatalf("%s: got %s, want CONNACK", id, describe(f.pk))
		}
		switch f.pk.ReasonCode {
		case 0:
			c.lastRaw = f.raw
			return c, f.pk
		case 0x03, 0x88, 0x89: // server unavailable (3.1, 3.1.1), server unavailable, server busy (5)
			c.drop()
			continue
		}
		t.Fatalf("%s: CONNACK %s", id, describe(f.pk))
	}
}

// settle returns once the broker has finished with every client whose
// connection has ended (a will it would publish has been published): on a
// broker from startLimited(n) with n-1 clients connected, a probe client is
// refused until the broker has let go of the others, and is then
// disconnected. Later connections must use connectRetry, as the broker may
// not have let go of the probe yet.
func settle(t testing.TB, addr string, version byte) {
	t.Helper()
	probe, _ := connectRetry(t, addr, version, "probe")
	probe.disconnect()
}
