// Package mqttc is mqtk's MQTT client layer and the only package that imports
// an MQTT client library. Commands see a small Client interface, plain
// message structs and typed errors; which library and protocol version sit
// behind it is decided by Dial from Config.ProtocolVersion.
package mqttc

import (
	"context"
	"time"
)

// Client is a connected MQTT session. Its methods are safe for concurrent use.
type Client interface {
	// Publish sends m and, for QoS 1 and 2, waits for PUBACK or PUBCOMP.
	// A reason code >= 0x80 is returned as a *RejectedError.
	Publish(ctx context.Context, m *Message) error
	// PublishAsync sends m in call order and returns once it is written (or
	// copied to be written, or, MQTT 3, queued for the library in order with
	// the client's later requests); the acknowledgement is collected from the
	// returned Pending. Several publishes may be pending at once, up to the
	// broker's Receive Maximum (PublishAsync blocks while that many are
	// outstanding). m and its Payload are the caller's again as soon as
	// PublishAsync returns: nothing reads them later.
	PublishAsync(ctx context.Context, m *Message) (Pending, error)
	// Subscribe sends one SUBSCRIBE with all subs and waits for SUBACK. The
	// granted QoS (or reason code) of each filter is returned in order; any
	// code >= 0x80 also yields a *RejectedError naming the first such filter.
	Subscribe(ctx context.Context, subs []Subscription, opts SubscribeOptions) ([]byte, error)
	// Unsubscribe sends one UNSUBSCRIBE and waits for UNSUBACK.
	Unsubscribe(ctx context.Context, filters ...string) error
	// Disconnect sends DISCONNECT and closes the connection.
	Disconnect(ctx context.Context) error
	// Server describes what the broker granted in CONNACK.
	Server() ServerInfo
	// Done is closed when the connection has ended, for whatever reason.
	Done() <-chan struct{}
	// Err is why the connection ended: nil after Disconnect, otherwise a
	// *NetError or a *DisconnectError.
	Err() error
}

// Pending is a publish on its way, which may still await its ack.
type Pending interface {
	// Wait blocks until the publish is acknowledged (at once for QoS 0).
	Wait(ctx context.Context) error
}

// Message is a PUBLISH, sent or received.
type Message struct {
	Topic    string
	Payload  []byte
	QoS      byte
	Retain   bool
	Dup      bool   // received only
	PacketID uint16 // received only (0 for QoS 0)
	Props    Properties
	Received time.Time // received only
}

// Properties are the MQTT v5 publish properties. Zero values mean absent.
type Properties struct {
	ContentType     string
	ResponseTopic   string
	CorrelationData []byte
	MessageExpiry   *uint32
	PayloadFormat   *byte
	// TopicAlias, on a publish, asks Client to use this alias: the first
	// publish with it carries the topic, later ones only the alias.
	TopicAlias      uint16
	SubscriptionIDs []int
	// User keeps order and repeated keys.
	User []UserProperty
}

// UserProperty is one MQTT v5 user property.
type UserProperty struct{ Key, Value string }

// Subscription is one filter in a SUBSCRIBE.
type Subscription struct {
	Filter            string
	QoS               byte
	NoLocal           bool
	RetainAsPublished bool
	RetainHandling    byte
}

// SubscribeOptions are the properties of a whole SUBSCRIBE packet.
type SubscribeOptions struct {
	SubscriptionID int // 0 = none
	User           []UserProperty
}

// ServerInfo is what the broker said in CONNACK, with protocol defaults for
// what it left out.
type ServerInfo struct {
	ProtocolVersion   int
	SessionPresent    bool
	AssignedClientID  string
	ClientID          string // the client identifier in use
	MaximumPacketSize uint32 // 0 = no limit
	ReceiveMaximum    uint16
	TopicAliasMaximum uint16
	MaximumQoS        byte
	RetainAvailable   bool
	ServerKeepAlive   *uint16
}
