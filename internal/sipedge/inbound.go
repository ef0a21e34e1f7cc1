package sipedge

import (
	"context"
	"net/netip"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/telguard/telguard/internal/audit"
	"github.com/telguard/telguard/internal/event"
)

// verdictInbound labels a carrier's INVITE: reported to the engine
// as an inbound call, never blocked.
const verdictInbound = "inbound"

// fromCarrier reports a source whose initial INVITE is a call into the
// tenant: a carrier (CarrierCIDRs; trusted peers are not carriers) that is
// not the upstream. Anything
// from the upstream's IP address is the PBX's own traffic, whatever port
// or connection it uses (a second SIP profile, a connection it opened):
// the PBX's calls out through a carrier are never taken for the
// carrier's calls in.
func (s *Server) fromCarrier(src netip.AddrPort) bool {
	if src.Addr() == s.upstream.Addr() {
		return false
	}
	for _, p := range s.carriers {
		if p.Contains(src.Addr()) {
			return true
		}
	}
	return false
}

// onCarrierInvite forwards a trusted carrier's initial INVITE to the
// upstream, as for any trusted peer, after reporting it to the engine as
// an inbound call (the account it rings is the Request-URI user, the
// caller the From user), so patterns such as Wangiri callbacks see the
// ring. Its answer and end are reported like an outbound call's. The
// decision is logged by the engine and, in simulation mode, copied to the
// forwarded INVITE, but never enforced: the carrier is trusted.
func (s *Server) onCarrierInvite(ctx context.Context, in *listener, req *sip.Request, src netip.AddrPort, branch, callID, key string, rt route, now, at, start time.Time) {
	if tx, ok := s.txs.get(branch, now); ok && tx.method == req.Method {
		// A retransmission: forwarded again, not reported again; or,
		// when the first could not be forwarded, answered the same.
		s.metrics.request(req.Method, verdictRetrans)
		if tx.local != nil {
			s.send(in, tx.local)
			return
		}
		s.setDecisionHeader(req, tx.decision)
		if err := s.forward(in, req, branch, false, stampScreened, callID, src, rt); err != nil {
			s.fail(in, req, err)
		}
		return
	}
	ev := carrierEvent(req, src.Addr(), s.cfg.Tenant, at)
	d := s.eng.Decide(ctx, ev)
	s.metrics.request(req.Method, verdictInbound)
	if d.Verdict != event.Allow {
		_, _, rule := decisionReply(&d)
		s.log.Info("sip inbound call from a trusted carrier not blocked", "source", src.Addr().String(),
			"from", audit.MaskNumber(ev.From), "account", audit.MaskNumber(ev.Account),
			"verdict", string(d.Verdict), "rule", rule)
	}
	tx := &txState{method: req.Method, ev: ev, screened: true}
	if s.cfg.Simulation {
		tx.decision = decisionHeader(&d)
		s.setDecisionHeader(req, tx.decision)
	}
	tx.opened = s.openCall(key, branch, fromTag(req), true, now)
	s.txs.put(branch, tx, now)
	if err := s.forward(in, req, branch, false, stampScreened, callID, src, rt); err != nil {
		s.inviteNotForwarded(ctx, in, req, branch, tx, err, now, at)
		return
	}
	s.metrics.forwarded(start)
}

// carrierEvent is the inbound call_attempt of a carrier's INVITE: the
// account is the number or extension it rings (the Request-URI user),
// From the caller. The carrier's own User-Agent and SIP details are left
// out: they describe a trusted peer, not the caller, and scanner
// fingerprints on them would only ban the carrier in the log.
func carrierEvent(req *sip.Request, src netip.Addr, tenant string, at time.Time) event.Event {
	ev := requestEvent(req, event.CallAttempt, src, tenant, AccountFromUser, at)
	ev.Direction = event.Inbound
	ev.Account = bound(req.Recipient.User)
	// The identity the carrier's network asserts (RFC 3325) is the caller
	// when there is one: From is whatever the caller wrote, and a ring
	// recorded under a forged number could block a callback to it.
	if pai := assertedUser(headerValue(req, "P-Asserted-Identity")); pai != "" {
		ev.From = pai
	}
	ev.UserAgent = ""
	ev.SIP = nil
	return ev
}

// setDecisionHeader puts the engine's decision (h, built by
// decisionHeader) on a request going to the upstream, in place of any the
// sender wrote. Simulation mode only; h is nil otherwise.
func (s *Server) setDecisionHeader(req *sip.Request, h sip.Header) {
	if !s.cfg.Simulation || h == nil {
		return
	}
	removeHeaders(req, hdrDecision)
	req.AppendHeader(h)
}
