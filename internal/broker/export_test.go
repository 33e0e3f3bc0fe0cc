package broker

import mqtt "github.com/mochi-mqtt/server/v2"

// AddHook adds a mochi hook to the running broker, for tests that hold the
// broker at one of its events (retainonce_test.go). Built only with the
// package's tests.
func (s *Server) AddHook(h mqtt.Hook) error { return s.m.AddHook(h, nil) }
