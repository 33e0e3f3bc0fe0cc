// Tests of mqtk's changes (MQTK.md); the broker's behaviour is tested in
// mqtk's internal/broker.

package mqtt

import (
	"fmt"
	"math"
	"net"
	"reflect"
	"slices"
	"sync"
	"testing"
	"unsafe"

	"github.com/mochi-mqtt/server/v2/packets"
)

// TestOutboundCopy: outboundCopy of a PUBLISH equals Copy(false) of it,
// field for field (MQTK.md, change 10). A field added to Packet that Copy
// treats apart shows here.
func TestOutboundCopy(t *testing.T) {
	pk := packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Publish, Qos: 2, Retain: true, Dup: true, Remaining: 99},
		ProtocolVersion: 5,
		TopicName:       "a/b",
		Payload:         []byte("payload"),
		PacketID:        7,
		Origin:          "pub",
		Created:         100,
		Expiry:          200,
		Mods:            packets.Mods{MaxSize: 1000, DisallowProblemInfo: true, AllowResponseInfo: true},
		Ignore:          true,
		Properties: packets.Properties{
			PayloadFormat: 1, PayloadFormatFlag: true, MessageExpiryInterval: 60,
			ContentType: "text/plain", ResponseTopic: "r", CorrelationData: []byte("c"),
			SubscriptionIdentifier: []int{3}, TopicAlias: 4, TopicAliasFlag: true,
			User: []packets.UserProperty{{Key: "k", Val: "v"}},
		},
	}
	got, want := outboundCopy(&pk), pk.Copy(false)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("outboundCopy:\n%+v\nCopy(false):\n%+v", got, want)
	}
	if &got.Payload[0] != &pk.Payload[0] || &got.Properties.User[0] != &pk.Properties.User[0] {
		t.Error("outboundCopy copied the payload or the properties, want them shared")
	}
}

// TestPooledSubscribers: a Subscribers from the pool, given back and taken
// again, holds nothing of its last use, and matches the same as a new one
// (MQTK.md, change 11).
func TestPooledSubscribers(t *testing.T) {
	x := NewTopicsIndex()
	x.Subscribe("c1", packets.Subscription{Filter: "a/+", Qos: 1, Identifier: 5})
	x.Subscribe("c1", packets.Subscription{Filter: "a/#", Qos: 2, Identifier: 6})
	x.Subscribe("c2", packets.Subscription{Filter: "a/b", Qos: 0})
	x.Subscribe("c3", packets.Subscription{Filter: "$share/g/a/b", Qos: 1, ShareName: []string{"g"}})
	for i := 0; i < 3; i++ {
		got := x.pooledSubscribers("a/b")
		want := x.Subscribers("a/b")
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("pooled:\n%+v\nnew:\n%+v", got, want)
		}
		if ids := got.Subscriptions["c1"].Identifiers; !reflect.DeepEqual(ids, map[string]int{"a/+": 5, "a/#": 6}) {
			t.Errorf("c1's overlapping subscriptions: identifiers %v", ids)
		}
		if len(got.Shared) != 1 {
			t.Errorf("shared subscriptions %+v, want c3's", got.Shared)
		}
		if sub := got.Subscriptions["c2"]; sub.Identifiers != nil || sub.Qos != 0 {
			t.Errorf("c2's only subscription: %+v, want it as subscribed", sub)
		}
		releaseSubscribers(got)
		// Cleared when given back (the pool may or may not hand it out
		// again: under -race it drops some of what it is given).
		if n := len(got.Subscriptions) + len(got.Shared) + len(got.SharedSelected) + len(got.InlineSubscriptions); n != 0 {
			t.Fatalf("a Subscribers given back to the pool still holds %d entries", n)
		}
		if other := x.pooledSubscribers("x/y"); len(other.Subscriptions)+len(other.Shared)+len(other.InlineSubscriptions) > 0 {
			t.Fatalf("a pooled Subscribers for a topic no one subscribes to holds %+v", other)
		} else {
			releaseSubscribers(other)
		}
	}
}

// TestSubscribeRetained: subscribeRetained returns the retained messages a
// subscription is sent when made, as Retain Handling and shared
// subscriptions say (sendsRetained), and retainAndGather the subscribers of
// the message it stores, the subscription just made among them (MQTK.md,
// change 17; TestRetainedOnce in mqtk's internal/broker shows the
// interleavings).
func TestSubscribeRetained(t *testing.T) {
	x := NewTopicsIndex()
	r, subs := x.retainAndGather(packets.Packet{TopicName: "a/b", Payload: []byte("1")})
	if r != 1 || len(subs.Subscriptions) != 0 {
		t.Fatalf("retainAndGather: %d, subscribers %+v; want 1 and none", r, subs.Subscriptions)
	}
	releaseSubscribers(subs)

	subscribe := func(client string, sub packets.Subscription) (bool, []packets.Packet) {
		return x.subscribeRetained(client, sub)
	}
	for _, c := range []struct {
		sub          packets.Subscription
		isNew, wants bool
	}{
		{packets.Subscription{Filter: "a/+", Qos: 2}, true, true},
		{packets.Subscription{Filter: "a/+", Qos: 2}, false, true},                     // Retain Handling 0: again
		{packets.Subscription{Filter: "a/+", Qos: 2, RetainHandling: 1}, false, false}, // only if new
		{packets.Subscription{Filter: "a/#", Qos: 1, RetainHandling: 1}, true, true},
		{packets.Subscription{Filter: "a/b", RetainHandling: 2}, true, false},
		{packets.Subscription{Filter: "$share/g/a/b", ShareName: []string{"g"}}, true, false},
	} {
		isNew, got := subscribe("c1", c.sub)
		if isNew != c.isNew || (len(got) == 1) != c.wants || len(got) > 1 || (c.wants && string(got[0].Payload) != "1") {
			t.Errorf("%+v: new %v, retained %v; want new %v, the message %v", c.sub, isNew, got, c.isNew, c.wants)
		}
	}

	r, subs = x.retainAndGather(packets.Packet{TopicName: "a/b", Payload: []byte("2")})
	if _, ok := subs.Subscriptions["c1"]; r != 1 || !ok || len(subs.Shared) != 1 {
		t.Errorf("retainAndGather: %d, subscribers %+v, shared %+v; want 1, c1 and the group", r, subs.Subscriptions, subs.Shared)
	}
	releaseSubscribers(subs)
	if got := x.inlineSubscribeRetained(InlineSubscription{Subscription: packets.Subscription{Filter: "a/#", Identifier: 1}}); len(got) != 1 || string(got[0].Payload) != "2" {
		t.Errorf("inlineSubscribeRetained: %v, want the message stored last", got)
	}
}

// TestDeferLive: while a client is making a subscription, the live
// messages routed to it wait in its deferred list, at most as many as its
// queue holds, and endSubscribing queues them after what was queued
// meanwhile (the retained messages), dropping those that do not fit as a
// full queue does; for an ended connection it queues nothing, and the QoS 1
// ones stay in flight (MQTK.md, change 17; TestRetainedOnce/order in mqtk's
// internal/broker shows the order on the wire).
func TestDeferLive(t *testing.T) {
	caps := NewDefaultServerCapabilities()
	caps.MaximumClientWritesPending = 2
	s := newAllowServer(t, &Options{Capabilities: caps})
	newClient := func(id string) *Client {
		conn, other := net.Pipe()
		t.Cleanup(func() { conn.Close(); other.Close() })
		return newV5Client(s, conn, id)
	}
	live := packets.Subscription{Filter: "a", Qos: 1}
	retained := packets.Subscription{Filter: "a", Qos: 1, FwdRetainedFlag: true}
	msg := func(payload string, retain bool) packets.Packet {
		return packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1, Retain: retain}, TopicName: "a", Payload: []byte(payload)}
	}
	queue := func(cl *Client) (got []string) {
		for {
			pk, ok := cl.State.outbound.pop()
			if !ok {
				return got
			}
			got = append(got, string(pk.Payload))
		}
	}

	cl := newClient("c1")
	cl.State.subscribing.Store(true)
	for _, p := range []string{"live1", "live2", "live3"} {
		m := msg(p, false)
		err := s.publishToClient(cl, live, &m)
		if want := map[bool]error{true: packets.ErrPendingClientWritesExceeded, false: nil}[p == "live3"]; err != want {
			t.Errorf("%s: %v, want %v", p, err, want)
		}
	}
	if n, d := cl.State.outbound.Len(), len(cl.State.deferred); n != 0 || d != 2 {
		t.Fatalf("while subscribing: %d queued and %d deferred, want 0 and 2", n, d)
	}
	if m := msg("old", true); s.publishToClient(cl, retained, &m) != nil {
		t.Fatal("the retained message was not queued")
	}
	s.endSubscribing(cl)
	if got := queue(cl); !slices.Equal(got, []string{"old", "live1"}) {
		t.Errorf("queued %q, want the retained message, then the live one that fits", got)
	}
	if d, in := s.Info.MessagesDropped, cl.State.Inflight.Len(); d != 2 || in != 2 || cl.State.subscribing.Load() || cl.State.deferred != nil {
		t.Errorf("after: %d dropped, %d in flight, subscribing %v, deferred %v; want 2, 2 (old, live1), false, nil",
			d, in, cl.State.subscribing.Load(), cl.State.deferred)
	}
	m := msg("live4", false)
	if err := s.publishToClient(cl, live, &m); err != nil || cl.State.outbound.Len() != 1 {
		t.Errorf("after: %v, %d queued; want the message queued", err, cl.State.outbound.Len())
	}

	cl = newClient("c2")
	cl.State.subscribing.Store(true)
	m = msg("live1", false)
	if err := s.publishToClient(cl, live, &m); err != nil {
		t.Fatal(err)
	}
	cl.Stop(nil)
	s.endSubscribing(cl)
	if n, in := cl.State.outbound.Len(), cl.State.Inflight.Len(); n != 0 || in != 1 || cl.State.deferred != nil {
		t.Errorf("connection ended: %d queued, %d in flight, deferred %v; want 0, 1, nil", n, in, cl.State.deferred)
	}

}

// allowHook allows every client everything.
type allowHook struct{ HookBase }

// newAllowServer is a server with opts whose clients may do anything.
func newAllowServer(t *testing.T, opts *Options) *Server {
	t.Helper()
	s := New(opts)
	if err := s.AddHook(new(allowHook), nil); err != nil {
		t.Fatal(err)
	}
	return s
}

// newV5Client is an MQTT 5 client id of s on conn, as if connected.
func newV5Client(s *Server, conn net.Conn, id string) *Client {
	cl := s.NewClient(conn, "test", id, false)
	cl.Properties.ProtocolVersion = 5
	return cl
}

func (h *allowHook) ID() string { return "allow" }
func (h *allowHook) Provides(b byte) bool {
	return b == OnACLCheck || b == OnConnectAuthenticate
}
func (h *allowHook) OnACLCheck(*Client, string, bool) bool              { return true }
func (h *allowHook) OnConnectAuthenticate(*Client, packets.Packet) bool { return true }

// TestInflightPooled: the packets of an Inflight map are its own: what Get
// and GetAll returned does not change with later Sets and Deletes (MQTK.md,
// change 12).
func TestInflightPooled(t *testing.T) {
	i := NewInflights()
	if !i.Set(packets.Packet{PacketID: 1, TopicName: "one"}) || i.Set(packets.Packet{PacketID: 1, TopicName: "uno"}) {
		t.Fatal("Set reports a new identifier as known, or a known one as new")
	}
	got, ok := i.Get(1)
	all := i.GetAll(false)
	clone := i.HandOver() // what a connection taking the session over gets (change 18)
	if !i.Delete(1) || i.Delete(1) {
		t.Fatal("Delete reports a known identifier as unknown, or an unknown one as known")
	}
	i.Set(packets.Packet{PacketID: 2, TopicName: "two"}) // may reuse 1's packet
	if !ok || got.TopicName != "uno" || len(all) != 1 || all[0].TopicName != "uno" {
		t.Errorf("Get %q, GetAll %v, after the packet was deleted and another set", got.TopicName, all)
	}
	if _, ok := i.Get(1); ok || i.Len() != 1 {
		t.Errorf("identifier 1 still there after Delete, or %d packets, want 1", i.Len())
	}
	if c, ok := clone.Get(1); !ok || c.TopicName != "uno" {
		t.Errorf("the clone lost identifier 1 when the original deleted it: %q, %v", c.TopicName, ok)
	}
	if added, handedOver := i.setNew(packets.Packet{PacketID: 3}); added || !handedOver {
		t.Errorf("setNew on a handed-over Inflight: added %v, handed over %v; want false, true", added, handedOver)
	}
	if added, handedOver := clone.setNew(packets.Packet{PacketID: 3}); !added || handedOver {
		t.Errorf("setNew on the successor's Inflight: added %v, handed over %v; want true, false", added, handedOver)
	}
}

// TestHooksByEvent: hooks are called for the events they provide, in the
// order they were added, those that implement PacketEncoder and
// PacketReader through them (MQTK.md, change 13).
func TestHooksByEvent(t *testing.T) {
	h := new(Hooks)
	var calls []string
	for _, hk := range []Hook{
		&valueHook{name: "value", calls: &calls},
		&pointerHook{valueHook{name: "pointer", calls: &calls}},
		&valueHook{name: "none", calls: &calls, none: true},
	} {
		if err := h.Add(hk, nil); err != nil {
			t.Fatal(err)
		}
	}
	pk := h.OnPacketEncode(nil, packets.Packet{TopicName: "t"})
	if pk.TopicName != "t/value/pointer" {
		t.Errorf("OnPacketEncode: topic %q, want each hook's change in turn", pk.TopicName)
	}
	pk, err := h.OnPacketRead(nil, packets.Packet{TopicName: "r"})
	if err != nil || pk.TopicName != "r/value/pointer" {
		t.Errorf("OnPacketRead: topic %q, %v, want each hook's change in turn", pk.TopicName, err)
	}
	want := []string{"value encode", "pointer EncodePacket", "value read", "pointer PacketRead"}
	if !reflect.DeepEqual(calls, want) {
		t.Errorf("calls %v, want %v", calls, want)
	}
	if !h.Provides(OnPacketEncode) || h.Provides(OnPublish) {
		t.Error("Provides: wrong about which events some hook provides")
	}
}

type valueHook struct {
	HookBase
	name  string
	calls *[]string
	none  bool
}

func (h *valueHook) ID() string { return h.name }
func (h *valueHook) Provides(b byte) bool {
	return !h.none && (b == OnPacketEncode || b == OnPacketRead)
}
func (h *valueHook) OnPacketEncode(cl *Client, pk packets.Packet) packets.Packet {
	*h.calls = append(*h.calls, h.name+" encode")
	pk.TopicName += "/" + h.name
	return pk
}
func (h *valueHook) OnPacketRead(cl *Client, pk packets.Packet) (packets.Packet, error) {
	*h.calls = append(*h.calls, h.name+" read")
	pk.TopicName += "/" + h.name
	return pk, nil
}

type pointerHook struct{ valueHook }

func (h *pointerHook) EncodePacket(cl *Client, pk *packets.Packet) {
	*h.calls = append(*h.calls, h.name+" EncodePacket")
	pk.TopicName += "/" + h.name
}
func (h *pointerHook) PacketRead(cl *Client, pk *packets.Packet) error {
	*h.calls = append(*h.calls, h.name+" PacketRead")
	pk.TopicName += "/" + h.name
	return nil
}

// TestInflightExpiry: DeleteExpired removes what has expired, by the
// message's own expiry (MQTT 5 only) or by the broker's maximum age, and
// nothing else; NextImmediate gives the packet GetAll(true) would put first
// (MQTK.md, change 20): the first set, though created later (change 27).
func TestInflightExpiry(t *testing.T) {
	i := NewInflights()
	i.Set(packets.Packet{PacketID: 1, ProtocolVersion: 5, Created: 100, Expiry: 150}) // expired at 200
	i.Set(packets.Packet{PacketID: 2, ProtocolVersion: 5, Created: 100, Expiry: 300}) // not yet
	i.Set(packets.Packet{PacketID: 3, ProtocolVersion: 4, Created: 100, Expiry: 150}) // MQTT 3 has no expiry
	i.Set(packets.Packet{PacketID: 4, ProtocolVersion: 4, Created: 10})               // too old for a maximum of 100
	i.Set(packets.Packet{PacketID: 5, ProtocolVersion: 5, Created: 150, Expiry: -1})  // waiting for quota
	i.Set(packets.Packet{PacketID: 6, ProtocolVersion: 5, Created: 120, Expiry: -1})
	ids := func(pks []packets.Packet) (ids []uint16) {
		for _, pk := range pks {
			ids = append(ids, pk.PacketID)
		}
		slices.Sort(ids)
		return ids
	}
	if got := ids(i.DeleteExpired(200, 0)); !slices.Equal(got, []uint16{1}) {
		t.Errorf("DeleteExpired(200, no maximum) = %v, want [1]", got)
	}
	if got := ids(i.DeleteExpired(200, 100)); !slices.Equal(got, []uint16{4}) {
		t.Errorf("DeleteExpired(200, maximum 100) = %v, want [4]", got)
	}
	if got := ids(i.GetAll(false)); !slices.Equal(got, []uint16{2, 3, 5, 6}) {
		t.Errorf("left in flight %v, want [2 3 5 6]", got)
	}
	next, ok := i.NextImmediate()
	if want := i.GetAll(true)[0]; !ok || next.PacketID != want.PacketID || next.PacketID != 5 {
		t.Errorf("NextImmediate = %d, %v; GetAll(true) starts with %d, want 5", next.PacketID, ok, want.PacketID)
	}
	i.Delete(5)
	i.Delete(6)
	if next, ok := i.NextImmediate(); ok {
		t.Errorf("NextImmediate = %d with nothing waiting for quota", next.PacketID)
	}
}

// TestRetainedExpiry: Matching finds the ids a predicate holds for, and
// DeleteIf deletes one only if it still holds: a message retained anew on
// the topic since stays (MQTK.md, change 20).
func TestRetainedExpiry(t *testing.T) {
	p := packets.NewPackets()
	p.Add("old", packets.Packet{Created: 10})
	p.Add("new", packets.Packet{Created: 90})
	old := func(pk packets.Packet) bool { return pk.Created < 50 }
	got := p.Matching(old)
	if !slices.Equal(got, []string{"old"}) {
		t.Fatalf("Matching = %v, want [old]", got)
	}
	p.Add("old", packets.Packet{Created: 95}) // retained anew in between
	if p.DeleteIf("old", old) {
		t.Error("DeleteIf deleted a message retained after Matching chose the topic")
	}
	if _, ok := p.Get("old"); !ok {
		t.Error("the new message is gone")
	}
	p.Add("old", packets.Packet{Created: 20})
	if !p.DeleteIf("old", old) || p.Len() != 1 {
		t.Errorf("DeleteIf kept an expired message, or %d left, want 1", p.Len())
	}
}

// TestInflightPlaces: GetAll gives packets in the order their identifiers
// were set, whatever the identifiers and creation times; an update keeps a
// packet's place, a packet deleted and set again goes last; SetAt puts a
// packet in a place of its own and later packets after it; HandOver keeps
// the places; getAll with a bound leaves out what was set after nextSeq
// (MQTK.md, change 27).
func TestInflightPlaces(t *testing.T) {
	i := NewInflights()
	order := func(pks []packets.Packet) (ids []uint16) {
		for _, pk := range pks {
			ids = append(ids, pk.PacketID)
		}
		return ids
	}
	check := func(what string, got []packets.Packet, want ...uint16) {
		t.Helper()
		if g := order(got); !slices.Equal(g, want) {
			t.Errorf("%s: %v, want %v", what, g, want)
		}
	}
	for _, id := range []uint16{9, 2, 7} {
		i.Set(packets.Packet{PacketID: id, Created: int64(100 - id)})
	}
	check("set 9, 2, 7", i.GetAll(false), 9, 2, 7)
	if seq, _ := i.Seq(9); seq == 0 {
		t.Error("the first packet's place is 0, which a store takes for none")
	}
	i.Set(packets.Packet{PacketID: 9, FixedHeader: packets.FixedHeader{Type: packets.Pubrel}})
	check("9 updated", i.GetAll(false), 9, 2, 7)
	i.Delete(2)
	i.Set(packets.Packet{PacketID: 2})
	check("2 deleted and set again", i.GetAll(false), 9, 7, 2)

	seq, ok := i.Seq(7)
	if !ok {
		t.Fatal("Seq(7): not in flight")
	}
	i.Delete(7)
	i.SetAt(packets.Packet{PacketID: 7}, seq)
	check("7 put back in its place", i.GetAll(false), 9, 7, 2)
	i.SetAt(packets.Packet{PacketID: 1}, 100)
	i.Set(packets.Packet{PacketID: 3})
	check("1 at 100, then 3", i.GetAll(false), 9, 7, 2, 1, 3)

	j := i.HandOver()
	before := j.nextSeq()
	j.Set(packets.Packet{PacketID: 4})
	check("handed over, then 4", j.GetAll(false), 9, 7, 2, 1, 3, 4)
	var placed []packets.Packet
	for _, e := range j.getAll(false, before) {
		placed = append(placed, e.Packet)
	}
	check("what was there before 4", placed, 9, 7, 2, 1, 3)
}

// TestInflightSent: a packet set is unsent until a write of it is attempted
// (markSent), and stays sent when it is updated or handed over; one a
// store restores (SetAt) may have been sent; one deleted and set again is
// new (MQTK.md, change 29).
func TestInflightSent(t *testing.T) {
	i := NewInflights()
	sent := func(i *Inflight) (ids []uint16) {
		for _, e := range i.getAll(false, math.MaxUint64) {
			if e.sent {
				ids = append(ids, e.PacketID)
			}
		}
		return ids
	}
	check := func(what string, got []uint16, want ...uint16) {
		t.Helper()
		if !slices.Equal(got, want) {
			t.Errorf("%s: sent %v, want %v", what, got, want)
		}
	}
	i.Set(packets.Packet{PacketID: 1})
	i.Set(packets.Packet{PacketID: 2})
	check("1 and 2 set", sent(i))
	i.markSent(2)
	i.markSent(5) // not in flight: nothing
	check("2 written", sent(i), 2)
	i.Set(packets.Packet{PacketID: 2, FixedHeader: packets.FixedHeader{Type: packets.Pubrel}})
	check("2 updated", sent(i), 2)
	i.SetAt(packets.Packet{PacketID: 3}, 0)
	i.SetAt(packets.Packet{PacketID: 4}, 100)
	check("3 and 4 restored", sent(i), 2, 3, 4)
	j := i.HandOver()
	check("handed over", sent(j), 2, 3, 4)
	j.Delete(3)
	j.Set(packets.Packet{PacketID: 3})
	check("3 deleted and set again", sent(j), 2, 4)
}

// TestTakeoverQuotas: a connection taking a session over keeps the send and
// receive quotas it has (a hook that counts the client's Receive Maximum
// itself has set the send quota to 0), and does not get the client's
// Receive Maximum as send quota with the queue (MQTK.md, change 31).
func TestTakeoverQuotas(t *testing.T) {
	s := newAllowServer(t, &Options{Capabilities: &Capabilities{ReceiveMaximum: 7, MaximumInflight: 100}})
	old := newV5Client(s, newDirectConn(t), "quota")
	old.State.Inflight.Set(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, PacketID: 1})
	s.Clients.Add(old)

	cl := newV5Client(s, newDirectConn(t), "quota")
	cl.ParseConnect("test", packets.Packet{ProtocolVersion: 5, Connect: packets.ConnectParams{ClientIdentifier: "quota"},
		Properties: packets.Properties{ReceiveMaximum: 2}})
	cl.State.Inflight.ResetSendQuota(0) // as mqtk's flowHook does
	if !s.inheritClientSession(packets.Packet{}, cl) {
		t.Fatal("no session taken over")
	}
	if !cl.State.Inflight.Has(1) {
		t.Fatal("the queue was not taken over")
	}
	i := cl.State.Inflight
	if got := [4]int32{i.sendQuota, i.maximumSendQuota, i.receiveQuota, i.maximumReceiveQuota}; got != [4]int32{0, 0, 7, 7} {
		t.Errorf("quotas after the takeover (send, max send, receive, max receive): %v, want [0 0 7 7]", got)
	}
}

// TestRoutedSubscribers: the subscribers routeCache gives for a topic are
// what scanning the index gives, after every kind of change to the
// subscriptions, and topics with shared or inline subscriptions come from
// the pool as before (MQTK.md, change 48).
func TestRoutedSubscribers(t *testing.T) {
	x := NewTopicsIndex()
	check := func(step, topic string, wantCached bool) {
		t.Helper()
		got, pooled := x.routedSubscribers(topic)
		want := x.Subscribers(topic)
		if !reflect.DeepEqual(got.Subscriptions, want.Subscriptions) || len(got.Shared) != len(want.Shared) || len(got.InlineSubscriptions) != len(want.InlineSubscriptions) {
			t.Fatalf("%s: routed %s:\n%+v\nscanned:\n%+v", step, topic, got, want)
		}
		if pooled == wantCached {
			t.Fatalf("%s: %s from the pool %v, want %v", step, topic, pooled, !wantCached)
		}
		if pooled {
			releaseSubscribers(got)
		} else if again, _ := x.routedSubscribers(topic); again != got {
			t.Fatalf("%s: %s looked up again was not the cached subscribers", step, topic)
		}
	}

	check("no subscriptions", "a/b", true)
	x.Subscribe("c1", packets.Subscription{Filter: "a/+", Qos: 1})
	check("c1 subscribed", "a/b", true)
	x.Subscribe("c2", packets.Subscription{Filter: "a/#", Qos: 0, Identifier: 3})
	check("c2 subscribed", "a/b", true)
	x.Subscribe("c1", packets.Subscription{Filter: "a/+", Qos: 2, NoLocal: true})
	check("c1 subscribed again", "a/b", true)
	x.Subscribe("c2", packets.Subscription{Filter: "a/b", Qos: 2, Identifier: 4})
	check("c2's overlapping subscription", "a/b", true)
	x.Unsubscribe("a/+", "c1")
	check("c1 unsubscribed", "a/b", true)
	x.subscribeRetained("c5", packets.Subscription{Filter: "a/b", Qos: 1}) // a client's SUBSCRIBE
	check("c5 subscribed", "a/b", true)
	x.Subscribe("c3", packets.Subscription{Filter: "#"})
	check("c3 on #", "$SYS/x", true)
	check("c3 on #", "a/b", true)
	x.Subscribe("c4", packets.Subscription{Filter: "$share/g/a/b", ShareName: []string{"g"}})
	check("a shared subscription", "a/b", false)
	x.Unsubscribe("$share/g/a/b", "c4")
	check("the shared subscription gone", "a/b", true)
	x.inlineSubscribeRetained(InlineSubscription{Subscription: packets.Subscription{Filter: "a/b", Identifier: 1}})
	check("an inline subscription", "a/b", false)
	x.InlineUnsubscribe(1, "a/b")
	check("the inline subscription gone", "a/b", true)
	for i := 0; i < routeCacheMaxSubscribers; i++ {
		x.Subscribe(fmt.Sprintf("m%d", i), packets.Subscription{Filter: "a/b"})
	}
	check("many subscribers", "a/b", false) // c2, c3, c5 and 64 more
	x.Unsubscribe("a/b", "m0")
	x.Unsubscribe("a/b", "m1")
	x.Unsubscribe("a/b", "m2")
	check("as many as are cached", "a/b", true)

	// Full: topics beyond the bound come from the pool until the
	// subscriptions change, then the cache starts again.
	for i := 0; i < 3*routeCacheSize; i++ {
		_, _ = x.routedSubscribers(fmt.Sprintf("t/%d", i))
	}
	if n := x.routes.n.Load(); n != routeCacheSize {
		t.Fatalf("%d topics cached, want %d", n, routeCacheSize)
	}
	held := ""
	x.routes.entries.Range(func(k, _ any) bool {
		held = k.(string)
		return false
	})
	check("full", "u/1", false)
	check("full", held, true)
	x.Unsubscribe("#", "c3")
	check("full, then a change", "u/1", true)
	if n := x.routes.n.Load(); n != 1 {
		t.Errorf("%d topics cached after starting again, want 1", n)
	}
}

// TestRoutedSubscribersKey: the cache keeps a copy of the topic, not the
// topic as decoded, which shares the memory of its packet (payload and all).
func TestRoutedSubscribersKey(t *testing.T) {
	x := NewTopicsIndex()
	x.Subscribe("c1", packets.Subscription{Filter: "a/b"})
	packet := []byte("a/b and a large payload")
	topic := unsafe.String(&packet[0], 3) // as the decoder makes it
	if _, pooled := x.routedSubscribers(topic); pooled {
		t.Fatal("a/b was not cached")
	}
	x.routes.entries.Range(func(k, _ any) bool {
		if unsafe.StringData(k.(string)) == &packet[0] {
			t.Error("the cache's key is the packet's memory")
		}
		return true
	})
}

// TestRoutedSubscribersConcurrent: a subscription made before a lookup
// starts is in what it finds, and one removed before is not, whatever other
// lookups and changes run beside them (run with -race).
func TestRoutedSubscribersConcurrent(t *testing.T) {
	x := NewTopicsIndex()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < 2000; i++ {
				id := fmt.Sprintf("c%d-%d", w, i)
				x.Subscribe(id, packets.Subscription{Filter: "a/+/c"})
				subs, pooled := x.routedSubscribers("a/b/c")
				_, found := subs.Subscriptions[id]
				if pooled {
					releaseSubscribers(subs)
				}
				x.Unsubscribe("a/+/c", id)
				subs, pooled = x.routedSubscribers("a/b/c")
				_, stale := subs.Subscriptions[id]
				if pooled {
					releaseSubscribers(subs)
				}
				if !found || stale {
					errs <- fmt.Errorf("%s: found after subscribing %v, after unsubscribing %v", id, found, stale)
					return
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// BenchmarkRoutedSubscribers: looking up a topic's subscribers (one
// subscriber, a 4-level topic) through the route cache while no
// subscription changes (cached), when one changes before every lookup
// (churn: every lookup scans and caches again), and by scanning alone as
// before change 48 (scan).
func BenchmarkRoutedSubscribers(b *testing.B) {
	x := NewTopicsIndex()
	x.Subscribe("c1", packets.Subscription{Filter: "mqtk/bench/+/p0"})
	const topic = "mqtk/bench/run/p0"
	b.Run("cached", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if subs, pooled := x.routedSubscribers(topic); pooled {
				releaseSubscribers(subs)
			}
		}
	})
	b.Run("churn", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			x.routes.changed()
			if subs, pooled := x.routedSubscribers(topic); pooled {
				releaseSubscribers(subs)
			}
		}
	})
	b.Run("scan", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			releaseSubscribers(x.pooledSubscribers(topic))
		}
	})
}
