package cli

import (
	"errors"
	"slices"
	"testing"

	"mqtk/internal/mqttc"
)

// TestResolveVersion checks what -V, its absence and v5-only options make of
// the connection config.
func TestResolveVersion(t *testing.T) {
	for _, tc := range []struct {
		name     string
		env      map[string]string
		args     []string
		version  int
		fallback bool
		v5Only   []string
		expiry   bool
	}{
		{"default: 5 with fallback", nil, nil, mqttc.V5, true, nil, false},
		{"explicit 5", nil, []string{"-V", "5"}, mqttc.V5, false, nil, false},
		{"311", nil, []string{"-V", "311"}, mqttc.V311, false, nil, false},
		{"mqttv31", nil, []string{"-V", "mqttv31"}, mqttc.V31, false, nil, false},
		{"from the environment", map[string]string{"MQTK_PROTOCOL_VERSION": "3.1.1"}, nil, mqttc.V311, false, nil, false},
		{"-c with 3.1.1: no session expiry", nil, []string{"-V", "311", "-c", "-i", "me"}, mqttc.V311, false, nil, false},
		{"-c without -V: expiry for 5", nil, []string{"-c", "-i", "me"}, mqttc.V5, true, nil, true},
		{"-x without -V: no fallback", nil, []string{"-x", "60"}, mqttc.V5, true, []string{"-x/--session-expiry"}, true},
		{"-x from the environment", map[string]string{"MQTK_SESSION_EXPIRY": "60"}, nil, mqttc.V5, true, []string{"MQTK_SESSION_EXPIRY"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := resolveArgs(t, tc.env, tc.args...)
			if err != nil {
				t.Fatal(err)
			}
			cfg := c.cfg
			if cfg.ProtocolVersion != tc.version || (cfg.Fallback != nil) != tc.fallback || (cfg.SessionExpiry != nil) != tc.expiry {
				t.Fatalf("version %d, fallback %v, expiry %v", cfg.ProtocolVersion, cfg.Fallback != nil, cfg.SessionExpiry != nil)
			}
			if cfg.Fallback != nil && len(cfg.Fallback.V5Only)+len(tc.v5Only) > 0 && !slices.Equal(cfg.Fallback.V5Only, tc.v5Only) {
				t.Errorf("V5Only = %q, want %q", cfg.Fallback.V5Only, tc.v5Only)
			}
		})
	}
	_, err := resolveArgs(t, nil, "-V", "311", "-x", "60")
	var ue *UsageError
	if !errors.As(err, &ue) || err.Error() != "-x/--session-expiry needs MQTT 5, and -V 311 asks for MQTT 3.1.1: drop -x/--session-expiry, or use -V 5" {
		t.Errorf("-V 311 -x 60: %v", err)
	}
}

// TestFallbackNotice checks the notice line and that --quiet silences it.
func TestFallbackNotice(t *testing.T) {
	for _, quiet := range []bool{false, true} {
		args := []string{}
		if quiet {
			args = append(args, "--quiet")
		}
		a, _, errb := testApp("", nil)
		c, err := resolveWith(t, a, args...)
		if err != nil {
			t.Fatal(err)
		}
		c.cfg.Fallback.Notify(mqttc.V5, mqttc.V311)
		want := "mqtk: the broker refused MQTT 5; connected with MQTT 3.1.1 instead (-V 311 skips trying 5)\n"
		if quiet {
			want = ""
		}
		if errb.String() != want {
			t.Errorf("quiet=%v: stderr %q, want %q", quiet, errb.String(), want)
		}
	}
}
