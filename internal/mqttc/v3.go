package mqttc

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/url"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	v3packets "github.com/eclipse/paho.mqtt.golang/packets"
)

// v3Client is the MQTT 3.1.1 and 3.1 backend, on eclipse/paho.mqtt.golang.
// paho opens no connection of its own: it is handed the one dialTransport
// opened (so every transport works with every version), and its
// auto-reconnect and connect retry are off, so that a lost connection ends
// the client as with MQTT 5. Nor does it store packets (v3NoStore): nothing
// outlives the client.
//
// What MQTT 3 lacks, the client says so rather than pretends: no properties,
// no subscription options, no reason codes on acknowledgements (a PUBACK
// confirms receipt, not success: a broker that denies a publish by its ACL
// still acknowledges it, or closes the connection), and no server
// DISCONNECT (a broker that ends the session just closes the connection).
type v3Client struct {
	lifecycle
	pc   mqtt.Client
	info ServerInfo

	// inflight bounds the QoS 1 publishes awaiting their ack (MQTT 3 has
	// no Receive Maximum; paho has 65535 packet identifiers, shared with
	// SUBSCRIBE and UNSUBSCRIBE), and inflight2 the QoS 2 ones.
	inflight, inflight2 chan struct{}

	// sends carries the publishes to the goroutine that hands them to paho
	// (c.send), in call order; sent2 passes the QoS 2 ones, once paho has
	// them, to the goroutine that frees their places in inflight2 as they
	// complete (c.completeQoS2).
	sends, sent2 chan *v3Pending
}

// v3SendQueue is how many publishes may wait for c.send: enough that a
// publisher seldom waits on it, since paho takes a publish only when its
// writer is ready for it.
const v3SendQueue = 256

// v3ReceiveMaximum is how many QoS 1 publishes may await their
// acknowledgement at once: what MQTT 5 lets the broker say, and with the
// QoS 2 window below the 65535 packet identifiers, so a SUBSCRIBE always
// finds one.
const v3ReceiveMaximum = 65000

// v3QoS2Window is how many QoS 2 publishes may await their PUBCOMP at once.
// A broker holds each from PUBLISH to PUBREL, and MQTT 3 gives it no way to
// say how many it will hold. mosquitto holds max_inflight_messages (20 by
// default) from an MQTT 3 client and drops what it sends beyond them,
// after acknowledging it, or (with max_queued_messages 0) closes the
// connection. 20 is mosquitto's default and mosquitto_pub's window;
// Config.MaxInflight (pub -M) sets another.
const v3QoS2Window = 20

func dialV3(ctx context.Context, cfg Config, version int) (Client, error) {
	addr := cfg.Endpoint.String()
	ctx, cancel := context.WithTimeout(ctx, cfg.connectTimeout())
	defer cancel()
	conn, err := openConn(ctx, cfg, version)
	if err != nil {
		return nil, err
	}
	window1, window2 := v3ReceiveMaximum, v3QoS2Window
	if n := cfg.MaxInflight; n > 0 {
		w := min(n, v3ReceiveMaximum)
		window1, window2 = w, w
	}
	c := &v3Client{
		lifecycle: newLifecycle(addr, conn),
		inflight:  make(chan struct{}, window1),
		inflight2: make(chan struct{}, window2),
		sends:     make(chan *v3Pending, v3SendQueue),
		sent2:     make(chan *v3Pending, window2),
	}

	o := mqtt.NewClientOptions()
	// paho needs a broker URL; it is never dialled.
	o.Servers = []*url.URL{{Scheme: "tcp", Host: "mqtk"}}
	o.SetCustomOpenConnectionFn(func(*url.URL, mqtt.ClientOptions) (net.Conn, error) {
		return packetWriter{conn}, nil
	})
	o.SetProtocolVersion(uint(version))
	o.SetClientID(cfg.ClientID)
	o.SetCleanSession(cfg.CleanStart)
	o.SetKeepAlive(time.Duration(cfg.KeepAlive) * time.Second)
	// paho sends the user name only if it is not empty, and the password
	// only with a user name and if it is not empty.
	if cfg.HasUsername {
		o.SetUsername(cfg.Username)
	}
	if cfg.HasPassword {
		o.SetPassword(cfg.Password)
	}
	if w := cfg.Will; w != nil {
		o.SetBinaryWill(w.Topic, w.Payload, w.QoS, w.Retain)
	}
	o.SetAutoReconnect(false)
	o.SetConnectRetry(false)
	o.SetResumeSubs(false)
	o.SetStore(v3NoStore{})
	// One message at a time, in arrival order, acknowledged once the
	// handler has returned. Every message goes to the default handler (no
	// per-subscription routes), and there is always one: paho does not
	// acknowledge a message nobody handles.
	o.SetOrderMatters(true)
	onMsg, onAck := cfg.OnMessage, cfg.OnMessageAck
	o.SetAutoAckDisabled(onAck != nil) // then acknowledged here, if taken
	o.SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) {
		msg := &Message{
			Topic: m.Topic(), Payload: m.Payload(), QoS: m.Qos(), Retain: m.Retained(), Dup: m.Duplicate(),
			PacketID: m.MessageID(), Received: time.Now(),
		}
		switch {
		case onAck != nil:
			if onAck(msg) {
				m.Ack()
			}
		case onMsg != nil:
			onMsg(msg)
		}
	})
	o.SetConnectionLostHandler(func(_ mqtt.Client, err error) { c.endLost(err) })
	// Our context bounds the handshake; paho's deadline on the connection
	// is a little later, so that ours is the one that fires.
	if d, ok := ctx.Deadline(); ok {
		o.SetConnectTimeout(time.Until(d) + time.Second)
	}
	c.pc = mqtt.NewClient(o)

	tok := c.pc.Connect()
	select {
	case <-tok.Done():
	case <-ctx.Done():
		_ = conn.Close() // paho's read of CONNACK fails, and Connect returns
		<-tok.Done()
	}
	ct := tok.(*mqtt.ConnectToken)
	rc := ct.ReturnCode()
	if ctx.Err() == nil && tok.Error() == nil && rc == v3packets.Accepted {
		c.info = ServerInfo{
			ProtocolVersion: version, SessionPresent: ct.SessionPresent(), ClientID: cfg.ClientID,
			ReceiveMaximum: v3ReceiveMaximum, MaximumQoS: 2, RetainAvailable: true,
		}
		go c.send()
		go c.completeQoS2()
		return c, nil
	}
	c.pc.Disconnect(0) // in case paho went on with a connection we gave up on
	_ = conn.Close()
	if ctx.Err() == nil && rc != v3packets.Accepted && rc != v3packets.ErrNetworkError {
		return nil, &ConnectError{Addr: addr, Version: version, Code: rc}
	}
	err = tok.Error()
	if ctx.Err() != nil {
		err = ctx.Err()
	}
	// paho wraps the cause as "network Error : cause".
	if u, ok := err.(interface{ Unwrap() []error }); ok {
		if errs := u.Unwrap(); len(errs) > 0 {
			err = errs[len(errs)-1]
		}
	}
	return nil, connectFailed(ctx, cfg, conn, err)
}

func (c *v3Client) Server() ServerInfo { return c.info }

func (c *v3Client) Publish(ctx context.Context, m *Message) error { return publishSync(ctx, c, m) }

func (c *v3Client) PublishAsync(ctx context.Context, m *Message) (Pending, error) {
	if err := v5OnlyProps(&m.Props, c.info.ProtocolVersion); err != nil {
		return nil, err
	}
	if m.QoS > c.info.MaximumQoS {
		return nil, invalidf("QoS %d is above the broker's maximum QoS %d", m.QoS, c.info.MaximumQoS)
	}
	// paho panics on a packet MQTT cannot encode.
	if n := v3Remaining(m); n > maxRemaining {
		return nil, tooLargeForMQTT(packetLen(n))
	}
	select {
	case <-c.done:
		return nil, c.lostErr("publish")
	default:
	}
	if m.QoS > 0 {
		slots := c.inflight
		if m.QoS == 2 {
			slots = c.inflight2
		}
		select {
		case slots <- struct{}{}:
		case <-c.done:
			return nil, c.lostErr("publish")
		case <-ctx.Done():
			return nil, ctxErr(ctx, "publish", m.Topic)
		}
	}
	// The payload is copied: the caller may reuse m.Payload as soon as
	// PublishAsync returns (mqtk bench rewrites its buffer for the next
	// message at once), and paho reads it later, when its writer encodes
	// the packet.
	p := &v3Pending{
		c: c, topic: m.Topic, qos: m.QoS, retain: m.Retain, payload: bytes.Clone(m.Payload),
		sent: make(chan struct{}),
	}
	p.slot.Store(m.QoS > 0)
	select {
	case c.sends <- p:
		return p, nil
	case <-c.done:
		p.release()
		return nil, c.lostErr("publish")
	case <-ctx.Done():
		p.release()
		return nil, ctxErr(ctx, "publish", m.Topic)
	}
}

// send hands the publishes in c.sends to paho, one at a time in call order,
// until the connection ends. It is a goroutine of its own because paho's
// Publish can block for 30 seconds after the connection is lost: it waits
// for its writer to take the packet, and if the connection ends meanwhile,
// the goroutine that fed the writer may stop first, leaving Publish to its
// timeout (paho.mqtt.golang issue 325; the timeout is WriteTimeout, or 30 s,
// and WriteTimeout would also bound every write to a slow broker). So no
// caller waits on paho's Publish: PublishAsync and Wait also watch c.done,
// which paho's connection-lost handler closes once paho's own goroutines
// have stopped. A send stuck in paho is left to end by itself.
//
// A publish paho fails before sending it ends the connection: paho's 30 s
// timeout can fire on a connection that is still up (a broker that stopped
// reading), and what is queued behind the failed publish must not go out
// before it is sent again (pub -l resends it, in order, on a new
// connection).
func (c *v3Client) send() {
	for {
		select {
		case p := <-c.sends:
			select {
			case <-c.done: // the rest is never sent (Wait says so)
				return
			default:
			}
			if !p.flush {
				p.tok = c.pc.Publish(p.topic, p.qos, p.retain, p.payload)
				p.payload = nil
				// What fails at once failed before it was sent (not
				// connected, paho's timeout), or in the writing.
				select {
				case <-p.tok.Done():
					if p.unsent = p.tok.Error(); p.unsent != nil {
						c.endLost(p.unsent) // first, so that this is the reason
						c.conn.abort()
					}
				default:
				}
			}
			close(p.sent)
			if p.qos == 2 && !p.flush {
				select {
				case c.sent2 <- p: // no wait: each there holds a place in inflight2
				case <-c.done:
					return
				}
			}
		case <-c.done:
			return
		}
	}
}

// completeQoS2 frees each QoS 2 publish's place in inflight2 once it has
// completed (PUBCOMP, or failed), and nothing else does once it has been
// sent: the window is of messages the broker may hold, which a caller's
// Wait giving up (its ctx ended) does not end, and a caller may collect
// its acknowledgements late. It takes them in order, so a place may be
// freed late, never early.
func (c *v3Client) completeQoS2() {
	for {
		select {
		case p := <-c.sent2:
			select {
			case <-p.tok.Done():
				p.release()
			case <-c.done:
				return
			}
		case <-c.done:
			return
		}
	}
}

// flushSends waits, within ctx, until c.send has handed paho everything put in
// c.sends before the call.
func (c *v3Client) flushSends(ctx context.Context) {
	p := &v3Pending{flush: true, sent: make(chan struct{})}
	select {
	case c.sends <- p:
	case <-c.done:
		return
	case <-ctx.Done():
		return
	}
	select {
	case <-p.sent:
	case <-c.done:
	case <-ctx.Done():
	}
}

// v3Pending is a publish on its way to paho (sent is closed once c.send
// has handed it over) and then awaiting its PUBACK or PUBCOMP (QoS 0:
// being written).
type v3Pending struct {
	c       *v3Client
	topic   string
	qos     byte
	retain  bool
	payload []byte      // until c.send hands it to paho
	slot    atomic.Bool // holds a place in c.inflight or, at QoS 2, c.inflight2
	flush   bool        // a marker of flushSends, not a publish

	sent   chan struct{}
	tok    mqtt.Token // set before sent is closed
	unsent error      // paho failed the publish before sending it
}

func (p *v3Pending) release() {
	if p.slot.Swap(false) {
		if p.qos == 2 {
			<-p.c.inflight2
		} else {
			<-p.c.inflight
		}
	}
}

func (p *v3Pending) Wait(ctx context.Context) error {
	if p.qos < 2 {
		defer p.release() // QoS 2: c.completeQoS2
	}
	select {
	case <-p.sent:
	case <-p.c.done:
		select {
		case <-p.sent:
		default:
			return p.c.lostErr("publish") // never sent
		}
	case <-ctx.Done():
		select {
		case <-p.sent: // and perhaps acknowledged: see below
		default:
			return ctxErr(ctx, "publish", p.topic)
		}
	}
	if err := p.unsent; err != nil {
		select {
		case <-p.c.done:
			return p.c.lostErr("publish")
		default:
		}
		if errors.Is(err, mqtt.ErrNotConnected) {
			return p.c.lostErr("publish")
		}
		return &NetError{Op: "publish", Addr: p.c.addr, Err: err}
	}
	select {
	case <-p.tok.Done():
		if p.tok.Error() == nil {
			return nil
		}
		// paho fails what is in flight when the connection is lost; the
		// reason follows.
		select {
		case <-p.c.done:
			return p.c.publishLost()
		case <-ctx.Done():
		}
	case <-p.c.done:
		// The ack may have arrived just before the end.
		select {
		case <-p.tok.Done():
			if p.tok.Error() == nil {
				return nil
			}
		default:
		}
		return p.c.publishLost()
	case <-ctx.Done():
		// An acknowledgement that had arrived counts (select picks at
		// random among what is ready).
		select {
		case <-p.tok.Done():
			if p.tok.Error() == nil {
				return nil
			}
		default:
		}
	}
	return ctxErr(ctx, "publish", p.topic)
}

// publishLost is the error for a publish whose acknowledgement the end of
// the connection cut short. With MQTT 3 that is how a broker may refuse a
// publish (mochi does, for one it does not authorize), so it says so.
func (c *v3Client) publishLost() error {
	err := c.lostErr("publish")
	var ne *NetError
	if errors.As(err, &ne) && closedByPeer(ne.Err) {
		ne.Hint = "the broker closed the connection, which is how an MQTT " + VersionName(c.info.ProtocolVersion) +
			" broker refuses a publish (one it does not authorize, or one larger than it accepts): there are no reason codes"
	}
	return err
}

// Subscribe sends one SUBSCRIBE per filter, all at once and in order (paho
// puts the filters of one SUBSCRIBE in a map, which would lose their
// order), and waits for every SUBACK.
func (c *v3Client) Subscribe(ctx context.Context, subs []Subscription, opts SubscribeOptions) ([]byte, error) {
	if err := v5OnlySubscribe(subs, opts, c.info.ProtocolVersion); err != nil {
		return nil, err
	}
	c.flushSends(ctx) // paho has the publishes before it first, as before send
	toks := make([]mqtt.Token, len(subs))
	for i, s := range subs {
		toks[i] = c.pc.Subscribe(s.Filter, s.QoS, nil)
	}
	codes := make([]byte, len(subs))
	var rejected error
	for i, tok := range toks {
		if err := c.await(ctx, tok, "subscribe", subs[i].Filter); err != nil {
			return nil, err
		}
		for _, code := range tok.(*mqtt.SubscribeToken).Result() {
			codes[i] = code
		}
		if codes[i] >= 0x80 && rejected == nil {
			rejected = &RejectedError{Op: "subscribe", Topic: subs[i].Filter, Code: codes[i]}
		}
	}
	return codes, rejected
}

// Unsubscribe sends one UNSUBSCRIBE; MQTT 3's UNSUBACK has no reason codes.
func (c *v3Client) Unsubscribe(ctx context.Context, filters ...string) error {
	c.flushSends(ctx) // paho has the publishes before it first, as before send
	return c.await(ctx, c.pc.Unsubscribe(filters...), "unsubscribe", filters[0])
}

// await waits for a SUBSCRIBE's or UNSUBSCRIBE's acknowledgement.
func (c *v3Client) await(ctx context.Context, tok mqtt.Token, op, topic string) error {
	select {
	case <-tok.Done():
		if err := tok.Error(); err != nil {
			return c.opErr(ctx, op, topic, err)
		}
		return nil
	case <-c.done:
		return c.lostErr(op)
	case <-ctx.Done():
		return c.opErr(ctx, op, topic, ctx.Err())
	}
}

func (c *v3Client) Disconnect(ctx context.Context) error {
	// What was published before goes before the DISCONNECT, within half
	// of ctx's time, so that a broker that stopped reading leaves the
	// DISCONNECT a chance.
	flushCtx := ctx
	if d, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		flushCtx, cancel = context.WithTimeout(ctx, time.Until(d)/2)
		defer cancel()
	}
	c.flushSends(flushCtx)
	// paho sends DISCONNECT, waits up to quiesce for it to be written, and
	// stops its goroutines.
	quiesce := 10 * time.Second
	if d, ok := ctx.Deadline(); ok {
		quiesce = max(time.Until(d), time.Millisecond)
	}
	c.disconnect(ctx, func() { c.pc.Disconnect(uint(quiesce / time.Millisecond)) })
	return nil
}

// v3NoStore is paho.mqtt.golang's packet store when nothing needs storing.
// paho keeps a copy of every packet in flight to resend it when the same
// client reconnects, which a v3Client never does (each Dial is a client of
// its own; the broker keeps a persistent session), as connSession keeps
// none for MQTT 5.
type v3NoStore struct{}

func (v3NoStore) Open()                               {}
func (v3NoStore) Put(string, v3packets.ControlPacket) {}
func (v3NoStore) Get(string) v3packets.ControlPacket  { return nil }
func (v3NoStore) All() []string                       { return nil }
func (v3NoStore) Del(string)                          {}
func (v3NoStore) Close()                              {}
func (v3NoStore) Reset()                              {}

// v5OnlyProps refuses MQTT 5 publish properties on an MQTT 3 connection.
func v5OnlyProps(p *Properties, version int) error {
	if p.ContentType != "" || p.ResponseTopic != "" || p.CorrelationData != nil || p.MessageExpiry != nil ||
		p.PayloadFormat != nil || p.TopicAlias != 0 || len(p.User) > 0 {
		return invalidf("publish properties need MQTT 5; the connection is MQTT %s", VersionName(version))
	}
	return nil
}

// v5OnlySubscribe refuses MQTT 5 subscription options on an MQTT 3
// connection.
func v5OnlySubscribe(subs []Subscription, opts SubscribeOptions, version int) error {
	if opts.SubscriptionID != 0 || len(opts.User) > 0 {
		return invalidf("subscription identifiers and user properties need MQTT 5; the connection is MQTT %s", VersionName(version))
	}
	for _, s := range subs {
		if s.NoLocal || s.RetainAsPublished || s.RetainHandling != 0 {
			return invalidf("subscription options (no local, retain as published, retain handling) need MQTT 5; the connection is MQTT %s", VersionName(version))
		}
	}
	return nil
}

// v3Remaining is the Remaining Length of m's PUBLISH in MQTT 3.1.1 and 3.1:
// the topic with its length, the Packet Identifier at QoS 1 and 2, and the
// payload.
func v3Remaining(m *Message) int {
	n := 2 + len(m.Topic) + len(m.Payload)
	if m.QoS > 0 {
		n += 2
	}
	return n
}
