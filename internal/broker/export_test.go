package broker

import mqtt "github.com/mochi-mqtt/server/v2"

// AddHook adds h to s's mochi server after mqtk's own hooks, for the tests
// in package broker_test that act at a moment only a hook sees.
func AddHook(s *Server, h mqtt.Hook) error { return s.m.AddHook(h, nil) }
