package config

import (
	"errors"
	"strings"
	"testing"
)

// Simulation mode trusts headers any sender can write, so telguard must
// refuse it on anything but loopback, naming the field at fault.
func TestSIPSimulationNeedsLoopback(t *testing.T) {
	for _, tc := range []struct {
		name, listen, upstream, wantErr string
	}{
		{"loopback v4", `["udp:127.0.0.1:5060", "tcp:127.0.0.1:5060"]`, "udp:127.0.0.1:5070", ""},
		{"loopback v6", `["udp:[::1]:5060"]`, "udp:[::1]:5070", ""},
		{"other loopback address", `["udp:127.0.0.2:5060"]`, "udp:127.0.0.1:5070", ""},
		{"public listener", `["udp:127.0.0.1:5060", "udp:203.0.113.10:5060"]`, "udp:127.0.0.1:5070",
			`sip.listen[1]: sip.simulation needs loopback listeners (127.0.0.1, [::1]), got "udp:203.0.113.10:5060"`},
		{"wildcard listener", `["udp:0.0.0.0:5060"]`, "udp:127.0.0.1:5070", "sip.listen[0]: sip.simulation needs loopback"},
		{"named listener", `["udp:localhost:5060"]`, "udp:127.0.0.1:5070", "sip.listen[0]: sip.simulation needs loopback"},
		{"remote upstream", `["udp:127.0.0.1:5060"]`, "udp:10.0.0.5:5060",
			`sip.upstream: sip.simulation needs a loopback upstream (127.0.0.1, [::1]), got "udp:10.0.0.5:5060"`},
		{"named upstream", `["udp:127.0.0.1:5060"]`, "udp:pbx.internal:5060", "sip.upstream: sip.simulation needs a loopback upstream"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			yaml := "sip:\n  listen: " + tc.listen + "\n  upstream: \"" + tc.upstream + "\"\n  simulation: true\n"
			c, err := Parse("c.yaml", []byte(yaml))
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if !c.SIP.Simulation {
					t.Fatal("simulation: true was not read")
				}
				return
			}
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
	// Outside simulation mode public addresses are what production uses.
	c, err := Parse("c.yaml", []byte("sip:\n  listen: [\"udp:203.0.113.10:5060\"]\n  upstream: \"udp:10.0.0.5:5060\"\n"))
	if err != nil || c.SIP.Simulation {
		t.Fatalf("production config: simulation = %v, err = %v; want off and no error", c.SIP.Simulation, err)
	}
}
