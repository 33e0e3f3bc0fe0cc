// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: 2023 mochi-mqtt, mochi-co
// SPDX-FileContributor: mochi-co

package mqtt

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/xid"

	"github.com/mochi-mqtt/server/v2/mempool"
	"github.com/mochi-mqtt/server/v2/packets"
)

const (
	defaultKeepalive             uint16 = 10 // the default connection keepalive value in seconds.
	defaultClientProtocolVersion byte   = 4  // the default mqtt protocol version of connecting clients (if somehow unspecified).
	minimumKeepalive             uint16 = 5  // the minimum recommended keepalive - values under with display a warning.
)

var (
	ErrMinimumKeepalive = errors.New("client keepalive is below minimum recommended value and may exhibit connection instability")
)

// ReadFn is the function signature for the function used for reading and processing new packets.
type ReadFn func(*Client, packets.Packet) error

// Clients contains a map of the clients known by the broker.
type Clients struct {
	internal map[string]*Client // clients known by the broker, keyed on client id.
	sync.RWMutex
}

// NewClients returns an instance of Clients.
func NewClients() *Clients {
	return &Clients{
		internal: make(map[string]*Client),
	}
}

// Add adds a new client to the clients map, keyed on client id.
func (cl *Clients) Add(val *Client) {
	cl.Lock()
	defer cl.Unlock()
	cl.internal[val.ID] = val
}

// GetAll returns all the clients.
func (cl *Clients) GetAll() map[string]*Client {
	cl.RLock()
	defer cl.RUnlock()
	m := map[string]*Client{}
	for k, v := range cl.internal {
		m[k] = v
	}
	return m
}

// Get returns the value of a client if it exists.
func (cl *Clients) Get(id string) (*Client, bool) {
	cl.RLock()
	defer cl.RUnlock()
	val, ok := cl.internal[id]
	return val, ok
}

// Len returns the length of the clients map.
func (cl *Clients) Len() int {
	cl.RLock()
	defer cl.RUnlock()
	val := len(cl.internal)
	return val
}

// Delete removes a client from the internal map.
func (cl *Clients) Delete(id string) {
	cl.Lock()
	defer cl.Unlock()
	delete(cl.internal, id)
}

// GetByListener returns clients matching a listener id.
func (cl *Clients) GetByListener(id string) []*Client {
	cl.RLock()
	defer cl.RUnlock()
	clients := make([]*Client, 0, len(cl.internal)) // mqtk: was cl.Len(), a second RLock: see MQTK.md
	for _, client := range cl.internal {
		if client.Net.Listener == id && !client.Closed() {
			clients = append(clients, client)
		}
	}
	return clients
}

// Client contains information about a client known by the broker.
type Client struct {
	Properties   ClientProperties // client properties
	State        ClientState      // the operational state of the client.
	Net          ClientConnection // network connection state of the client
	ID           string           // the client id.
	ops          *ops             // ops provides a reference to server ops.
	sync.RWMutex                  // mutex
	// mqtk: writeMu serialises writes to the connection. It used to be the
	// client's own lock, which NextPacketID also takes, so a subscriber
	// whose socket write blocked (it stopped reading) stalled every
	// publisher routing a QoS 1 or 2 message to it.
	writeMu sync.Mutex
}

// ClientConnection contains the connection transport and metadata for the client.
type ClientConnection struct {
	Conn     net.Conn      // the net.Conn used to establish the connection
	bconn    *bufio.Reader // a buffered net.Conn for reading packets
	outbuf   *bytes.Buffer // a buffer for writing packets
	Remote   string        // the remote address of the client
	Listener string        // listener id of the client
	Inline   bool          // if true, the client is the built-in 'inline' embedded client
	// mqtk: acknowledgements the read loop holds back in outbuf while it
	// has more packets to read, see WriteAck. These belong to the
	// goroutine running Read.
	batch     bool      // the packet being handled is not the last one read in
	held      bool      // outbuf holds acknowledgements not yet written
	heldSince time.Time // when the first of them was held
	// mqtk: Conn as a DirectWriter, if it is one that can (see writeDirect).
	direct DirectWriter
}

// DirectWriter is a connection that can write without waiting for the
// socket (mqtk, MQTK.md change 25). The client's write queue uses it to
// write a packet queued while nothing else is from the goroutine that
// queued it, when the socket takes it at once, instead of in a writer
// goroutine of its own.
type DirectWriter interface {
	// WriteDirect writes as much of p as the connection takes at once,
	// without waiting, and returns how much: 0 and no error if it takes
	// nothing now. An error means the connection is broken.
	WriteDirect(p []byte) (int, error)
	// CanWriteDirect reports whether WriteDirect ever writes anything
	// (not, for example, on a TLS connection).
	CanWriteDirect() bool
}

// ClientProperties contains the properties which define the client behaviour.
type ClientProperties struct {
	Props           packets.Properties
	Will            Will
	Username        []byte
	ProtocolVersion byte
	Clean           bool
}

// Will contains the last will and testament details for a client connection.
type Will struct {
	Payload           []byte                 // -
	User              []packets.UserProperty // -
	TopicName         string                 // -
	Flag              uint32                 // 0,1
	WillDelayInterval uint32                 // -
	Qos               byte                   // -
	Retain            bool                   // -
}

// ClientState tracks the state of the client.
type ClientState struct {
	TopicAliases    TopicAliases       // a map of topic aliases
	stopCause       atomic.Value       // reason for stopping
	Inflight        *Inflight          // a map of in-flight qos messages
	Subscriptions   *Subscriptions     // a map of the subscription filters a client maintains
	disconnected    int64              // the time the client disconnected in unix time, for calculating expiry
	outbound        *outQueue          // queue for pending outbound packets (mqtk: was a channel, see outQueue)
	endOnce         sync.Once          // only end once
	isTakenOver     atomic.Bool        // used to identify orphaned clients
	packetID        uint32             // the current highest packetID
	open            context.Context    // indicate that the client is open for packet exchange
	cancelOpen      context.CancelFunc // cancel function for open context
	Keepalive       uint16             // the number of seconds the connection can wait
	ServerKeepalive bool               // keepalive was set by the server

	// mqtk: set while the read loop makes a subscription (processSubscribe),
	// until its retained messages are queued; the live messages routed to
	// the client meanwhile wait in deferred, not in outbound, and are
	// queued after them (see Server.deferLive, MQTK.md change 17).
	subscribing atomic.Bool
	deferMu     sync.Mutex        // guards deferred, and subscribing's clearing
	deferred    []*packets.Packet // from pooledPackets, in the order routed
}

// newClient returns a new instance of Client. This is almost exclusively used by Server
// for creating new clients, but it lives here because it's not dependent.
func newClient(c net.Conn, o *ops) *Client {
	ctx, cancel := context.WithCancel(context.Background())
	cl := &Client{
		State: ClientState{
			Inflight:      NewInflights(),
			Subscriptions: NewSubscriptions(),
			TopicAliases:  NewTopicAliases(o.options.Capabilities.TopicAliasMaximum),
			open:          ctx,
			cancelOpen:    cancel,
			Keepalive:     defaultKeepalive,
		},
		Properties: ClientProperties{
			ProtocolVersion: defaultClientProtocolVersion, // default protocol version
		},
		ops: o,
	}
	cl.State.outbound = newOutQueue(int(o.options.Capabilities.MaximumClientWritesPending), cl.writeQueued, cl.writeDirect) // mqtk: see outQueue

	if c != nil {
		cl.Net = ClientConnection{
			Conn:   c,
			bconn:  bufio.NewReaderSize(c, o.options.ClientNetReadBufferSize),
			Remote: c.RemoteAddr().String(),
		}
		if dw, ok := c.(DirectWriter); ok && dw.CanWriteDirect() { // mqtk: see writeDirect
			cl.Net.direct = dw
		}
	}

	return cl
}

// startWriting lets the packets queued for the client be written: those
// queued so far and, from now on, each as it is queued. mqtk: it replaces
// WriteLoop, a goroutine per client waiting on the queue for the
// connection's whole life; a writer (writeQueued) now runs only while the
// queue holds something (see outQueue).
func (cl *Client) startWriting() {
	cl.State.outbound.start()
}

// writeQueued writes the packets queued for the client, in order, until the
// queue is empty. After the connection has ended, what is left is given
// back to the pool (writePacket refuses at once).
func (cl *Client) writeQueued() {
	if cl.Net.direct != nil { // mqtk: what a direct write left, see writeDirect
		cl.writeMu.Lock()
		if err := cl.flushOutbuf(); err != nil {
			cl.ops.log.Debug("failed publishing packet", "error", err, "client", cl.ID)
		}
		cl.writeMu.Unlock()
	}
	for {
		pk, ok := cl.State.outbound.pop()
		if !ok {
			return
		}
		if err := cl.writePacketFrom(pk); err != nil && debugging(cl.ops.log) { // mqtk: was WritePacket(*pk); see debugging
			cl.ops.log.Debug("failed publishing packet", "error", err, "client", cl.ID, "packet", pk)
		}
		freePooledPacket(pk) // mqtk: see pooledPackets
	}
}

// writeDirect is the client's write queue's first try at writing a packet
// queued while the queue was idle (see outQueue.direct): the goroutine that
// queued it writes it, if the client's writes are free and the socket takes
// the whole packet at once. It reports whether that ended the writing;
// otherwise the caller starts a writer goroutine, which writes first
// whatever part of the packet the socket did not take (kept in outbuf),
// then what was queued meanwhile. A client that stopped reading costs the
// publisher one write attempt that takes nothing.
//
// mqtk: every packet queued for an idle client started a writer goroutine,
// which usually ran on another thread that had to be woken: at a light load
// that was most of the broker's latency (MQTK.md, change 25).
func (cl *Client) writeDirect() bool {
	if cl.Net.direct == nil { // not a connection that can
		return false
	}
	if cl.ops.hooks.Provides(OnPacketSent) {
		// Those hooks run with writeMu held here: one writing to the
		// client would wait for itself. (No mqtk hook provides it.)
		return false
	}
	if !cl.writeMu.TryLock() { // a write to the client is under way (or blocked)
		return false
	}
	pk, ok := cl.State.outbound.pop()
	if !ok { // not possible: the caller queued one and is the writer; but if so, idle
		cl.writeMu.Unlock()
		return true
	}
	err := cl.writePacket(pk, writeDirect)
	left := cl.Net.outbuf != nil
	cl.writeMu.Unlock()
	if err == errDiscard {
		cl.discardTooLarge(pk)
	}
	if err != nil && debugging(cl.ops.log) {
		cl.ops.log.Debug("failed publishing packet", "error", err, "client", cl.ID, "packet", pk)
	}
	freePooledPacket(pk)
	return !left && cl.State.outbound.finish()
}

// ParseConnect parses the connect parameters and properties for a client.
func (cl *Client) ParseConnect(lid string, pk packets.Packet) {
	cl.Net.Listener = lid

	cl.Properties.ProtocolVersion = pk.ProtocolVersion
	cl.Properties.Username = pk.Connect.Username
	cl.Properties.Clean = pk.Connect.Clean
	cl.Properties.Props = pk.Properties.Copy(false)

	if cl.Properties.Props.ReceiveMaximum > cl.ops.options.Capabilities.MaximumInflight { // 3.3.4 Non-normative
		cl.Properties.Props.ReceiveMaximum = cl.ops.options.Capabilities.MaximumInflight
	}

	cl.State.Keepalive = pk.Connect.Keepalive                                              // [MQTT-3.2.2-22]
	cl.State.Inflight.ResetReceiveQuota(int32(cl.ops.options.Capabilities.ReceiveMaximum)) // server receive max per client
	if pk.ProtocolVersion < 5 {
		// mqtk: MQTT 3.1.1 and 3.1 have no Receive Maximum: a client may
		// have a QoS 2 message awaiting PUBREL for each of its packet
		// identifiers, as with mosquitto; mochi disconnected it beyond the
		// MQTT 5 quota, which it cannot have been told (MQTK.md, change 39).
		cl.State.Inflight.ResetReceiveQuota(math.MaxUint16)
	}
	cl.State.Inflight.ResetSendQuota(int32(cl.Properties.Props.ReceiveMaximum)) // client receive max
	cl.State.TopicAliases.Outbound = NewOutboundTopicAliases(cl.Properties.Props.TopicAliasMaximum)

	cl.ID = pk.Connect.ClientIdentifier
	if cl.ID == "" {
		cl.ID = xid.New().String() // [MQTT-3.1.3-6] [MQTT-3.1.3-7]
		cl.Properties.Props.AssignedClientID = cl.ID
	}
	// mqtk: at debug level, once the client has its ID (MQTK.md, change
	// 37): a keep-alive of 0 (none) or a few seconds is the client's
	// choice, which MQTT allows; mochi warned of it, with an empty ID.
	if pk.Connect.Keepalive <= minimumKeepalive {
		cl.ops.log.Debug(
			ErrMinimumKeepalive.Error(),
			"client", cl.ID,
			"keepalive", pk.Connect.Keepalive,
			"recommended", minimumKeepalive,
		)
	}

	if pk.Connect.WillFlag {
		cl.Properties.Will = Will{
			Qos:               pk.Connect.WillQos,
			Retain:            pk.Connect.WillRetain,
			Payload:           pk.Connect.WillPayload,
			TopicName:         pk.Connect.WillTopic,
			WillDelayInterval: pk.Connect.WillProperties.WillDelayInterval,
			User:              pk.Connect.WillProperties.User,
		}
		if pk.Properties.SessionExpiryIntervalFlag &&
			pk.Properties.SessionExpiryInterval < pk.Connect.WillProperties.WillDelayInterval {
			cl.Properties.Will.WillDelayInterval = pk.Properties.SessionExpiryInterval
		}
		if pk.Connect.WillFlag {
			cl.Properties.Will.Flag = 1 // atomic for checking
		}
	}
}

// refreshDeadline refreshes the read/write deadline for the net.Conn connection.
func (cl *Client) refreshDeadline(keepalive uint16) {
	var expiry time.Time // nil time can be used to disable deadline if keepalive = 0
	if keepalive > 0 {
		// mqtk: one and a half keep-alives, in milliseconds: in whole seconds
		// keepalive/2 rounded down, so a keep-alive of 1 second allowed 1
		// second, not 1.5, and 3 allowed 4, not 4.5.
		expiry = time.Now().Add(time.Duration(keepalive) * 1500 * time.Millisecond) // [MQTT-3.1.2-22]
	}

	if cl.Net.Conn != nil {
		_ = cl.Net.Conn.SetDeadline(expiry) // [MQTT-3.1.2-22]
	}
}

// NextPacketID returns the next available (unused) packet id for the client.
// If no unused packet ids are available, an error is returned and the client
// should be disconnected.
func (cl *Client) NextPacketID() (i uint32, err error) {
	cl.Lock()
	defer cl.Unlock()

	i = atomic.LoadUint32(&cl.State.packetID)
	started := i
	overflowed := false
	for {
		if overflowed && i == started {
			return 0, packets.ErrQuotaExceeded
		}

		if i >= cl.ops.options.Capabilities.maximumPacketID {
			overflowed = true
			i = 0
			continue
		}

		i++

		if !cl.State.Inflight.Has(uint16(i)) { // mqtk: was Get, see Has
			atomic.StoreUint32(&cl.State.packetID, i)
			return i, nil
		}
	}
}

// resendInflight resends the in-flight messages placed before before (see
// Inflight.nextSeq), in their order in the queue. mqtk: it replaces
// ResendInflightMessages, which resent them all: a resumed session resends
// the queue it took over, not the messages routed to it since (see
// attachClient).
//
// mqtk: the resend goes on past a packet the write refuses
// (ErrPacketTooLarge), as the writer of queued packets does: one a hook
// holds back (keeping to the client's Receive Maximum) stays in the
// session, and a PUBLISH larger than the client's Maximum Packet Size is
// discarded (discardTooLarge). mochi returned the error, and the
// connection was dropped: a session whose queue held a message too large
// for the client could never be resumed [MQTT-3.1.2-25].
func (cl *Client) resendInflight(before uint64) error {
	if cl.State.Inflight.Len() == 0 {
		return nil
	}

	queue := cl.State.Inflight.getAll(false, before)
	for k := range queue {
		tk, sent := &queue[k].Packet, queue[k].sent
		if tk.FixedHeader.Type == packets.Publish && !cl.Net.Inline && !cl.ops.hooks.OnACLCheck(cl, tk.TopicName, false) {
			// mqtk: a message queued for the session is checked again, as a
			// live one is when it is routed (MQTK.md, change 40): the
			// connection resuming it may be another user's, or the rules
			// may have changed since it was queued.
			cl.discard(tk, packets.ErrNotAuthorized, "discarded a queued message the client may no longer read")
			continue
		}
		if tk.FixedHeader.Type == packets.Publish {
			tk.FixedHeader.Dup = true // [MQTT-3.3.1-1] [MQTT-3.3.1-3]
		}

		cl.ops.hooks.OnQosPublish(cl, *tk, tk.Created, 0)
		if tk.FixedHeader.Type == packets.Publish {
			// mqtk: the hooks are told of a resend (DUP 1); the client gets
			// DUP 1 only if the message was sent before, see inflightEntry.
			tk.FixedHeader.Dup = sent
		}
		err := cl.WritePacket(*tk)
		if errors.Is(err, packets.ErrPacketTooLarge) {
			continue // held back, or discarded (see above)
		}
		if err != nil {
			return err
		}

		if tk.FixedHeader.Type == packets.Puback || tk.FixedHeader.Type == packets.Pubcomp {
			if ok := cl.State.Inflight.Delete(tk.PacketID); ok {
				cl.ops.hooks.OnQosComplete(cl, *tk)
				atomic.AddInt64(&cl.ops.info.Inflight, -1)
			}
		}
	}

	return nil
}

// ClearInflights deletes all inflight messages for the client, e.g. for a disconnected user with a clean session.
func (cl *Client) ClearInflights() {
	for _, tk := range cl.State.Inflight.GetAll(false) {
		if ok := cl.State.Inflight.Delete(tk.PacketID); ok {
			cl.ops.hooks.OnQosDropped(cl, tk)
			atomic.AddInt64(&cl.ops.info.Inflight, -1)
		}
	}
}

// ClearExpiredInflights deletes any inflight messages which have expired.
func (cl *Client) ClearExpiredInflights(now, maximumExpiry int64) []uint16 {
	deleted := []uint16{}
	for _, tk := range cl.State.Inflight.DeleteExpired(now, maximumExpiry) { // mqtk: was GetAll(false) and Delete, see DeleteExpired
		cl.ops.hooks.OnQosDropped(cl, tk)
		atomic.AddInt64(&cl.ops.info.Inflight, -1)
		deleted = append(deleted, tk.PacketID)
	}

	return deleted
}

// Read reads incoming packets from the connected client and transforms them into
// packets to be handled by the packetHandler.
func (cl *Client) Read(packetHandler ReadFn) error {
	var err error
	defer cl.flushHeld() // mqtk: see WriteAck

	for {
		if cl.Closed() {
			return nil
		}

		// mqtk: never wait for the client with acknowledgements held back,
		// nor hold them for long; see WriteAck.
		if cl.Net.held && (!cl.packetBuffered() || time.Since(cl.Net.heldSince) >= maxAckHold) {
			cl.flushHeld()
		}

		cl.refreshDeadline(cl.State.Keepalive)
		fh := new(packets.FixedHeader)
		err = cl.ReadFixedHeader(fh)
		if err != nil {
			return err
		}

		pk, err := cl.ReadPacket(fh)
		if err != nil {
			return err
		}

		cl.Net.batch = cl.packetBuffered() // mqtk: see WriteAck
		err = packetHandler(cl, pk)        // Process inbound packet.
		cl.Net.batch = false
		if err != nil {
			return err
		}
	}
}

// maxAckHold is the longest the read loop holds acknowledgements back
// (checked between packets).
const maxAckHold = time.Millisecond

// WriteAck writes an acknowledgement of a packet the client sent (PUBACK,
// PUBREC, PUBREL, PUBCOMP) from the read loop that is handling that
// packet. mqtk: a client publishing QoS 1 or 2 messages in a stream got one
// socket write per acknowledgement, most of what the broker spent on each
// message besides the delivery. While the read loop has another complete
// packet of the client's in its buffer, the acknowledgement is held back in
// the client's write buffer, to be written with the next, before the loop
// waits for more input or has held it for maxAckHold (or leaves). Any other
// write to the client writes it first: order on the wire is kept. Called
// from anywhere else, it is WritePacket.
func (cl *Client) WriteAck(pk packets.Packet) error {
	if !cl.Net.batch {
		return cl.WritePacket(pk)
	}
	p := newPooledPacket(&pk)
	err := cl.writePacket(p, writeHold)
	freePooledPacket(p)
	if err == nil && !cl.Net.held {
		cl.Net.held = true
		cl.Net.heldSince = time.Now()
	}
	return err
}

// packetBuffered reports whether the read buffer holds a whole packet, so
// that reading it does not wait for the client.
func (cl *Client) packetBuffered() bool {
	n := cl.Net.bconn.Buffered()
	if n < 2 {
		return false
	}
	b, _ := cl.Net.bconn.Peek(min(n, 5))
	remaining, shift := 0, 0
	for i := 1; i < len(b); i++ {
		remaining |= int(b[i]&0x7f) << shift
		if b[i]&0x80 == 0 {
			return n >= i+1+remaining
		}
		shift += 7
	}
	return false
}

// flushHeld writes the acknowledgements held back (see WriteAck).
func (cl *Client) flushHeld() {
	if !cl.Net.held {
		return
	}
	cl.Net.held = false
	cl.writeMu.Lock()
	_ = cl.flushOutbuf()
	cl.writeMu.Unlock()
}

// Stop instructs the client to shut down all processing goroutines and disconnect.
func (cl *Client) Stop(err error) {
	cl.State.endOnce.Do(func() {

		if cl.Net.Conn != nil {
			_ = cl.Net.Conn.Close() // omit close error
		}

		if err != nil {
			cl.State.stopCause.Store(err)
		}

		if cl.State.cancelOpen != nil {
			cl.State.cancelOpen()
		}

		atomic.StoreInt64(&cl.State.disconnected, time.Now().Unix())
	})
}

// StopCause returns the reason the client connection was stopped, if any.
func (cl *Client) StopCause() error {
	if cl.State.stopCause.Load() == nil {
		return nil
	}
	return cl.State.stopCause.Load().(error)
}

// StopTime returns the the time the client disconnected in unix time, else zero.
func (cl *Client) StopTime() int64 {
	return atomic.LoadInt64(&cl.State.disconnected)
}

// Closed returns true if client connection is closed.
func (cl *Client) Closed() bool {
	return cl.State.open == nil || cl.State.open.Err() != nil
}

func (cl *Client) IsTakenOver() bool {
	return cl.State.isTakenOver.Load()
}

// ReadFixedHeader reads in the values of the next packet's fixed header.
func (cl *Client) ReadFixedHeader(fh *packets.FixedHeader) error {
	if cl.Net.bconn == nil {
		return ErrConnectionClosed
	}

	b, err := cl.Net.bconn.ReadByte()
	if err != nil {
		return err
	}

	err = fh.Decode(b)
	if err != nil {
		return err
	}

	var bu int
	fh.Remaining, bu, err = packets.DecodeLength(cl.Net.bconn)
	if err != nil {
		return err
	}

	if cl.ops.options.Capabilities.MaximumPacketSize > 0 && uint32(fh.Remaining+1) > cl.ops.options.Capabilities.MaximumPacketSize {
		return packets.ErrPacketTooLarge // [MQTT-3.2.2-15]
	}

	atomic.AddInt64(&cl.ops.info.BytesReceived, int64(bu+1))
	return nil
}

// ReadPacket reads the remaining buffer into an MQTT packet.
func (cl *Client) ReadPacket(fh *packets.FixedHeader) (pk packets.Packet, err error) {
	atomic.AddInt64(&cl.ops.info.PacketsReceived, 1)

	pk.ProtocolVersion = cl.Properties.ProtocolVersion // inherit client protocol version for decoding
	pk.FixedHeader = *fh
	// mqtk: a packet larger than 64 KiB is read into memory that grows
	// with what actually arrives, not allocated whole from the length a
	// client declares (up to 256 MB, pinned until a timeout when the rest
	// never comes). And p is this packet's own, so it is decoded without
	// the copy mochi made of every packet.
	var p []byte
	var n int
	if rem := pk.FixedHeader.Remaining; rem <= 64<<10 {
		p = make([]byte, rem)
		n, err = io.ReadFull(cl.Net.bconn, p)
	} else {
		var b bytes.Buffer
		b.Grow(64 << 10)
		var m int64
		m, err = io.CopyN(&b, cl.Net.bconn, int64(rem))
		p, n = b.Bytes(), int(m)
	}
	if err != nil {
		return pk, err
	}

	atomic.AddInt64(&cl.ops.info.BytesReceived, int64(n))
	px := p
	switch pk.FixedHeader.Type {
	case packets.Connect:
		err = pk.ConnectDecode(px)
	case packets.Disconnect:
		err = pk.DisconnectDecode(px)
	case packets.Connack:
		err = pk.ConnackDecode(px)
	case packets.Publish:
		err = pk.PublishDecode(px)
		if err == nil {
			atomic.AddInt64(&cl.ops.info.MessagesReceived, 1)
		}
	case packets.Puback:
		err = pk.PubackDecode(px)
	case packets.Pubrec:
		err = pk.PubrecDecode(px)
	case packets.Pubrel:
		err = pk.PubrelDecode(px)
	case packets.Pubcomp:
		err = pk.PubcompDecode(px)
	case packets.Subscribe:
		err = pk.SubscribeDecode(px)
	case packets.Suback:
		err = pk.SubackDecode(px)
	case packets.Unsubscribe:
		err = pk.UnsubscribeDecode(px)
	case packets.Unsuback:
		err = pk.UnsubackDecode(px)
	case packets.Pingreq:
	case packets.Pingresp:
	case packets.Auth:
		err = pk.AuthDecode(px)
	default:
		err = fmt.Errorf("invalid packet type; %v", pk.FixedHeader.Type)
	}

	if err != nil {
		return pk, err
	}

	// mqtk: was pk, err = cl.ops.hooks.OnPacketRead(cl, pk), see
	// PacketReader. The hooks get a pooled copy: &pk would put every packet
	// read on the heap.
	hp := newPooledPacket(&pk)
	err = cl.ops.hooks.readPacket(cl, hp)
	pk = *hp
	freePooledPacket(hp)
	return
}

// WritePacket encodes and writes a packet to the client.
func (cl *Client) WritePacket(pk packets.Packet) error {
	// mqtk: the write works on a pooled copy, see writePacketFrom.
	p := newPooledPacket(&pk)
	err := cl.writePacketFrom(p)
	freePooledPacket(p)
	return err
}

// writePacketFrom is WritePacket for a packet of the caller's own, which
// the write changes (the encode hooks get it through a pointer). mqtk:
// writing took the Packet (800 bytes) by value, and passed it on by value
// to each hook; writeQueued hands over the queued packet itself.
func (cl *Client) writePacketFrom(pk *packets.Packet) error {
	err := cl.writePacket(pk, writeWait)
	if err != nil && !cl.Closed() {
		// mqtk: packets buffered while more were queued are written with
		// the last of them; when that one is refused (too large for the
		// client, or held back by a hook), they were left in the buffer
		// until the next write, a keep-alive later at worst.
		cl.writeMu.Lock()
		if cl.State.outbound.Len() == 0 {
			_ = cl.flushOutbuf()
		}
		cl.writeMu.Unlock()
	}
	if err == errDiscard {
		cl.discardTooLarge(pk)
	}
	return err
}

// writeMode is how writePacket writes (mqtk).
type writeMode uint8

const (
	writeWait   writeMode = iota // write the packet, waiting for the socket as long as it takes
	writeHold                    // buffer it (an acknowledgement, see WriteAck)
	writeDirect                  // with writeMu held by the caller: write what the socket takes at once, keep the rest in outbuf (see writeDirect)
)

// writePacket writes pk as mode says.
func (cl *Client) writePacket(pk *packets.Packet, mode writeMode) error {
	if cl.Closed() {
		return ErrConnectionClosed
	}

	if cl.Net.Conn == nil {
		return nil
	}

	if pk.Expiry > 0 {
		expiry := pk.Expiry - time.Now().Unix()
		if expiry < 1 {
			expiry = 1
		}
		pk.Properties.MessageExpiryInterval = uint32(expiry) // [MQTT-3.3.2-6]
	}

	pk.ProtocolVersion = cl.Properties.ProtocolVersion
	if pk.Mods.MaxSize == 0 { // NB we use this statement to embed client packet sizes in tests
		pk.Mods.MaxSize = cl.Properties.Props.MaximumPacketSize
	}
	limit := pk.Mods.MaxSize // mqtk: unless a hook holds the packet back, see discardTooLarge

	if cl.Properties.Props.RequestProblemInfoFlag && cl.Properties.Props.RequestProblemInfo == 0x0 {
		pk.Mods.DisallowProblemInfo = true // [MQTT-3.1.2-29] strict, no problem info on any packet if set
	}

	if pk.FixedHeader.Type != packets.Connack || cl.Properties.Props.RequestResponseInfo == 0x1 || cl.ops.options.Capabilities.Compatibilities.AlwaysReturnResponseInfo {
		pk.Mods.AllowResponseInfo = true // [MQTT-3.1.2-28] we need to know which properties we can encode
	}

	cl.ops.hooks.encodePacket(cl, pk) // mqtk: was pk = cl.ops.hooks.OnPacketEncode(cl, pk), see PacketEncoder

	var err error
	buf := writeBuffers.Get() // mqtk: was a new buffer per packet, see writeBuffers
	defer writeBuffers.Put(buf)

	// mqtk: a PUBLISH to a client that takes topic aliases gets its alias
	// here, and is encoded and written under writeMu: see setTopicAlias.
	// With writeDirect, the caller holds it already.
	aliasing := pk.FixedHeader.Type == packets.Publish && cl.Properties.Props.TopicAliasMaximum > 0
	locked := mode == writeDirect
	var newAlias uint16
	if aliasing {
		if !locked {
			cl.writeMu.Lock()
			locked = true
		}
		newAlias = cl.setTopicAlias(pk)
	}

	switch pk.FixedHeader.Type {
	case packets.Connect:
		err = pk.ConnectEncode(buf)
	case packets.Connack:
		err = pk.ConnackEncode(buf)
	case packets.Publish:
		err = pk.PublishEncode(buf)
	case packets.Puback:
		err = pk.PubackEncode(buf)
	case packets.Pubrec:
		err = pk.PubrecEncode(buf)
	case packets.Pubrel:
		err = pk.PubrelEncode(buf)
	case packets.Pubcomp:
		err = pk.PubcompEncode(buf)
	case packets.Subscribe:
		err = pk.SubscribeEncode(buf)
	case packets.Suback:
		err = pk.SubackEncode(buf)
	case packets.Unsubscribe:
		err = pk.UnsubscribeEncode(buf)
	case packets.Unsuback:
		err = pk.UnsubackEncode(buf)
	case packets.Pingreq:
		err = pk.PingreqEncode(buf)
	case packets.Pingresp:
		err = pk.PingrespEncode(buf)
	case packets.Disconnect:
		err = pk.DisconnectEncode(buf)
	case packets.Auth:
		err = pk.AuthEncode(buf)
	default:
		err = fmt.Errorf("%w: %v", packets.ErrNoValidPacketAvailable, pk.FixedHeader.Type)
	}
	tooLarge := err == nil && pk.Mods.MaxSize > 0 && uint32(buf.Len()) > pk.Mods.MaxSize
	if tooLarge {
		err = packets.ErrPacketTooLarge // [MQTT-3.1.2-24] [MQTT-3.1.2-25]
	}
	if err != nil {
		if newAlias > 0 { // mqtk: not written, so the client never learns the alias
			cl.State.TopicAliases.Outbound.unset(pk.TopicName, newAlias)
		}
		if locked && mode != writeDirect {
			cl.writeMu.Unlock()
		}
		if tooLarge && pk.Mods.MaxSize == limit && pk.FixedHeader.Type == packets.Publish && pk.FixedHeader.Qos > 0 {
			return errDiscard // the caller discards it, see discardTooLarge
		}
		return err
	}
	if pk.FixedHeader.Type == packets.Publish && pk.FixedHeader.Qos > 0 && !pk.FixedHeader.Dup {
		cl.State.Inflight.markSent(pk.PacketID) // mqtk: see inflightEntry.sent
	}

	n, err := func() (int64, error) {
		if mode == writeDirect { // mqtk: see writeDirect; the caller unlocks
			return cl.writeDirectBytes(buf.Bytes())
		}
		if !locked { // mqtk: held already when aliasing, see above
			cl.writeMu.Lock() // mqtk: not cl.Lock, see writeMu
		}
		defer cl.writeMu.Unlock()
		if mode == writeHold { // mqtk: see WriteAck
			if cl.Net.outbuf == nil {
				cl.Net.outbuf = writeBuffers.Get()
			}
			n, _ := cl.Net.outbuf.Write(buf.Bytes())
			if cl.Net.outbuf.Len() < cl.ops.options.ClientNetWriteBufferSize {
				return int64(n), nil
			}
			err = cl.flushOutbuf()
			return int64(n), err
		}
		if cl.State.outbound.Len() == 0 {
			if cl.Net.outbuf == nil {
				return buf.WriteTo(cl.Net.Conn)
			}

			// first write to buffer, then flush buffer
			n, _ := cl.Net.outbuf.Write(buf.Bytes()) // will always be successful
			err = cl.flushOutbuf()
			return int64(n), err
		}

		// there are more writes in the queue
		if cl.Net.outbuf == nil {
			if buf.Len() >= cl.ops.options.ClientNetWriteBufferSize {
				return buf.WriteTo(cl.Net.Conn)
			}
			cl.Net.outbuf = writeBuffers.Get() // mqtk: was new(bytes.Buffer), see flushOutbuf
		}

		n, _ := cl.Net.outbuf.Write(buf.Bytes()) // will always be successful
		if cl.Net.outbuf.Len() < cl.ops.options.ClientNetWriteBufferSize {
			return int64(n), nil
		}

		err = cl.flushOutbuf()
		return int64(n), err
	}()
	if err != nil {
		return err
	}

	atomic.AddInt64(&cl.ops.info.BytesSent, n)
	atomic.AddInt64(&cl.ops.info.PacketsSent, 1)
	if pk.FixedHeader.Type == packets.Publish {
		atomic.AddInt64(&cl.ops.info.MessagesSent, 1)
	}

	if cl.ops.hooks.Provides(OnPacketSent) { // mqtk: no copy of pk for no one
		cl.ops.hooks.OnPacketSent(cl, *pk, buf.Bytes())
	}

	return err
}

// errDiscard is ErrPacketTooLarge for a QoS 1 or 2 PUBLISH too large for
// the client (not one a hook holds back): writePacket's caller discards it
// (discardTooLarge) once it holds no lock of the client's (mqtk).
var errDiscard = fmt.Errorf("%w: discarded", packets.ErrPacketTooLarge)

// discardTooLarge takes a QoS 1 or 2 PUBLISH that is too large for the
// client (errDiscard) out of its session: "Where a Packet is too large to
// send, the Server MUST discard it without sending it and then behave as
// if it had completed sending that Application Message" [MQTT-3.1.2-25].
// mqtk: mochi kept it in flight, so it was resent on every later
// connection of the session (and, as a resend, marked DUP on the first
// that took it). The OnQosDropped hooks get it with the reason code 0x95
// (Packet too large), which no PUBLISH carries otherwise: a hook that
// counts it against the client's Receive Maximum frees its quota, which no
// acknowledgement will. The caller must hold no lock of the client's
// (writeMu): a hook may write to the client.
//
// Not mended: if another connection takes the session over between the
// Delete and the hooks, a store that keeps the queue for the successor
// (IsTakenOver) keeps the message's record, and a restart brings it back.
func (cl *Client) discardTooLarge(pk *packets.Packet) {
	cl.discard(pk, packets.ErrPacketTooLarge, "discarded a message larger than the client's maximum packet size")
}

// discard takes a QoS 1 or 2 PUBLISH that will not be sent out of the
// client's session, telling the OnQosDropped hooks why (reason).
func (cl *Client) discard(pk *packets.Packet, reason packets.Code, what string) {
	cl.ops.log.Debug(what, "client", cl.ID, "topic", pk.TopicName)
	if cl.State.Inflight.Delete(pk.PacketID) {
		atomic.AddInt64(&cl.ops.info.Inflight, -1)
		dropped := *pk
		dropped.ReasonCode = reason.Code
		cl.ops.hooks.OnQosDropped(cl, dropped)
		cl.State.Inflight.IncreaseSendQuota()
	}
}

// setTopicAlias gives a PUBLISH to a client that takes topic aliases (it
// set a Topic Alias Maximum) the outbound alias of its topic: with the
// topic the first time, when the alias is set, and alone after. It returns
// the alias if it set it now, to be taken back if the packet is not
// written. It is called with writeMu held until the packet is written, so
// aliases are set in the order the client receives them.
//
// mqtk: mochi set the alias when it routed a message to the client, on
// the copy it both queued and kept in Inflight (and so in the store). A
// message resent on a later connection of the session carried an alias
// that connection never agreed ([MQTT-3.3.2-7]; with no topic, a protocol
// error), or carried none and no topic after a restart. Also, a message
// too large for the client, which is not sent, had set an alias the client
// never learnt, and two publishers routing to the client at once could
// queue the alias alone before the packet that set it.
func (cl *Client) setTopicAlias(pk *packets.Packet) uint16 {
	if pk.TopicName == "" {
		return 0
	}
	alias, exists := cl.State.TopicAliases.Outbound.Set(pk.TopicName)
	if alias == 0 {
		return 0 // none left: the topic goes in full
	}
	pk.Properties.TopicAlias = alias
	pk.Properties.TopicAliasFlag = true
	if exists {
		pk.TopicName = ""
		return 0
	}
	return alias
}

// writeBuffers are the buffers WritePacket encodes into. mqtk: a new
// buffer per packet, grown twice for a small PUBLISH, was a fifth of the
// bytes the broker allocated when fanning a message out. Buffers that grew
// beyond 64 KiB are not kept.
var writeBuffers = mempool.NewBuffer(64 << 10)

// writeDirectBytes writes b after what outbuf holds, as much as the socket
// takes at once, and keeps the rest in outbuf; it reports b's length as
// written (the rest is the writer goroutine's, see writeDirect). It is
// called with writeMu held.
func (cl *Client) writeDirectBytes(b []byte) (int64, error) {
	if cl.Net.outbuf == nil {
		n, err := cl.Net.direct.WriteDirect(b)
		if err == nil && n < len(b) {
			cl.Net.outbuf = writeBuffers.Get()
			cl.Net.outbuf.Write(b[n:])
		}
		return int64(len(b)), err
	}
	cl.Net.outbuf.Write(b)
	n, err := cl.Net.direct.WriteDirect(cl.Net.outbuf.Bytes())
	cl.Net.outbuf.Next(n)
	if err == nil && cl.Net.outbuf.Len() == 0 {
		writeBuffers.Put(cl.Net.outbuf)
		cl.Net.outbuf = nil
	}
	return int64(len(b)), err
}

func (cl *Client) flushOutbuf() (err error) {
	if cl.Net.outbuf == nil {
		return
	}

	_, err = cl.Net.outbuf.WriteTo(cl.Net.Conn)
	if err == nil {
		// mqtk: the buffer goes back to the pool (it was garbage, and a new
		// one grew again for the next burst of writes).
		writeBuffers.Put(cl.Net.outbuf)
		cl.Net.outbuf = nil
	}
	return
}
