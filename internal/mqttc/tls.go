package mqttc

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// TLSOptions are mosquitto's TLS flags.
type TLSOptions struct {
	CAFile, CAPath    string
	CertFile, KeyFile string
	Insecure          bool
	Version           string // tlsv1.2, tlsv1.3 (minimum version)
	ServerName        string
	ALPN              []string // protocols offered in ALPN, most preferred first
}

// Wanted reports whether any option asks for TLS on its own (mosquitto turns
// TLS on when a CA or a client certificate is given).
func (o TLSOptions) Wanted() bool { return o.CAFile != "" || o.CAPath != "" || o.CertFile != "" }

// Config builds a tls.Config. With no CA file or path, the system roots are used.
func (o TLSOptions) Config() (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: o.ServerName, InsecureSkipVerify: o.Insecure}
	switch strings.ToLower(strings.TrimPrefix(strings.ToLower(o.Version), "tlsv")) {
	case "", "1.2":
	case "1.3":
		c.MinVersion = tls.VersionTLS13
	default:
		return nil, fmt.Errorf("--tls-version %q: use tlsv1.2 or tlsv1.3", o.Version)
	}
	for _, p := range o.ALPN {
		if p == "" || len(p) > 255 {
			return nil, fmt.Errorf("--tls-alpn %q: a protocol name has 1 to 255 bytes", p)
		}
	}
	c.NextProtos = o.ALPN
	if o.CAFile != "" || o.CAPath != "" {
		pool := x509.NewCertPool()
		if o.CAFile != "" {
			pem, err := os.ReadFile(o.CAFile)
			if err != nil {
				return nil, fmt.Errorf("--cafile: %w", err)
			}
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("--cafile %s: no PEM certificate in it", o.CAFile)
			}
		}
		if o.CAPath != "" {
			entries, err := os.ReadDir(o.CAPath)
			if err != nil {
				return nil, fmt.Errorf("--capath: %w", err)
			}
			for _, e := range entries {
				if e.IsDir() {
					continue
				}
				if pem, err := os.ReadFile(filepath.Join(o.CAPath, e.Name())); err == nil {
					pool.AppendCertsFromPEM(pem)
				}
			}
		}
		c.RootCAs = pool
	}
	switch {
	case o.CertFile != "" && o.KeyFile != "":
		cert, err := tls.LoadX509KeyPair(o.CertFile, o.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("--cert/--key: %w", err)
		}
		c.Certificates = []tls.Certificate{cert}
	case o.CertFile != "" || o.KeyFile != "":
		return nil, errors.New("--cert and --key must be given together")
	}
	return c, nil
}
