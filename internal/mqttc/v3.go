package mqttc

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/url"
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

	// inflight bounds the QoS 1 and 2 publishes awaiting their ack (MQTT 3
	// has no Receive Maximum; paho has 65535 packet identifiers, shared
	// with SUBSCRIBE and UNSUBSCRIBE).
	inflight chan struct{}
}

// v3ReceiveMaximum is how many QoS 1 and 2 publishes may await their
// acknowledgement at once: what MQTT 5 lets the broker say, and below the
// 65535 packet identifiers, so a SUBSCRIBE always finds one.
const v3ReceiveMaximum = 65000

func dialV3(ctx context.Context, cfg Config, version int) (Client, error) {
	addr := cfg.Endpoint.String()
	ctx, cancel := context.WithTimeout(ctx, cfg.connectTimeout())
	defer cancel()
	conn, err := openConn(ctx, cfg, version)
	if err != nil {
		return nil, err
	}
	c := &v3Client{lifecycle: newLifecycle(addr, conn), inflight: make(chan struct{}, v3ReceiveMaximum)}

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
		select {
		case c.inflight <- struct{}{}:
		case <-c.done:
			return nil, c.lostErr("publish")
		case <-ctx.Done():
			return nil, ctxErr(ctx, "publish", m.Topic)
		}
	}
	p := &v3Pending{c: c, topic: m.Topic, slot: m.QoS > 0}
	// paho hands the packet to its writer goroutines before it returns, in
	// call order, and fails at once if the connection is gone; but the
	// packet is encoded, and its payload read, only when the writer gets to
	// it, after Publish has returned. The caller may reuse m.Payload as soon
	// as PublishAsync returns (mqtk bench rewrites its buffer for the next
	// message at once), so paho is given a copy of its own.
	p.tok = c.pc.Publish(m.Topic, m.QoS, m.Retain, bytes.Clone(m.Payload))
	select {
	case <-p.tok.Done():
		if err := p.tok.Error(); err != nil {
			p.release()
			select {
			case <-c.done:
				return nil, c.lostErr("publish")
			default:
			}
			if errors.Is(err, mqtt.ErrNotConnected) {
				return nil, c.lostErr("publish")
			}
			return nil, &NetError{Op: "publish", Addr: c.addr, Err: err}
		}
	default:
	}
	return p, nil
}

// v3Pending is a publish awaiting its PUBACK or PUBCOMP (QoS 0: being
// written).
type v3Pending struct {
	c     *v3Client
	topic string
	tok   mqtt.Token
	slot  bool // holds a place in c.inflight
}

func (p *v3Pending) release() {
	if p.slot {
		p.slot = false
		<-p.c.inflight
	}
}

func (p *v3Pending) Wait(ctx context.Context) error {
	defer p.release()
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
