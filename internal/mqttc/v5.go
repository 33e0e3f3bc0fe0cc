package mqttc

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"sync"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"
)

// v5Client is the MQTT 5 backend, on eclipse/paho.golang. paho reads and
// decodes packets and sends pings; the session state (packet identifiers,
// the Receive Maximum, acknowledgements) is connSession's, and publishes are
// written here so that several can be in flight in call order (paho's own
// Publish blocks).
type v5Client struct {
	lifecycle
	pc      *paho.Client
	session *connSession
	scratch []byte // appendPublish's buffer; the connection's lock guards it
	info    ServerInfo

	aliasMu sync.Mutex
	aliases map[uint16]string // alias -> topic already sent with it

	// handling is held while a message is handed to Config.OnMessageAck and
	// acknowledged; Disconnect waits for it, so that the acknowledgement of
	// a message whose handler ends the run goes out before DISCONNECT.
	handling sync.Mutex
}

func dialV5(ctx context.Context, cfg Config) (Client, error) {
	addr := cfg.Endpoint.String()
	ctx, cancel := context.WithTimeout(ctx, cfg.connectTimeout())
	defer cancel()
	conn, err := openConn(ctx, cfg, V5)
	if err != nil {
		return nil, err
	}
	c := &v5Client{lifecycle: newLifecycle(addr, conn), session: newConnSession(cfg.MaxInflight), aliases: map[uint16]string{}}
	// paho's pinger sends a PINGREQ as soon as CONNACK arrives, then every
	// keep-alive without traffic both ways. The CONNECT and CONNACK are that
	// traffic: marked here, the first PINGREQ comes a keep-alive later, as
	// mosquitto's clients send it. (A pub that sent its PINGREQ and then
	// DISCONNECT at once left the broker to answer a closed socket.)
	pinger := paho.NewDefaultPinger()
	pinger.PacketSent()
	pinger.PacketReceived()
	pcfg := paho.ClientConfig{
		ClientID:      cfg.ClientID,
		Conn:          conn,
		Session:       c.session,
		PacketTimeout: 24 * time.Hour, // callers bound every wait with their context
		OnClientError: func(err error) { c.endLost(err) },
		PingHandler:   pinger,
	}
	conn.session = c.session
	if onAck := cfg.OnMessageAck; onAck != nil {
		pcfg.OnPublishReceived = []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			c.handling.Lock()
			defer c.handling.Unlock()
			take := onAck(fromPaho(pr.Packet))
			if pr.Packet.QoS > 0 {
				if take {
					_ = c.session.ack(pr.Packet.QoS, pr.Packet.PacketID) // now, under handling (see Disconnect)
				}
				c.session.decline(pr.Packet.PacketID) // paho's own Ack, after this returns, sends nothing
			}
			return true, nil
		}}
	} else if cfg.OnMessage != nil {
		onMsg := cfg.OnMessage
		pcfg.OnPublishReceived = []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			onMsg(fromPaho(pr.Packet))
			return true, nil
		}}
	}
	c.pc = paho.NewClient(pcfg)

	cp := &paho.Connect{
		ClientID:   cfg.ClientID,
		KeepAlive:  cfg.KeepAlive,
		CleanStart: cfg.CleanStart,
		// Problem information (reason strings, user properties) is what lets
		// us print why the broker rejected something; paho's zero value
		// would ask the broker to leave it out.
		Properties: &paho.ConnectProperties{SessionExpiryInterval: cfg.SessionExpiry, RequestProblemInfo: true},
	}
	if cfg.HasUsername {
		cp.Username, cp.UsernameFlag = cfg.Username, true
	}
	if cfg.HasPassword {
		cp.Password, cp.PasswordFlag = []byte(cfg.Password), true
	}
	if w := cfg.Will; w != nil {
		cp.WillMessage = &paho.WillMessage{Topic: w.Topic, Payload: w.Payload, QoS: w.QoS, Retain: w.Retain}
		cp.WillProperties = &paho.WillProperties{
			PayloadFormat: w.Props.PayloadFormat, MessageExpiry: w.Props.MessageExpiry,
			ContentType: w.Props.ContentType, ResponseTopic: w.Props.ResponseTopic,
			CorrelationData: w.Props.CorrelationData, User: toPahoUser(w.Props.User),
		}
	}
	ca, err := c.pc.Connect(ctx, cp)
	if err != nil {
		_ = conn.Close()
		if ca != nil && ca.ReasonCode >= 0x80 {
			ce := &ConnectError{Addr: addr, Version: V5, Code: ca.ReasonCode}
			if ca.Properties != nil {
				ce.Reason = ca.Properties.ReasonString
			}
			return nil, ce
		}
		if body, ok := conn.firstConnack(); ok && len(body) == 2 {
			// An MQTT 3.1.1 or 3.1 CONNACK, which paho cannot decode: the
			// broker does not speak MQTT 5 (it should say so with return
			// code 1).
			return nil, &ConnectError{Addr: addr, Version: V311, Code: body[1]}
		}
		return nil, connectFailed(ctx, cfg, conn, err)
	}
	c.info = ServerInfo{
		ProtocolVersion: 5, SessionPresent: ca.SessionPresent, ClientID: cfg.ClientID,
		ReceiveMaximum: 65535, MaximumQoS: 2, RetainAvailable: true,
	}
	if p := ca.Properties; p != nil {
		c.info.AssignedClientID = p.AssignedClientID
		if p.AssignedClientID != "" {
			c.info.ClientID = p.AssignedClientID
			if conn.trace != nil {
				conn.trace.setClientID(p.AssignedClientID)
			}
		}
		if p.MaximumPacketSize != nil {
			c.info.MaximumPacketSize = *p.MaximumPacketSize
		}
		if p.ReceiveMaximum != nil {
			c.info.ReceiveMaximum = *p.ReceiveMaximum
		}
		if p.TopicAliasMaximum != nil {
			c.info.TopicAliasMaximum = *p.TopicAliasMaximum
		}
		if p.MaximumQoS != nil {
			c.info.MaximumQoS = *p.MaximumQoS
		}
		c.info.RetainAvailable = p.RetainAvailable
		c.info.ServerKeepAlive = p.ServerKeepAlive
	}
	go func() {
		<-c.pc.Done()
		c.endLost(nil)
	}()
	return c, nil
}

func (c *v5Client) Server() ServerInfo { return c.info }

func (c *v5Client) Publish(ctx context.Context, m *Message) error { return publishSync(ctx, c, m) }

func (c *v5Client) PublishAsync(ctx context.Context, m *Message) (Pending, error) {
	if m.QoS > c.info.MaximumQoS {
		return nil, invalidf("QoS %d is above the broker's maximum QoS %d", m.QoS, c.info.MaximumQoS)
	}
	if m.Retain && !c.info.RetainAvailable {
		return nil, invalidf("the broker does not support retained messages")
	}
	pb := &packets.Publish{Topic: m.Topic, Payload: m.Payload, QoS: m.QoS, Retain: m.Retain, Properties: toPacketProps(&m.Props)}
	unalias := func() {}
	if a := m.Props.TopicAlias; a != 0 {
		if c.info.TopicAliasMaximum == 0 {
			return nil, invalidf("the broker does not accept topic aliases (its Topic Alias Maximum is 0)")
		}
		if a > c.info.TopicAliasMaximum {
			return nil, invalidf("topic alias %d is above the broker's Topic Alias Maximum %d", a, c.info.TopicAliasMaximum)
		}
		pb.Properties.TopicAlias = &a
		c.aliasMu.Lock()
		if prev, had := c.aliases[a]; prev == m.Topic {
			pb.Topic = ""
		} else {
			c.aliases[a] = m.Topic
			// A message refused below never tells the broker the alias.
			unalias = func() {
				c.aliasMu.Lock()
				if had {
					c.aliases[a] = prev
				} else {
					delete(c.aliases, a)
				}
				c.aliasMu.Unlock()
			}
		}
		c.aliasMu.Unlock()
	}
	if size := packetSize(pb); size > maxPacket {
		unalias()
		return nil, tooLargeForMQTT(size)
	} else if max := c.info.MaximumPacketSize; max > 0 && size > int(max) {
		unalias()
		return nil, tooLargef("the message is a %d-byte packet, larger than the broker's Maximum Packet Size of %d bytes", size, max)
	}
	select {
	case <-c.done:
		return nil, c.lostErr("publish")
	default:
	}
	if m.QoS == 0 {
		if err := c.write(ctx, pb); err != nil {
			return nil, c.writeFailed(ctx, m.Topic, err)
		}
		return done{}, nil
	}
	ret := make(chan packets.ControlPacket, 1)
	if err := c.session.AddToSession(ctx, pb, ret); err != nil {
		if cerr := ctxErr(ctx, "publish", m.Topic); cerr != nil {
			return nil, cerr
		}
		return nil, c.lostErr("publish")
	}
	if err := c.write(ctx, pb); err != nil {
		if notQueued(err) {
			c.session.forget(pb.PacketID) // never sent: its place and identifier are free
		}
		return nil, c.writeFailed(ctx, m.Topic, err)
	}
	return &pending{c: c, topic: m.Topic, ret: ret}, nil
}

// writeFailed is PublishAsync's error for a write that failed with err: the
// context's, if it ended before anything was sent.
func (c *v5Client) writeFailed(ctx context.Context, topic string, err error) error {
	if notQueued(err) {
		if cerr := ctxErr(ctx, "publish", topic); cerr != nil {
			return cerr
		}
	}
	return &NetError{Op: "publish", Addr: c.addr, Err: err}
}

// write sends one packet; the error includes one that happened when the
// gathered packet was written (see traceConn). If ctx ends while the
// broker is not reading, it gives up (see LockCtx).
func (c *v5Client) write(ctx context.Context, pb *packets.Publish) error {
	c.conn.LockCtx(ctx)
	var err error
	if plainPublish(pb) {
		c.scratch = appendPublish(c.scratch[:0], pb)
		_, err = c.conn.Write(c.scratch)
	} else {
		_, err = pb.WriteTo(lockedWriter{c.conn})
	}
	if uerr := c.conn.UnlockErr(); err == nil {
		err = uerr
	}
	if err != nil {
		return err
	}
	return c.conn.writeErr()
}

// plainPublish reports whether appendPublish can encode pb: a payload that
// fits a write batch and no property but a topic alias, as every publish of
// mqtk bench. paho's encoder builds a packet from four buffers, allocating
// each, which was a seventh of a busy publisher's CPU.
func plainPublish(pb *packets.Publish) bool {
	p := pb.Properties
	return len(pb.Payload) < maxBatch/2 && (p == nil || p.ContentType == "" && p.ResponseTopic == "" &&
		p.CorrelationData == nil && p.MessageExpiry == nil && p.PayloadFormat == nil && len(p.User) == 0 &&
		p.SubscriptionIdentifier == nil)
}

// appendPublish appends pb, an MQTT 5 PUBLISH, encoded as paho would.
func appendPublish(b []byte, pb *packets.Publish) []byte {
	var props [3]byte
	np := 0
	if pb.Properties != nil && pb.Properties.TopicAlias != nil {
		a := *pb.Properties.TopicAlias
		props, np = [3]byte{packets.PropTopicAlias, byte(a >> 8), byte(a)}, 3
	}
	n := plainRemaining(pb)
	flags := byte(packets.PUBLISH<<4) | pb.QoS<<1
	if pb.Duplicate {
		flags |= 8
	}
	if pb.Retain {
		flags |= 1
	}
	b = binary.AppendUvarint(append(b, flags), uint64(n))
	b = append(b, byte(len(pb.Topic)>>8), byte(len(pb.Topic)))
	b = append(b, pb.Topic...)
	if pb.QoS > 0 {
		b = append(b, byte(pb.PacketID>>8), byte(pb.PacketID))
	}
	b = append(b, byte(np))
	b = append(b, props[:np]...)
	return append(b, pb.Payload...)
}

type pending struct {
	c     *v5Client
	topic string
	ret   chan packets.ControlPacket
}

func (p *pending) Wait(ctx context.Context) error {
	var resp packets.ControlPacket
	select {
	case resp = <-p.ret:
	case <-p.c.done:
		// The ack may have arrived just before the end.
		select {
		case resp = <-p.ret:
		default:
			return p.c.lostErr("publish")
		}
	case <-ctx.Done():
		// An acknowledgement that had arrived counts (select picks at
		// random among what is ready).
		select {
		case resp = <-p.ret:
		default:
			return ctxErr(ctx, "publish", p.topic)
		}
	}
	var code byte
	var props *packets.Properties
	switch r := resp.Content.(type) {
	case *packets.Puback:
		code, props = r.ReasonCode, r.Properties
	case *packets.Pubrec:
		code, props = r.ReasonCode, r.Properties
	case *packets.Pubcomp:
		code, props = r.ReasonCode, r.Properties
	default:
		return p.c.lostErr("publish")
	}
	if code >= 0x80 {
		e := &RejectedError{Op: "publish", Topic: p.topic, Code: code}
		if props != nil {
			e.Reason = props.ReasonString
		}
		return e
	}
	return nil
}

func (c *v5Client) Subscribe(ctx context.Context, subs []Subscription, opts SubscribeOptions) ([]byte, error) {
	s := &paho.Subscribe{Properties: &paho.SubscribeProperties{User: toPahoUser(opts.User)}}
	if opts.SubscriptionID > 0 {
		id := opts.SubscriptionID
		s.Properties.SubscriptionIdentifier = &id
	}
	for _, sub := range subs {
		s.Subscriptions = append(s.Subscriptions, paho.SubscribeOptions{
			Topic: sub.Filter, QoS: sub.QoS, NoLocal: sub.NoLocal,
			RetainAsPublished: sub.RetainAsPublished, RetainHandling: sub.RetainHandling,
		})
	}
	if err := c.fits("SUBSCRIBE", s.Packet()); err != nil {
		return nil, err
	}
	ctx, cancel := c.boundToConnection(ctx)
	defer cancel()
	sa, err := c.pc.Subscribe(ctx, s)
	if sa == nil {
		return nil, c.v5OpErr(ctx, "subscribe", subs[0].Filter, err)
	}
	for i, code := range sa.Reasons {
		if code >= 0x80 && i < len(subs) {
			e := &RejectedError{Op: "subscribe", Topic: subs[i].Filter, Code: code}
			if sa.Properties != nil {
				e.Reason = sa.Properties.ReasonString
			}
			return sa.Reasons, e
		}
	}
	return sa.Reasons, nil
}

func (c *v5Client) Unsubscribe(ctx context.Context, filters ...string) error {
	u := &paho.Unsubscribe{Topics: filters}
	if err := c.fits("UNSUBSCRIBE", u.Packet()); err != nil {
		return err
	}
	ctx, cancel := c.boundToConnection(ctx)
	defer cancel()
	ua, err := c.pc.Unsubscribe(ctx, u)
	if ua == nil {
		return c.v5OpErr(ctx, "unsubscribe", filters[0], err)
	}
	for i, code := range ua.Reasons {
		if code >= 0x80 && i < len(filters) {
			e := &RejectedError{Op: "unsubscribe", Topic: filters[i], Code: code}
			if ua.Properties != nil {
				e.Reason = ua.Properties.ReasonString
			}
			return e
		}
	}
	return nil
}

// v5OpErr is opErr, with paho's refusal of invalid arguments a usage error.
func (c *v5Client) v5OpErr(ctx context.Context, op, topic string, err error) error {
	if errors.Is(err, paho.ErrInvalidArguments) && ctx.Err() == nil {
		select {
		case <-c.done:
		default:
			return invalidf("%v", err)
		}
	}
	return c.opErr(ctx, op, topic, err)
}

func (c *v5Client) Disconnect(ctx context.Context) error {
	// The message being handled, if any, is acknowledged first (it may be
	// the one whose handler asked for the disconnect).
	c.handling.Lock()
	c.handling.Unlock() //nolint:staticcheck // a barrier, not a critical section
	c.disconnect(ctx, func() {
		// An error writing DISCONNECT means the connection was already
		// gone, which is where Disconnect leaves it anyway.
		_ = c.pc.Disconnect(&paho.Disconnect{ReasonCode: 0})
		<-c.pc.Done()
	})
	return nil
}

// plainRemaining is the remaining length of pb as appendPublish encodes it
// (plainPublish(pb) is true).
func plainRemaining(pb *packets.Publish) int {
	n := 2 + len(pb.Topic) + 1 + len(pb.Payload)
	if pb.Properties != nil && pb.Properties.TopicAlias != nil {
		n += 3
	}
	if pb.QoS > 0 {
		n += 2
	}
	return n
}

// packetSize is the size of pb encoded: worked out for a plain publish,
// measured from paho's encoding otherwise.
func packetSize(pb *packets.Publish) int {
	n := 0
	if plainPublish(pb) {
		n = plainRemaining(pb)
	} else {
		for _, b := range pb.Buffers() {
			n += len(b)
		}
	}
	return packetLen(n)
}

// fits refuses, as a usage error, a request larger than the broker's
// Maximum Packet Size: sent, it would end the connection (the broker
// must close it [MQTT-3.2.2-15]), a network error instead of the reason.
func (c *v5Client) fits(name string, p io.WriterTo) error {
	max := c.info.MaximumPacketSize
	if max == 0 {
		return nil
	}
	var b bytes.Buffer
	if _, err := p.WriteTo(&b); err != nil || b.Len() <= int(max) {
		return nil // an encoding error is paho's to report
	}
	return invalidf("the %s is a %d-byte packet, larger than the broker's Maximum Packet Size of %d bytes", name, b.Len(), max)
}

// packetLen is the size of a packet whose Remaining Length is n: the
// fixed header's first byte, n as a variable byte integer, and n bytes.
func packetLen(n int) int {
	var vbi [binary.MaxVarintLen64]byte
	return 1 + binary.PutUvarint(vbi[:], uint64(n)) + n
}

func toPacketProps(p *Properties) *packets.Properties {
	pp := &packets.Properties{
		ContentType: p.ContentType, ResponseTopic: p.ResponseTopic, CorrelationData: p.CorrelationData,
		MessageExpiry: p.MessageExpiry, PayloadFormat: p.PayloadFormat,
	}
	for _, u := range p.User {
		pp.User = append(pp.User, packets.User{Key: u.Key, Value: u.Value})
	}
	return pp
}

func toPahoUser(us []UserProperty) paho.UserProperties {
	var out paho.UserProperties
	for _, u := range us {
		out = append(out, paho.UserProperty{Key: u.Key, Value: u.Value})
	}
	return out
}

func fromPaho(p *paho.Publish) *Message {
	m := &Message{
		Topic: p.Topic, Payload: p.Payload, QoS: p.QoS, Retain: p.Retain, Dup: p.Duplicate(),
		PacketID: p.PacketID, Received: time.Now(),
	}
	if pp := p.Properties; pp != nil {
		m.Props = Properties{
			ContentType: pp.ContentType, ResponseTopic: pp.ResponseTopic, CorrelationData: pp.CorrelationData,
			MessageExpiry: pp.MessageExpiry, PayloadFormat: pp.PayloadFormat,
		}
		if pp.SubscriptionIdentifier != nil {
			m.Props.SubscriptionIDs = []int{*pp.SubscriptionIdentifier}
		}
		for _, u := range pp.User {
			m.Props.User = append(m.Props.User, UserProperty{Key: u.Key, Value: u.Value})
		}
	}
	return m
}
