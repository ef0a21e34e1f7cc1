package cli

import (
	"strings"
	"testing"
)

// A run through the SIP edge refuses what cannot work before it sends
// anything, saying which flag to fix.
func TestSimSIPFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--sip-target", "udp:127.0.0.1:5060"}, "needs --sip-pbx"},
		{[]string{"--sip-target", "127.0.0.1:5060", "--sip-pbx", "127.0.0.1:5070"}, "want udp:HOST:PORT"},
		{[]string{"--sip-target", "udp:localhost:5060", "--sip-pbx", "127.0.0.1:5070"}, "with an IP address"},
		{[]string{"--sip-target", "udp:127.0.0.1:5060", "--target", "http://127.0.0.1:8080"}, "exclude each other"},
		{[]string{"--sip-target", "udp:127.0.0.1:5060", "--sip-pbx", "127.0.0.1:5070", "--tenants", "3"}, "one tenant, the edge's"},
		{[]string{"--sip-target", "udp:127.0.0.1:5060", "--sip-pbx", "127.0.0.1:5070", "--model"}, "in process only"},
		{[]string{"--sip-target", "udp:192.0.2.1:5060", "--sip-pbx", "127.0.0.1:5070"}, "loopback"},
		{[]string{"--sip-target", "udp:127.0.0.1:5060", "--sip-pbx", "127.0.0.1:5070", "--sip-carrier", "127.0.0.1"}, "another address than --sip-pbx"},
		{[]string{"--sip-pbx", "127.0.0.1:5070"}, "goes with --sip-target"},
		{[]string{"--sip-target", "udp:127.0.0.1:5060", "--sip-pbx", "127.0.0.1:5070", "--rate", "-1"}, "must not be negative"},
	} {
		var out, errOut strings.Builder
		code := Main(append([]string{"sim"}, c.args...), strings.NewReader(""), &out, &errOut)
		if code != exitUsage || !strings.Contains(errOut.String(), c.want) {
			t.Errorf("sim %s: exit %d, %q; want usage error with %q", strings.Join(c.args, " "), code, errOut.String(), c.want)
		}
	}
}

// The help tells how to run against the edge: the daemon's config and
// the command.
func TestSimHelpExplainsSIPMode(t *testing.T) {
	var out, errOut strings.Builder
	Main([]string{"sim", "--help"}, strings.NewReader(""), &out, &errOut)
	for _, want := range []string{"simulation: true", "flood_requests", "--sip-target udp:127.0.0.1:5060 --sip-pbx 127.0.0.1:5070", "carriers:", "dedicated"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("sim --help lacks %q", want)
		}
	}
}
