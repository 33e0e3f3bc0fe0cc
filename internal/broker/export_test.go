package broker

import mqtt "github.com/mochi-mqtt/server/v2"

// AddHook adds a mochi hook to the running broker after mqtk's own, for
// tests that act at a moment only a hook sees (retainonce_test.go,
// resume_test.go). Built only with the package's tests.
func (s *Server) AddHook(h mqtt.Hook) error { return s.m.AddHook(h, nil) }
