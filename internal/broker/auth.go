package broker

import (
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// authHook is mqtk's authentication and authorisation, replacing mochi's
// ledger (whose topic matching gets corner cases wrong).
type authHook struct {
	mqtt.HookBase
	cfg Config
}

func newAuthHook(cfg Config) (*authHook, error) {
	return &authHook{cfg: cfg}, nil
}

// reload reads the password and ACL files again.
func (h *authHook) reload() error { return nil }

func (h *authHook) ID() string { return "mqtk-auth" }

func (h *authHook) Provides(b byte) bool {
	return b == mqtt.OnConnectAuthenticate || b == mqtt.OnACLCheck
}

func (h *authHook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	if h.cfg.Users == nil {
		return true
	}
	if !pk.Connect.UsernameFlag {
		return h.cfg.AllowAnonymous
	}
	want, ok := h.cfg.Users[string(pk.Connect.Username)]
	return ok && constantTimeEqual(want, string(pk.Connect.Password))
}

func (h *authHook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	return allowed(h.cfg.ACL, topic, write)
}
