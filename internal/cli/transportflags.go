package cli

import "mqtk/internal/mqttc"

// resolveTransport applies the transport flags (WebSocket headers, Unix
// socket, proxy, ALPN) to cfg, after the endpoint and TLS are resolved.
func (f *connFlags) resolveTransport(cfg *mqttc.Config) error {
	return nil
}
