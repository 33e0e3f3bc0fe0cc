package broker

import (
	"errors"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// authHook is mqtk's authentication and authorisation, replacing mochi's
// ledger (whose topic matching gets corner cases wrong).
//
// Authentication: with Users or a password file, a client that sends a user
// name must give that user's password, and one that sends none is let in
// only with AllowAnonymous; without either, every client is let in. A
// refusal is "bad user name or password" (0x86 in MQTT 5, 0x04 in 3.1.1).
//
// Authorisation: a publish, subscription or delivery must pass both the
// Config.ACL rules (if any) and the ACL file (if any; see AccessList).
type authHook struct {
	mqtt.HookBase
	cfg   Config
	log   *slog.Logger
	m     *mqtt.Server
	files atomic.Pointer[authFiles]

	// Revocation (see reload): the generation of the files each connected
	// client was let in by, and for each user a reload revoked, the
	// generation that did.
	authGen   sync.Map // *mqtt.Client -> uint64
	revokedMu sync.Mutex
	revokedAt map[string]uint64
}

// authFiles are the password and ACL files in force; reload replaces them
// as a whole.
type authFiles struct {
	passwords *Passwords  // nil without a password file
	acl       *AccessList // nil without an ACL file
	gen       uint64      // 0 at start, +1 at each reload
}

func newAuthHook(cfg Config, m *mqtt.Server) (*authHook, error) {
	h := &authHook{cfg: cfg, log: cfg.Logger, m: m, revokedAt: map[string]uint64{}}
	if h.log == nil {
		h.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	f, err := h.load()
	if err != nil {
		return nil, err
	}
	h.files.Store(f)
	if f.acl != nil && f.acl.hasUsers() && f.passwords == nil && cfg.Users == nil {
		h.log.Warn("the ACL file has user sections but there is no password file: any client can claim any user name", "acl_file", cfg.ACLFile)
	}
	return h, nil
}

func (h *authHook) load() (*authFiles, error) {
	f := &authFiles{}
	var err error
	if h.cfg.PasswordFile != "" {
		if f.passwords, err = LoadPasswords(h.cfg.PasswordFile); err != nil {
			return nil, &authFileError{"password file", err}
		}
	}
	if h.cfg.ACLFile != "" {
		if f.acl, err = LoadAccessList(h.cfg.ACLFile); err != nil {
			return nil, &authFileError{"ACL file", err}
		}
	}
	return f, nil
}

// ErrAuthFile is in the error of a password or ACL file that cannot be
// read or is malformed.
var ErrAuthFile = errors.New("password or ACL file")

type authFileError struct {
	what string
	err  error
}

func (e *authFileError) Error() string   { return e.what + ": " + e.err.Error() }
func (e *authFileError) Unwrap() []error { return []error{e.err, ErrAuthFile} }

// reload reads the password and ACL files again. The new rules apply to
// connected clients' next publish, subscription and delivery. The users of
// the password file whose entry is gone or changed are revoked: the
// clients let in as them by the previous files are disconnected, as
// mosquitto does on reload, by revokeConnected for those connected and by
// OnSessionEstablished for those still connecting (authenticated, not yet
// listed). If either file cannot be read or parsed, both previous ones stay
// in force and the error is returned.
func (h *authHook) reload() error {
	f, err := h.load()
	if err != nil {
		return err
	}
	h.revokedMu.Lock() // one reload at a time: generations in order
	defer h.revokedMu.Unlock()
	old := h.files.Load()
	f.gen = old.gen + 1
	if old.passwords != nil && f.passwords != nil {
		for user := range old.passwords.changed(f.passwords) {
			if _, static := h.cfg.Users[user]; !static { // Config.Users come first, and do not change
				h.revokedAt[user] = f.gen
			}
		}
	}
	h.files.Store(f)
	return nil
}

// isRevoked reports whether cl was let in as a user that a reload has
// revoked since.
func (h *authHook) isRevoked(cl *mqtt.Client) bool {
	g, ok := h.authGen.Load(cl)
	if !ok {
		return false // not let in by a password (anonymous, inline)
	}
	h.revokedMu.Lock()
	at := h.revokedAt[string(cl.Properties.Username)]
	h.revokedMu.Unlock()
	return at > g.(uint64)
}

// revokeConnected disconnects, among clients, those let in as a revoked
// user, all at once (each may take up to the disconnect grace), and
// returns how many.
func (h *authHook) revokeConnected(clients map[string]*mqtt.Client) int {
	var wg sync.WaitGroup
	n := 0
	for _, cl := range clients {
		if !cl.Closed() && h.isRevoked(cl) {
			n++
			wg.Go(func() { h.revoke(cl) })
		}
	}
	wg.Wait()
	return n
}

// dropWills drops the will of each of clients that the rules now in force
// no longer let publish it (a reload tightened the ACL), as its will would
// have been dropped at connect under them; and returns how many.
func (h *authHook) dropWills(clients map[string]*mqtt.Client) int {
	f := h.files.Load()
	n := 0
	for _, cl := range clients {
		if h.dropWill(f, cl) {
			n++
		}
	}
	return n
}

func (h *authHook) dropWill(f *authFiles, cl *mqtt.Client) bool {
	if atomic.LoadUint32(&cl.Properties.Will.Flag) == 0 || h.permit(f, cl, cl.Properties.Will.TopicName, true) {
		return false
	}
	atomic.StoreUint32(&cl.Properties.Will.Flag, 0)
	h.log.Info("will dropped: not authorized to publish to its topic", "client", cl.ID, "topic", cl.Properties.Will.TopicName)
	return true
}

// revoke disconnects cl, whose user was revoked, without its will (a
// message of a user no longer allowed in).
func (h *authHook) revoke(cl *mqtt.Client) {
	h.log.Info("disconnected: its user was removed from the password file or given a new password", "client", cl.ID, "user", string(cl.Properties.Username))
	atomic.StoreUint32(&cl.Properties.Will.Flag, 0)
	_ = h.m.DisconnectClient(cl, packets.ErrNotAuthorized)
}

// OnSessionEstablished disconnects a client let in just before a reload
// revoked its user, which revokeConnected did not find among the
// connected clients yet, and drops its will if a reload in that gap
// forbade it (dropWills did not find it either).
func (h *authHook) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	if h.isRevoked(cl) {
		h.revoke(cl)
		return
	}
	h.dropWill(h.files.Load(), cl) // its will, checked at connect, against a reload since
}

func (h *authHook) OnDisconnect(cl *mqtt.Client, _ error, _ bool) { h.authGen.Delete(cl) }

func (h *authHook) ID() string { return "mqtk-auth" }

func (h *authHook) Provides(b byte) bool {
	switch b {
	case mqtt.OnConnectAuthenticate, mqtt.OnACLCheck, mqtt.OnPacketEncode, mqtt.OnSessionEstablished, mqtt.OnDisconnect:
		return true
	}
	return false
}

func (h *authHook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	f := h.files.Load()
	if !h.authenticate(f, pk) {
		h.log.Info("connection refused: bad user name or password", "client", cl.ID, "user", string(pk.Connect.Username), "remote", cl.Net.Remote)
		return false
	}
	if pk.Connect.UsernameFlag && f.passwords != nil {
		h.authGen.Store(cl, f.gen) // the files that let it in (see reload)
	}
	// mochi publishes a will without an ACL check; mosquitto drops a will
	// its client may not publish, and so does mqtk (deciding at connect,
	// and again at each reload: dropWills).
	h.dropWill(f, cl)
	return true
}

func (h *authHook) authenticate(f *authFiles, pk packets.Packet) bool {
	if h.cfg.Users == nil && f.passwords == nil {
		return true
	}
	if !pk.Connect.UsernameFlag {
		return h.cfg.AllowAnonymous
	}
	user := string(pk.Connect.Username)
	if want, ok := h.cfg.Users[user]; ok {
		return constantTimeEqual(want, string(pk.Connect.Password))
	}
	if f.passwords == nil {
		return false
	}
	// Verify even without a password, so that the answer takes as long.
	ok := f.passwords.Verify(user, pk.Connect.Password)
	return ok && pk.Connect.PasswordFlag
}

func (h *authHook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	ok := h.permit(h.files.Load(), cl, topic, write)
	switch {
	case ok:
	case write:
		h.log.Info("publish denied: not authorized", "client", cl.ID, "user", string(cl.Properties.Username), "topic", topic)
	default:
		// A refused subscription is logged with its SUBACK code; a
		// filtered delivery is routine.
		h.log.Debug("read denied: not authorized", "client", cl.ID, "user", string(cl.Properties.Username), "topic", topic)
	}
	return ok
}

func (h *authHook) permit(f *authFiles, cl *mqtt.Client, topic string, write bool) bool {
	grant := reaches
	if !write {
		if filter := shareFilter(topic); filter != topic {
			// A shared subscription must be allowed all it could receive:
			// each message goes to one member of the group, and one that may
			// not read it would lose it for all of them.
			topic, grant = filter, covers
		}
	}
	if !allowed(h.cfg.ACL, topic, write, grant) {
		return false
	}
	return f.acl == nil || f.acl.allowed(cl.ID, string(cl.Properties.Username), topic, write, grant)
}

// EncodePacket words mochi's refusal of bad credentials as MQTT intends:
// in 3.1.1 mochi maps it to 0x05 "not authorized" where 0x04 is "bad user
// name or password"; in 5 its reason string only repeats the reason code,
// so it is replaced by a hint when the client sent no user name.
func (h *authHook) EncodePacket(cl *mqtt.Client, pk *packets.Packet) {
	if pk.FixedHeader.Type != packets.Connack {
		return
	}
	switch {
	case cl.Properties.ProtocolVersion < 5 && pk.ReasonCode == packets.Err3NotAuthorized.Code:
		pk.ReasonCode = packets.ErrMalformedUsernameOrPassword.Code // 0x04, "bad user name or password" in 3.1.1
	case cl.Properties.ProtocolVersion == 5 && pk.ReasonCode == packets.ErrBadUsernameOrPassword.Code:
		pk.Properties.ReasonString = ""
		if len(cl.Properties.Username) == 0 {
			pk.Properties.ReasonString = "this broker needs a user name and password"
		}
	}
}
