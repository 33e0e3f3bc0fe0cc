package broker

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/storage"
	"github.com/mochi-mqtt/server/v2/packets"
	"go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// persistFile is the database inside --persist DIR.
const persistFile = "mqtk.db"

// addPersistence keeps retained messages, persistent sessions, their
// subscriptions and their queued and in-flight QoS 1/2 messages in a bbolt
// database in dir. Every change is committed (and fsync'ed) before the hook
// returns, so whatever the broker has acknowledged survives a kill -9.
func addPersistence(m *mqtt.Server, dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("persist: %w", err)
	}
	path := filepath.Join(dir, persistFile)
	// bbolt locks the file; another broker holding it makes us fail after
	// the timeout instead of waiting forever.
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return fmt.Errorf("persist: %s is in use by another broker", path)
	}
	if err != nil {
		return fmt.Errorf("persist: open %s: %w", path, err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		for _, b := range buckets {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		err = m.AddHook(&store{m: m, db: db, publishing: map[string]publishing{}}, nil)
	}
	if err != nil {
		db.Close()
		return fmt.Errorf("persist: %s: %w", path, err)
	}
	return nil
}

// store is mqtk's storage hook. It replaces mochi's bolt hook (v2.7.9),
// which loses what it is meant to keep:
//
//   - it stores in-flight messages without their packet identifier, so
//     after a restart they all load as packet 0, overwrite one another, and
//     the one left is sent with an invalid identifier;
//   - it deletes a session's stored messages whenever the client resumes the
//     session (mochi "drops" the old connection's copy of the queue), so a
//     restart after a reconnect forgets whatever was still unacknowledged;
//   - it keeps the QoS 2 message rather than the PUBREL once the client has
//     sent PUBREC, so a restart delivers the message a second time;
//   - it loses message expiry (a retained message with an expiry lives for
//     ever after a restart), the payload format flag, and a session's expiry
//     (a restarted session never expires);
//   - it stores refused subscriptions (an ACL denial comes back after a
//     restart as a granted subscription) and the records of clean sessions,
//     which a crash leaves behind for good;
//   - its Stop can run while a client's last hook is still writing.
//
// mochi itself has three faults that lose or reorder messages, mended here
// and in the fork:
//
//   - it acknowledged a publish (PUBACK, PUBREC) before handing it to the
//     subscribers, so a crash in between lost an acknowledged message. The
//     fork now acknowledges after (MQTK.md change 26), and the store still
//     writes the message to a journal before it is routed and clears it
//     once every subscriber's copy is stored, so that a crash in the middle
//     of the routing does not leave some sessions with the message and
//     others without: at start, what is still in the journal is delivered
//     to the subscribers that lack it.
//   - it resent a resumed session's queue in the wrong order. The fork
//     keeps each message's place in the queue (MQTK.md change 27); the
//     store keeps it with the message, and restores it.
//   - an expired session's subscriptions stay in the topic index, so a new
//     session with the same client identifier receives messages it never
//     subscribed to. The store removes them.
//
// Two more are mended in mochi itself (third_party/mochi-server/MQTK.md,
// 18 and 19): a message queued for a session while it was being resumed
// was written twice, possibly before older ones, or lost; and the queue
// held messages rewritten for the old connection's topic aliases, so the
// copies stored here lacked their topic.
//
// Only persistent sessions (MQTT 5 session expiry > 0, or MQTT 3 clean
// session 0) are stored: a clean session ends with its connection, so it
// leaves nothing to restore and nothing behind.
//
// Records are JSON in five buckets: sessions (client ID), subscriptions
// (client ID NUL filter), inflight (client ID NUL packet ID), retained
// (topic) and journal (sequence). An in-flight record carries its place in
// the session's queue.
type store struct {
	mqtt.HookBase
	m *mqtt.Server

	mu sync.RWMutex // held for writing only by Stop
	db *bbolt.DB

	jmu        sync.Mutex
	publishing map[string]publishing // client ID -> the message it is publishing
	replaying  uint64                // journal sequence being delivered at start
	loaded     map[string]bool       // sessions read at start
}

// publishing is a message in the journal whose subscribers' copies are
// being stored.
type publishing struct {
	cl  *mqtt.Client
	seq uint64
}

var (
	bSessions      = []byte("sessions")
	bSubscriptions = []byte("subscriptions")
	bInflight      = []byte("inflight")
	bRetained      = []byte("retained")
	bJournal       = []byte("journal")
	buckets        = [][]byte{bSessions, bSubscriptions, bInflight, bRetained, bJournal}
)

// message is a stored PUBLISH (or the PUBREC/PUBREL that stands for it).
type message struct {
	Seq             uint64                    `json:"seq,omitempty"`     // place in the queue, or in the journal
	Journal         uint64                    `json:"journal,omitempty"` // the journal entry it was copied from
	Client          string                    `json:"client,omitempty"`  // whose queue it is in
	Type            byte                      `json:"type"`
	QoS             byte                      `json:"qos,omitempty"`
	Retain          bool                      `json:"retain,omitempty"`
	PacketID        uint16                    `json:"packet_id,omitempty"`
	ReasonCode      byte                      `json:"reason_code,omitempty"`
	Topic           string                    `json:"topic,omitempty"`
	Payload         []byte                    `json:"payload,omitempty"`
	Origin          string                    `json:"origin,omitempty"`
	Created         int64                     `json:"created,omitempty"`
	Expiry          int64                     `json:"expiry,omitempty"`
	ProtocolVersion byte                      `json:"protocol_version,omitempty"`
	Props           storage.MessageProperties `json:"props"`
}

func newMessage(client string, pk packets.Packet) message {
	p := pk.Properties
	return message{
		Client: client, Type: pk.FixedHeader.Type, QoS: pk.FixedHeader.Qos, Retain: pk.FixedHeader.Retain,
		PacketID: pk.PacketID, ReasonCode: pk.ReasonCode, Topic: pk.TopicName, Payload: pk.Payload,
		Origin: pk.Origin, Created: pk.Created, Expiry: pk.Expiry, ProtocolVersion: pk.ProtocolVersion,
		// Topic aliases belong to a connection and are not kept.
		Props: storage.MessageProperties{
			PayloadFormat: p.PayloadFormat, PayloadFormatFlag: p.PayloadFormatFlag,
			MessageExpiryInterval: p.MessageExpiryInterval, ContentType: p.ContentType,
			ResponseTopic: p.ResponseTopic, CorrelationData: p.CorrelationData,
			SubscriptionIdentifier: p.SubscriptionIdentifier, User: p.User,
		},
	}
}

// expired reports whether the message's expiry had passed at now: it is
// not restored, as it would not be delivered had the broker kept running
// [MQTT-3.3.2-5] (mochi would drop it within a second, after a client that
// reconnects at once may have had it).
func (r message) expired(now int64) bool {
	pk := r.packet()
	return pk.Expired(now, 0) // mqtk sets no maximum expiry (broker.go)
}

func (r message) packet() packets.Packet {
	p := r.Props
	return packets.Packet{
		FixedHeader: packets.FixedHeader{Type: r.Type, Qos: r.QoS, Retain: r.Retain},
		PacketID:    r.PacketID, ReasonCode: r.ReasonCode, TopicName: r.Topic, Payload: r.Payload,
		Origin: r.Origin, Created: r.Created, Expiry: r.Expiry, ProtocolVersion: r.ProtocolVersion,
		Properties: packets.Properties{
			PayloadFormat: p.PayloadFormat, PayloadFormatFlag: p.PayloadFormatFlag,
			MessageExpiryInterval: p.MessageExpiryInterval, ContentType: p.ContentType,
			ResponseTopic: p.ResponseTopic, CorrelationData: p.CorrelationData,
			SubscriptionIdentifier: p.SubscriptionIdentifier, User: p.User,
		},
	}
}

// Keys. MQTT strings cannot contain U+0000 [MQTT-1.5.4-2], so a NUL ends a
// client identifier; records also name their client, which is checked.
func clientPrefix(id string) []byte { return append([]byte(id), 0) }
func subKey(id, filter string) []byte {
	return append(clientPrefix(id), filter...)
}
func inflightKey(id string, packetID uint16) []byte {
	return binary.BigEndian.AppendUint16(clientPrefix(id), packetID)
}
func seqKey(seq uint64) []byte { return binary.BigEndian.AppendUint64(nil, seq) }

// persistent reports whether cl's session outlives its connection.
func persistent(cl *mqtt.Client) bool {
	if cl.Net.Inline {
		return false
	}
	if cl.Properties.ProtocolVersion == 5 {
		return cl.Properties.Props.SessionExpiryInterval > 0
	}
	return !cl.Properties.Clean
}

func (h *store) ID() string { return "mqtk-persist" }

func (h *store) Provides(b byte) bool {
	switch b {
	case mqtt.OnSessionEstablished, mqtt.OnDisconnect, mqtt.OnClientExpired,
		mqtt.OnSubscribed, mqtt.OnUnsubscribed,
		mqtt.OnRetainMessage, mqtt.OnRetainedExpired,
		mqtt.OnPublish, mqtt.OnPublished,
		mqtt.OnQosPublish, mqtt.OnQosComplete, mqtt.OnQosDropped,
		mqtt.OnPacketRead,
		mqtt.StoredClients, mqtt.StoredSubscriptions, mqtt.StoredInflightMessages, mqtt.StoredRetainedMessages:
		return true
	}
	return false
}

// Stop closes the database once the server has let go of every client.
func (h *store) Stop() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.db == nil {
		return nil
	}
	err := h.db.Close()
	h.db = nil
	return err
}

// update runs fn in a write transaction; a failure is logged, as a hook
// cannot refuse what mochi has already done.
func (h *store) update(fn func(tx *bbolt.Tx) error) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if h.db == nil {
		h.Log.Error("persist: write after the store was closed")
		return
	}
	if err := h.db.Update(fn); err != nil {
		h.Log.Error("persist: write", "error", err)
	}
}

func (h *store) view(fn func(tx *bbolt.Tx) error) error {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if h.db == nil {
		return errors.New("persist: the store is closed")
	}
	return h.db.View(fn)
}

func put(tx *bbolt.Tx, bucket, key []byte, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return tx.Bucket(bucket).Put(key, data)
}

// del deletes keys from bucket, committing only if one exists (a commit
// costs an fsync).
func (h *store) del(bucket []byte, keys ...[]byte) {
	var found bool
	_ = h.view(func(tx *bbolt.Tx) error {
		for _, k := range keys {
			if tx.Bucket(bucket).Get(k) != nil {
				found = true
			}
		}
		return nil
	})
	if !found {
		return
	}
	h.update(func(tx *bbolt.Tx) error {
		for _, k := range keys {
			if err := tx.Bucket(bucket).Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
}

// clientRecords lists the keys of id's records in bucket (subscriptions or
// inflight) with their values.
func clientRecords(tx *bbolt.Tx, bucket []byte, id string, visit func(k, v []byte)) {
	prefix := clientPrefix(id)
	c := tx.Bucket(bucket).Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		var owner struct{ Client string }
		if json.Unmarshal(v, &owner) == nil && owner.Client == id {
			visit(k, v)
		}
	}
}

// forget deletes everything stored for client id.
func (h *store) forget(id string) {
	var keys [][2][]byte // bucket, key
	_ = h.view(func(tx *bbolt.Tx) error {
		if tx.Bucket(bSessions).Get([]byte(id)) != nil {
			keys = append(keys, [2][]byte{bSessions, []byte(id)})
		}
		for _, b := range [][]byte{bSubscriptions, bInflight} {
			clientRecords(tx, b, id, func(k, _ []byte) { keys = append(keys, [2][]byte{b, append([]byte(nil), k...)}) })
		}
		return nil
	})
	if len(keys) == 0 {
		return
	}
	h.update(func(tx *bbolt.Tx) error {
		for _, bk := range keys {
			if err := tx.Bucket(bk[0]).Delete(bk[1]); err != nil {
				return err
			}
		}
		return nil
	})
}

// sessionRec is a stored session: mochi's record, and when its connection
// ended (Unix seconds; 0 while connected, or if unknown), from which its
// expiry counts across a restart.
type sessionRec struct {
	storage.Client
	Disconnected int64 `json:"disconnected,omitempty"`
}

func sessionRecord(cl *mqtt.Client) sessionRec {
	p := cl.Properties.Props
	return sessionRec{Disconnected: cl.StopTime(), Client: storage.Client{
		ID: cl.ID, T: storage.ClientKey, Remote: cl.Net.Remote, Listener: cl.Net.Listener,
		Username: cl.Properties.Username, Clean: cl.Properties.Clean, ProtocolVersion: cl.Properties.ProtocolVersion,
		Properties: storage.ClientProperties{
			SessionExpiryInterval: p.SessionExpiryInterval, SessionExpiryIntervalFlag: p.SessionExpiryIntervalFlag,
			AuthenticationMethod: p.AuthenticationMethod, AuthenticationData: p.AuthenticationData,
			RequestProblemInfo: p.RequestProblemInfo, RequestProblemInfoFlag: p.RequestProblemInfoFlag,
			RequestResponseInfo: p.RequestResponseInfo, ReceiveMaximum: p.ReceiveMaximum,
			TopicAliasMaximum: p.TopicAliasMaximum, User: p.User, MaximumPacketSize: p.MaximumPacketSize,
		},
		Will: storage.ClientWill(cl.Properties.Will),
	}}
}

// OnSessionEstablished stores a persistent session; a client that now
// connects with a session that ends with the connection takes what was
// stored under its identifier out of the store.
func (h *store) OnSessionEstablished(cl *mqtt.Client, pk packets.Packet) {
	if !persistent(cl) {
		h.forget(cl.ID)
		return
	}
	rec := sessionRecord(cl)
	h.update(func(tx *bbolt.Tx) error { return put(tx, bSessions, []byte(cl.ID), rec) })
}

// OnDisconnect forgets a session that ends with its connection, and
// records when a persistent one was disconnected, with a session expiry
// DISCONNECT may have changed.
func (h *store) OnDisconnect(cl *mqtt.Client, err error, expire bool) {
	if cl.Net.Conn == nil {
		return // a session loaded at start (loadClients): its record stands
	}
	h.jmu.Lock()
	if p, ok := h.publishing[cl.ID]; ok && p.cl == cl {
		// Its last publish was never routed (a hook after this one
		// refused it), so it is not delivered either.
		delete(h.publishing, cl.ID)
		h.jmu.Unlock()
		h.del(bJournal, seqKey(p.seq))
	} else {
		h.jmu.Unlock()
	}
	if cl.IsTakenOver() || errors.Is(cl.StopCause(), packets.ErrSessionTakenOver) {
		return // the session lives on in the new connection
	}
	if expire {
		h.forget(cl.ID)
		return
	}
	rec := sessionRecord(cl)
	h.update(func(tx *bbolt.Tx) error {
		// A new connection that took the session over since the check
		// above writes its own record after it is listed (store updates
		// are serialised): this one must not come after it.
		if cur, ok := h.m.Clients.Get(cl.ID); ok && cur != cl {
			return nil
		}
		return put(tx, bSessions, []byte(cl.ID), rec)
	})
}

// OnClientExpired forgets an expired session, and takes its subscriptions
// out of the topic index, where mochi leaves them.
func (h *store) OnClientExpired(cl *mqtt.Client) {
	for filter := range cl.State.Subscriptions.GetAll() {
		if h.m.Topics.Unsubscribe(filter, cl.ID) {
			atomic.AddInt64(&h.m.Info.Subscriptions, -1)
		}
		cl.State.Subscriptions.Delete(filter)
	}
	h.forget(cl.ID)
}

// OnSubscribed stores the subscriptions granted to a persistent session
// (not the refused ones).
func (h *store) OnSubscribed(cl *mqtt.Client, pk packets.Packet, reasonCodes []byte) {
	if !persistent(cl) {
		return
	}
	var subs []storage.Subscription
	for i, f := range pk.Filters {
		if i >= len(reasonCodes) || reasonCodes[i] >= 0x80 {
			continue
		}
		subs = append(subs, storage.Subscription{
			T: storage.SubscriptionKey, Client: cl.ID, Filter: f.Filter, Qos: reasonCodes[i],
			Identifier: f.Identifier, NoLocal: f.NoLocal, RetainHandling: f.RetainHandling,
			RetainAsPublished: f.RetainAsPublished,
		})
	}
	if len(subs) == 0 {
		return
	}
	h.update(func(tx *bbolt.Tx) error {
		for _, s := range subs {
			if err := put(tx, bSubscriptions, subKey(cl.ID, s.Filter), s); err != nil {
				return err
			}
		}
		return nil
	})
}

func (h *store) OnUnsubscribed(cl *mqtt.Client, pk packets.Packet) {
	keys := make([][]byte, 0, len(pk.Filters))
	for _, f := range pk.Filters {
		keys = append(keys, subKey(cl.ID, f.Filter))
	}
	h.del(bSubscriptions, keys...)
}

func (h *store) OnRetainMessage(cl *mqtt.Client, pk packets.Packet, r int64) {
	if r != 1 { // -1: cleared, 0: an empty message for a topic with none
		h.del(bRetained, []byte(pk.TopicName))
		return
	}
	rec := newMessage("", pk)
	h.update(func(tx *bbolt.Tx) error { return put(tx, bRetained, []byte(pk.TopicName), rec) })
}

func (h *store) OnRetainedExpired(topic string) {
	h.del(bRetained, []byte(topic))
}

// OnPublish journals a QoS 1 or 2 message that some persistent session
// will queue, before it is routed (and so before it is acknowledged): a
// crash in the middle of the routing leaves it in the journal, to be
// delivered at start to the sessions that lack it.
func (h *store) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if cl.Net.Inline || pk.FixedHeader.Qos == 0 || !h.persistentSubscriber(pk) {
		return pk, nil
	}
	rec := newMessage("", pk)
	h.update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bJournal)
		seq, err := b.NextSequence()
		if err != nil {
			return err
		}
		rec.Seq = seq
		return put(tx, bJournal, seqKey(seq), rec)
	})
	if rec.Seq == 0 {
		return pk, nil // not stored (logged)
	}
	h.jmu.Lock()
	stale, ok := h.publishing[cl.ID]
	h.publishing[cl.ID] = publishing{cl: cl, seq: rec.Seq}
	h.jmu.Unlock()
	if ok {
		// mochi dropped the client's previous publish without
		// acknowledging it (a hook rejected it).
		h.del(bJournal, seqKey(stale.seq))
	}
	return pk, nil
}

// persistentSubscriber reports whether a persistent session subscribes to
// pk's topic with QoS 1 or 2.
func (h *store) persistentSubscriber(pk packets.Packet) bool {
	subs := h.m.Topics.Subscribers(pk.TopicName)
	wants := func(id string, sub packets.Subscription) bool {
		cl, ok := h.m.Clients.Get(id)
		return ok && sub.Qos > 0 && persistent(cl)
	}
	for id, sub := range subs.Subscriptions {
		if wants(id, sub) {
			return true
		}
	}
	for _, group := range subs.Shared {
		for id, sub := range group {
			if wants(id, sub) {
				return true
			}
		}
	}
	return false
}

// OnPublished clears the journal entry: every subscriber's copy is stored.
func (h *store) OnPublished(cl *mqtt.Client, pk packets.Packet) {
	h.jmu.Lock()
	p, ok := h.publishing[cl.ID]
	if ok && p.cl == cl {
		delete(h.publishing, cl.ID)
	}
	h.jmu.Unlock()
	if ok && p.cl == cl {
		h.del(bJournal, seqKey(p.seq))
	}
}

// OnQosPublish stores a message queued for a persistent session, or the
// PUBREC of one it is publishing with QoS 2. A resend (DUP) finds its record
// there and leaves it alone.
func (h *store) OnQosPublish(cl *mqtt.Client, pk packets.Packet, sent int64, resends int) {
	t := pk.FixedHeader.Type
	if !persistent(cl) || t == packets.Puback || t == packets.Pubcomp {
		return // PUBACK and PUBCOMP are written and forgotten at once
	}
	key := inflightKey(cl.ID, pk.PacketID)
	// Its place in the queue, read first: a connection taking the session
	// over meanwhile takes the message from this one's Inflight.
	seq, ok := cl.State.Inflight.Seq(pk.PacketID)
	if !ok {
		if next, found := h.m.Clients.Get(cl.ID); found && next != cl {
			seq, _ = next.State.Inflight.Seq(pk.PacketID)
		}
	}
	var exists, duplicate bool
	h.jmu.Lock()
	journal, replaying := h.publishing[pk.Origin].seq, h.replaying
	h.jmu.Unlock()
	if replaying != 0 {
		journal = replaying
	}
	// What is stored already matters only to a resend (DUP) or another
	// packet than a PUBLISH (exists), and to the journal's delivery at start
	// (duplicate): a new message is stored without a read first.
	if t != packets.Publish || pk.FixedHeader.Dup || replaying != 0 {
		_ = h.view(func(tx *bbolt.Tx) error {
			if v := tx.Bucket(bInflight).Get(key); v != nil {
				var r message
				exists = json.Unmarshal(v, &r) == nil && r.Client == cl.ID && r.Type == t
			}
			if replaying != 0 {
				clientRecords(tx, bInflight, cl.ID, func(_, v []byte) {
					var r message
					if json.Unmarshal(v, &r) == nil && r.Journal == replaying {
						duplicate = true
					}
				})
			}
			return nil
		})
	}
	if duplicate {
		// Delivering the journal at start: this session stored its copy
		// before the crash.
		if cl.State.Inflight.Delete(pk.PacketID) {
			atomic.AddInt64(&h.m.Info.Inflight, -1)
		}
		return
	}
	if exists && (t != packets.Publish || pk.FixedHeader.Dup) {
		return // a resend
	}
	rec := newMessage(cl.ID, pk)
	if t == packets.Publish {
		rec.Journal = journal
	}
	rec.Seq = seq
	h.update(func(tx *bbolt.Tx) error { return put(tx, bInflight, key, rec) })
}

func (h *store) OnQosComplete(cl *mqtt.Client, pk packets.Packet) {
	h.del(bInflight, inflightKey(cl.ID, pk.PacketID))
}

// OnQosDropped deletes a dropped message, except when mochi "drops" the
// queue of a connection whose session another connection has just taken
// over with the queue.
func (h *store) OnQosDropped(cl *mqtt.Client, pk packets.Packet) {
	if cl.IsTakenOver() {
		return
	}
	h.del(bInflight, inflightKey(cl.ID, pk.PacketID))
}

// PacketRead stores that a QoS 2 message has been received by the client
// (PUBREC), which mochi records in memory only, before mochi answers with
// PUBREL: from then on the broker must send PUBREL, never the message
// again, which the client would take for a new one.
func (h *store) PacketRead(cl *mqtt.Client, pk *packets.Packet) error {
	if pk.FixedHeader.Type != packets.Pubrec || pk.ReasonCode >= 0x80 || !persistent(cl) {
		return nil
	}
	key := inflightKey(cl.ID, pk.PacketID)
	var r message
	_ = h.view(func(tx *bbolt.Tx) error {
		if v := tx.Bucket(bInflight).Get(key); v != nil {
			_ = json.Unmarshal(v, &r)
		}
		return nil
	})
	if r.Client != cl.ID || r.Type != packets.Publish || r.QoS != 2 {
		return nil
	}
	rel := message{Seq: r.Seq, Journal: r.Journal, Client: cl.ID, Type: packets.Pubrel, QoS: 1, PacketID: pk.PacketID,
		Created: r.Created, ProtocolVersion: r.ProtocolVersion}
	h.update(func(tx *bbolt.Tx) error { return put(tx, bInflight, key, rel) })
	return nil
}

// StoredClients returns the persistent sessions. (mochi calls the Stored
// hooks in this order: clients, subscriptions, in-flight messages, retained
// messages; the last two are loaded here rather than by mochi, which would
// lose their packet identifiers and expiry.)
//
// An MQTT 5 session's expiry counts from its disconnection, not from the
// start: one that expired while the broker was down is forgotten, and
// mochi, which counts down from the start, is given what is left of it. (A
// session connected when the broker was killed has no disconnection
// recorded, and counts from the start.)
func (h *store) StoredClients() ([]storage.Client, error) {
	var clients []storage.Client
	var expired []string
	now := time.Now().Unix()
	err := h.view(func(tx *bbolt.Tx) error {
		return tx.Bucket(bSessions).ForEach(func(k, v []byte) error {
			var c sessionRec
			if err := json.Unmarshal(v, &c); err != nil {
				return fmt.Errorf("session %q: %w", k, err)
			}
			if c.ProtocolVersion == 5 {
				c.Properties.SessionExpiryIntervalFlag = true // mochi then counts down from now
				if gone := now - c.Disconnected; c.Disconnected > 0 && gone > 0 {
					// Expired as mochi counts (clearExpiredClients): once
					// more than the interval has passed, in whole seconds.
					left := int64(c.Properties.SessionExpiryInterval) - gone
					if left < 0 {
						expired = append(expired, c.ID)
						return nil
					}
					c.Properties.SessionExpiryInterval = uint32(max(left, 1)) // 0 would end it with no time left
				}
			}
			clients = append(clients, c.Client)
			return nil
		})
	})
	for _, id := range expired {
		h.forget(id)
	}
	h.loaded = map[string]bool{}
	for _, c := range clients {
		h.loaded[c.ID] = true
	}
	return clients, err
}

// orphans deletes records in bucket whose session is not stored (a crash
// can leave them).
func (h *store) orphans(bucket []byte, keys [][]byte) {
	if len(keys) > 0 {
		h.update(func(tx *bbolt.Tx) error {
			for _, k := range keys {
				if err := tx.Bucket(bucket).Delete(k); err != nil {
					return err
				}
			}
			return nil
		})
	}
}

func (h *store) StoredSubscriptions() ([]storage.Subscription, error) {
	var subs []storage.Subscription
	var orphans [][]byte
	err := h.view(func(tx *bbolt.Tx) error {
		return tx.Bucket(bSubscriptions).ForEach(func(k, v []byte) error {
			var s storage.Subscription
			if err := json.Unmarshal(v, &s); err != nil {
				return fmt.Errorf("subscription %q: %w", k, err)
			}
			if !h.loaded[s.Client] {
				orphans = append(orphans, append([]byte(nil), k...))
				return nil
			}
			subs = append(subs, s)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	h.orphans(bSubscriptions, orphans)
	atomic.AddInt64(&h.m.Info.Subscriptions, int64(len(subs)))
	return subs, nil
}

// StoredInflightMessages puts the stored queues into the sessions mochi has
// loaded, and returns nothing for mochi to load.
func (h *store) StoredInflightMessages() ([]storage.Message, error) {
	var orphans [][]byte
	type placed struct {
		cl *mqtt.Client
		r  message
	}
	var unplaced []placed
	now := time.Now().Unix()
	err := h.view(func(tx *bbolt.Tx) error {
		return tx.Bucket(bInflight).ForEach(func(k, v []byte) error {
			var r message
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("queued message %q: %w", k, err)
			}
			cl, ok := h.m.Clients.Get(r.Client)
			if !ok || !h.loaded[r.Client] || r.expired(now) {
				orphans = append(orphans, append([]byte(nil), k...))
				return nil
			}
			if r.Seq == 0 {
				unplaced = append(unplaced, placed{cl, r})
				return nil
			}
			if cl.State.Inflight.SetAt(r.packet(), r.Seq) { // in its stored place in the queue
				atomic.AddInt64(&h.m.Info.Inflight, 1)
			}
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	// A record without a place (OnQosPublish could not read it) after the
	// others; like them, it may have been sent (SetAt: DUP 1 when resent).
	for _, u := range unplaced {
		if u.cl.State.Inflight.SetAt(u.r.packet(), 0) {
			atomic.AddInt64(&h.m.Info.Inflight, 1)
		}
	}
	h.orphans(bInflight, orphans)
	return nil, nil
}

// StoredRetainedMessages restores the retained messages with their expiry,
// then delivers what the journal holds, and returns nothing for mochi to
// load.
func (h *store) StoredRetainedMessages() ([]storage.Message, error) {
	var journal []message
	var expired [][]byte
	now := time.Now().Unix()
	err := h.view(func(tx *bbolt.Tx) error {
		err := tx.Bucket(bRetained).ForEach(func(k, v []byte) error {
			var r message
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("retained message %q: %w", k, err)
			}
			if r.expired(now) {
				expired = append(expired, append([]byte(nil), k...))
				return nil
			}
			h.m.Topics.RetainMessage(r.packet())
			return nil
		})
		if err != nil {
			return err
		}
		return tx.Bucket(bJournal).ForEach(func(k, v []byte) error {
			var r message
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("journal %x: %w", k, err)
			}
			journal = append(journal, r)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	h.orphans(bRetained, expired)
	atomic.StoreInt64(&h.m.Info.Retained, int64(h.m.Topics.Retained.Len()))
	for _, r := range journal {
		h.deliver(r)
	}
	return nil, nil
}

// deliver hands a journalled message to its subscribers again, as if its
// publisher sent it now; the sessions that stored their copy before the
// crash are skipped (OnQosPublish). It was retained, if at all, before it
// was journalled.
func (h *store) deliver(r message) {
	defer h.del(bJournal, seqKey(r.Seq))
	pk := r.packet()
	if pk.Expiry > 0 {
		left := pk.Expiry - time.Now().Unix()
		if left <= 0 {
			return
		}
		pk.Properties.MessageExpiryInterval = uint32(left)
	}
	pk.FixedHeader.Retain = false
	pk.PacketID = 1 // any identifier: mochi checks there is one
	cl := h.m.NewClient(nil, mqtt.LocalListener, r.Origin, true)
	cl.Properties.ProtocolVersion = r.ProtocolVersion
	h.jmu.Lock()
	h.replaying = r.Seq
	h.jmu.Unlock()
	if err := h.m.InjectPacket(cl, pk); err != nil {
		h.Log.Error("persist: deliver a journalled message", "topic", r.Topic, "error", err)
	}
	h.jmu.Lock()
	h.replaying = 0
	h.jmu.Unlock()
}
