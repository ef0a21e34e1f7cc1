package daemon

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/telguard/telguard/internal/event"
	"github.com/telguard/telguard/internal/geoip"
	"github.com/telguard/telguard/internal/sipedge"
	"github.com/telguard/telguard/internal/sipedge/prefilter"
	"golang.org/x/sync/errgroup"
)

// newSIPEdge builds the inline SIP guard and its packet filter and binds
// their ports.
func (d *Daemon) newSIPEdge() error {
	sc := d.cfg.SIP
	trusted, err := sc.TrustedPrefixes()
	if err != nil {
		return err
	}
	carriers, err := sc.CarrierPrefixes()
	if err != nil {
		return err
	}
	// Carriers and the upstream are trusted by the filter too: the PBX
	// must never be flood-banned by its own traffic, nor country-filtered.
	// A name is resolved once, here, and the guard is given the same
	// address.
	upAddr, err := sipedge.ResolveUpstream(sc.Upstream)
	if err != nil {
		return fmt.Errorf("sip edge: %w", err)
	}
	filterTrusted := append(slices.Concat(trusted, carriers), netip.PrefixFrom(upAddr.Addr(), upAddr.Addr().BitLen()))
	d.filter, err = prefilter.New(prefilter.Config{
		MaxPacketBytes: sc.MaxPacketBytes, FloodRequests: sc.FloodRequests,
		FloodWindow: sc.FloodWindow, FloodBan: sc.FloodBan, Trusted: filterTrusted,
	})
	if err != nil {
		return fmt.Errorf("sip packet filter: %w", err)
	}
	d.floodBans = make(chan prefilter.Ban, 1024)
	handOff := func(b prefilter.Ban) {
		// Runs inside the filter's hot path: hand off, never wait.
		select {
		case d.floodBans <- b:
		default:
			d.log.Warn("sip flood ban or unban not recorded: too many at once", "prefix", b.Prefix.String())
		}
	}
	d.filter.OnBan(handOff)
	d.filter.OnUnban(handOff)
	if sc.GeoIPDB != "" {
		// The reader's mapping is released with the filter that holds it
		// (maxminddb unmaps on garbage collection): the filter runs as
		// long as the process.
		geo, err := geoip.Open(sc.GeoIPDB)
		if err != nil {
			return fmt.Errorf("sip: %w", err)
		}
		if geo.IPv4Only() {
			// Such a database places no IPv6 caller: a deny list would
			// let every one through, an allow list drop every one.
			for _, l := range sc.Listen {
				if listensIPv6(l) {
					return fmt.Errorf("sip: geoip_db %s has no IPv6 networks, but listen %q takes IPv6 callers: use a database with IPv6 (GeoLite2 has it) or IPv4 listeners only", sc.GeoIPDB, l)
				}
			}
		}
		d.filter.SetCountryFilter(geo.Lookup, sc.DenyCountries, sc.AllowCountries)
		d.log.Info("sip country filter on", "db", sc.GeoIPDB, "deny", sc.DenyCountries, "allow", sc.AllowCountries)
	}
	d.registry.MustRegister(prefilter.NewCollector(d.filter))
	key, err := d.secretFile("sip-stamp-key", 32)
	if err != nil {
		return err
	}
	d.sip, err = sipedge.New(sipedge.Config{
		Listen: sc.Listen, Upstream: sc.Upstream, UpstreamAddr: upAddr, Advertise: sc.Advertise, Tenant: sc.Tenant,
		TLSCert: sc.TLSCert, TLSKey: sc.TLSKey, TLSClientCAs: sc.TLSClientCAs,
		TrustedCIDRs: trusted, CarrierCIDRs: carriers, AccountFrom: sc.AccountFrom, StampKey: key, Filter: d.filter,
		KeepNATContact: sc.NATContact == "keep", UpstreamTLSCAs: sc.UpstreamTLSCAs,
		Simulation: sc.Simulation,
	}, d.engine, d.registry, d.log)
	if err != nil {
		return fmt.Errorf("sip edge: %w", err)
	}
	if sc.Simulation {
		d.log.Warn("sip edge in simulation mode: event times come from X-Telguard-Time and decisions go out in X-Telguard-Decision; for telguard sim only, never production")
	}
	if err := d.sip.Listen(); err != nil {
		return fmt.Errorf("sip edge: %w", err)
	}
	return nil
}

// listensIPv6 reports a listen address ("udp:host:port", "tcp6:…") that
// takes IPv6 packets: an IPv6 network, or an IPv6 or "::" host.
func listensIPv6(spec string) bool {
	network, hostport, ok := strings.Cut(spec, ":")
	if !ok {
		return false
	}
	if strings.HasSuffix(network, "6") {
		return true
	}
	if strings.HasSuffix(network, "4") {
		return false
	}
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return false
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Is6() && !a.Is4In6()
}

// recordFloodBans writes each ban the SIP packet filter makes on its own
// (floods, decided before any parsing), and its end, to the decisions log,
// so every ban and unban is on record with its reason. Flood bans live in
// memory only: those still in force when telguard stops are recorded as
// lifted.
func (d *Daemon) recordFloodBans(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			for drained := false; !drained; {
				select {
				case b := <-d.floodBans:
					d.recordFloodBan(b)
				default:
					drained = true
				}
			}
			for _, b := range d.filter.Bans() {
				if b.Flood {
					b.Ended = prefilter.EndLifted
					d.recordFloodBan(b)
				}
			}
			return nil
		case b := <-d.floodBans:
			d.recordFloodBan(b)
		}
	}
}

// recordFloodBan writes one flood ban, or its end, to the decisions log.
func (d *Daemon) recordFloodBan(b prefilter.Ban) {
	d.writer.Submit(event.Change{Op: event.OpDecision, Decision: floodBanRecord(b, d.clock.Now(), d.cfg.SIP.Tenant)})
	if b.Ended == "" {
		d.log.Warn("sip source banned", "prefix", b.Prefix.String(), "until", b.Until.UTC().Format(time.RFC3339), "reason", "flooding: "+b.Reason)
		return
	}
	d.log.Info("sip source unbanned", "prefix", b.Prefix.String(), "ended", b.Ended)
}

// floodBanRecord is the decisions-log entry of a flood ban (rule
// sip.flood) or of its end (rule ban.lifted, as for the engine's bans).
func floodBanRecord(b prefilter.Ban, now time.Time, tenant string) *event.Decision {
	if b.Ended == "" {
		reason := "flooding: " + b.Reason
		return &event.Decision{
			Time: now, Tenant: tenant, SourceIP: b.Prefix.Addr().String(), Verdict: event.Ban,
			Reasons: []event.Reason{{Rule: "sip.flood", Reason: reason, Mode: event.Enforce, Verdict: event.Ban, Level: "critical"}},
			Risk:    95, SIPCode: 0, HTTPCode: 403, Silent: true,
			BanSeconds: int64(b.Until.Sub(now).Seconds() + 0.5),
		}
	}
	at, reason := b.Until, "ban by sip.flood expired"
	if b.Ended == prefilter.EndLifted {
		at, reason = now, "ban by sip.flood lifted before it expired"
	}
	return &event.Decision{
		Time: at, Tenant: tenant, SourceIP: b.Prefix.Addr().String(), Verdict: event.Allow,
		Reasons: []event.Reason{{Rule: "ban.lifted", Reason: reason + " (" + b.Reason + ")", Mode: event.Enforce, Verdict: event.Allow}},
	}
}

// SIPAddrs returns the SIP edge's bound addresses, nil when it is off.
func (d *Daemon) SIPAddrs() []string {
	if d.sip == nil {
		return nil
	}
	return d.sip.Addrs()
}

// runSIP starts the SIP edge's goroutines in g, when it is configured.
func (d *Daemon) runSIP(ctx context.Context, g *errgroup.Group) {
	if d.sip == nil {
		return
	}
	g.Go(func() error { return d.sip.Run(ctx) })
	g.Go(func() error { return d.filter.Run(ctx) })
	g.Go(func() error { return d.recordFloodBans(ctx) })
}
