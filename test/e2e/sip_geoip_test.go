package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/telguard/telguard/internal/geoip/geoiptest"
)

// Denied countries: a GeoIP database places 127.0.0.66 in North Korea and
// the rest of 127.0.0.0/8 in Brazil; with KP denied, a caller on
// 127.0.0.66 gets no reply at all and the PBX never sees it, while a phone
// on 127.0.0.3 calls as usual.
func TestSIPEdgeDeniedCountryGetsNothing(t *testing.T) {
	bin := needSIPp(t)
	db := filepath.Join(t.TempDir(), "country.mmdb")
	geoiptest.Write(t, db, map[string]string{"127.0.0.0/8": "BR", "127.0.0.66/32": "KP"})
	pbx := freeUDP(t, "127.0.0.1")
	d, guard := startSIPConfig(t, pbx, "geoip_db: "+db, "deny_countries: [KP]")

	uas := sipp(t, bin, sipData+"uas_call.xml", "127.0.0.1", pbx, "", "-m", "1")
	denied := sipp(t, bin, sipData+"uac_call.xml", "127.0.0.66", freeUDP(t, "127.0.0.66"), guard, "-m", "1", "-s", "1133334444", "-timeout", "6s")
	phone := sipp(t, bin, sipData+"uac_call.xml", "127.0.0.3", freeUDP(t, "127.0.0.3"), guard, "-m", "1", "-s", "1133334444")
	if code := phone.exit(t); code != 0 {
		t.Fatalf("the phone in an allowed country could not call: sipp exited %d", code)
	}
	if code := uas.exit(t); code != 0 {
		t.Fatalf("pbx exited %d", code)
	}
	if code := denied.exit(t); code == 0 {
		t.Fatal("the caller in a denied country completed a call")
	}
	if n := denied.received(""); n != 0 {
		t.Fatalf("the caller in a denied country received %d messages, want none", n)
	}
	if n := uas.received("INVITE"); n != 1 {
		t.Fatalf("the PBX received %d INVITEs, want 1 (the allowed phone's)", n)
	}
	metrics, err := httpGet(d.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	line := grepLines(metrics, `telguard_sip_prefilter_packets_total{verdict="drop_country"}`)
	if line == "" || strings.HasSuffix(strings.TrimSpace(line), " 0") {
		t.Fatalf("no packet counted as dropped for its country:\n%s", grepLines(metrics, "telguard_sip_prefilter_packets_total"))
	}
}

// An IPv4-only country database cannot place IPv6 callers: with an IPv6
// listener telguard refuses to start, naming the problem, rather than let
// every IPv6 caller past a deny list (or drop every one with an allow
// list).
func TestSIPEdgeIPv4OnlyDatabaseRefusesIPv6Listener(t *testing.T) {
	dir := workdir(t)
	db := filepath.Join(dir, "country-v4.mmdb")
	geoiptest.WriteIPv4(t, db, map[string]string{"127.0.0.0/8": "BR"})
	cfg := "sip:\n  listen: [\"udp:127.0.0.1:" + strconv.Itoa(freeUDP(t, "127.0.0.1")) + "\", \"udp:[::1]:" + strconv.Itoa(freeUDP(t, "127.0.0.1")) + "\"]\n" +
		"  upstream: \"udp:127.0.0.1:" + strconv.Itoa(freeUDP(t, "127.0.0.1")) + "\"\n  geoip_db: " + db + "\n  deny_countries: [KP]\n"
	if err := os.WriteFile(filepath.Join(dir, "telguard.yaml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, "serve", "--listen", freePort(t), "--config", "telguard.yaml")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), withKey()...)
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "has no IPv6 networks") {
		t.Fatalf("telguard started (err %v) with an IPv4-only database and an IPv6 listener:\n%s", err, out)
	}
}
