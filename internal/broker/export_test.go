package broker

import (
	"strings"

	mqtt "github.com/mochi-mqtt/server/v2"
)

// AddHook adds a mochi hook to the running broker after mqtk's own, for
// tests that act at a moment only a hook sees (retainonce_test.go,
// resume_test.go). Built only with the package's tests.
func (s *Server) AddHook(h mqtt.Hook) error { return s.m.AddHook(h, nil) }

// FilterID is a client ID made of a topic filter ("a/+/#" -> "a-plus-hash"),
// for tests that connect a client of its own per filter.
func FilterID(filter string) string {
	return strings.NewReplacer("/", "-", "+", "plus", "#", "hash").Replace(filter)
}
