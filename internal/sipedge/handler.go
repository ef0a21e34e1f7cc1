package sipedge

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/telguard/telguard/internal/audit"
	"github.com/telguard/telguard/internal/event"
)

// branchPrefix marks the guard's own Via branches: the magic cookie, then
// "-tg", the index of the listener the request came in on, "-", a hash.
const branchPrefix = sip.RFC3261BranchMagicCookie + "-tg"

// Stamp flags, the first character of the Record-Route "tg" parameter.
const (
	stampScreened = 's' // a call the engine decided: report its end
	stampPlain    = 't' // a dialog the guard only relays
	stampPath     = 'p' // a Path entry: signs the flow (fl) it names and its expiry (ex), not a Call-ID
)

// verdictFollowUp labels requests that belong to something already
// screened: in-dialog requests, CANCEL and ACK.
const verdictFollowUp = "follow_up"

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// onRequest screens and forwards one request.
func (s *Server) onRequest(ctx context.Context, in *listener, req *sip.Request, src netip.AddrPort, start time.Time) {
	if err := validate(req); err != nil {
		s.metrics.drop(dropMalformed)
		return
	}
	if s.isOurBranch(req.Via()) {
		s.fail(in, req, ErrLoop)
		return
	}
	stampReceived(req.Via(), src, in.stream())
	now := s.cfg.Clock()
	// at is the event time of what the request reports; now, wall time,
	// runs the guard's own tables. They differ only in simulation mode.
	at, err := s.eventTime(req, now)
	if err != nil {
		s.fail(in, req, err)
		return
	}
	stripGuardHeaders(req)
	fromUp := s.fromUpstream(in, src)
	trusted := fromUp || s.trusted(src.Addr())
	// A REGISTER's Contact is left alone: the guard's Path carries where
	// the phone really is, and a Contact rewritten to a NAT binding that
	// later moves would leave the registrar a second, stale binding.
	if !trusted && req.Method != sip.REGISTER && !s.cfg.KeepNATContact && s.fixNATContact(req, src, in.network) {
		s.metrics.natContact.Inc()
	}
	if !trusted {
		// Nothing before the guard may speak for it: a Record-Route
		// naming the guard came from the caller (the PBX would echo it
		// into its route set), so it goes.
		s.stripOurRecordRoutes(req)
		// Nor for the network: an asserted identity is only worth what
		// the peer that asserts it is (RFC 3325 §5, the trust domain's
		// edge removes it), so a caller's own goes too.
		removeHeaders(req, "P-Asserted-Identity", "P-Preferred-Identity")
	}
	if req.Method == sip.REGISTER && !trusted {
		// The guard is the edge: a Path from outside would make the PBX
		// route calls wherever the caller said (RFC 3327 §5.1 lets a
		// proxy decide what it adds; nothing before the guard is trusted).
		for _, h := range req.GetHeaders("Path") {
			req.RemoveHeader(h.Name())
		}
	}
	branch := s.branchFor(req, src, in.idx)
	// callID is the whole Call-ID, which stamps sign; key (callKey) is
	// the call's id in the guard's tables and in every event, so they
	// never disagree, and two Call-IDs are never one key.
	callID := string(*req.CallID())
	key := callKey(callID)
	if fromUp && !req.IsAck() {
		// Only answers to what the upstream sent may come back from
		// elsewhere: see onResponse.
		s.txs.put(branch, &txState{method: req.Method}, now)
	}

	switch {
	case req.IsAck():
		s.onAck(in, req, src, branch, callID, trusted, fromUp, now, start)
		return
	case req.IsCancel():
		s.onCancel(in, req, src, branch, callID, trusted, fromUp, now, at, start)
		return
	case hasToTag(req):
		rt := s.popRoutes(req, callID, src)
		flag := rt.flag
		if !trusted && flag == 0 {
			s.metrics.request(req.Method, verdictFollowUp)
			s.fail(in, req, ErrUnknownDialog)
			return
		}
		label := verdictFollowUp
		if trusted {
			label = verdictBypass
		}
		s.metrics.request(req.Method, label)
		if req.Method == sip.BYE && (trusted || flag != 0) {
			if fromUp {
				// The PBX hung up: the call is over whatever the phone
				// answers (RFC 3261 §15.1.1), and a phone that never
				// answers must not keep it counted. Told before the BYE
				// goes on, so whoever sees it may count on the engine
				// knowing.
				s.endCall(ctx, key, byeTags(req), true, now, at, flag == stampScreened)
			} else {
				// A hang-up from the caller's side ends the call when the
				// PBX accepts it (its 2xx, see responseEvents): a BYE the
				// guard cannot forward, or one the PBX refuses (wrong
				// tags, a spoofed source), ends nothing. Remembered
				// before it goes, so the 2xx cannot overtake it; a
				// retransmission keeps the first.
				s.byes.add(branch, byeState{callID: key, at: at, stamped: flag == stampScreened, tags: byeTags(req)}, now)
			}
		}
		if err := s.forward(in, req, branch, fromUp, 0, callID, src, rt); err != nil {
			s.fail(in, req, err)
			return
		}
		s.metrics.forwarded(start)
		return
	}

	// An initial request.
	rt := s.popRoutes(req, callID, src)
	if trusted && req.IsInvite() && s.fromCarrier(src) {
		s.onCarrierInvite(ctx, in, req, src, branch, callID, key, rt, now, at, start)
		return
	}
	if trusted {
		s.metrics.request(req.Method, verdictBypass)
		if err := s.forward(in, req, branch, fromUp, stampPlain, callID, src, rt); err != nil {
			s.fail(in, req, err)
			return
		}
		s.metrics.forwarded(start)
		return
	}
	if tx, ok := s.txs.get(branch, now); ok && tx.method == req.Method {
		// A retransmission: same answer, no second decision.
		s.metrics.request(req.Method, verdictRetrans)
		switch {
		case tx.silent:
			s.metrics.drop(dropSilent)
		case tx.local != nil:
			s.send(in, tx.local)
		default:
			s.setDecisionHeader(req, tx.decision)
			if err := s.forward(in, req, branch, false, stampFor(req), callID, src, route{}); err != nil {
				s.fail(in, req, err)
			}
		}
		return
	}

	if req.IsInvite() && s.liveElsewhere(key, branch, now) {
		// A new INVITE with the Call-ID of a call up (RFC 3261 §8.2.2.2:
		// a merged request) is refused, never forwarded: the engine would
		// take it for a retransmission of the call up and count nothing,
		// and its BYE would end that call in the engine's accounting.
		s.metrics.request(req.Method, verdictLabel(event.Deny))
		res := sip.NewResponseFromRequest(req, 482, "Loop Detected", nil)
		s.txs.put(branch, &txState{method: req.Method, local: res}, now)
		s.send(in, res)
		return
	}
	kind := event.SIPRequest
	if req.IsInvite() {
		kind = event.CallAttempt
	}
	ev := requestEvent(req, kind, src.Addr(), s.cfg.Tenant, s.cfg.AccountFrom, at)
	d := s.eng.Decide(ctx, ev)
	s.metrics.request(req.Method, verdictLabel(d.Verdict))
	s.applyBan(&d, src.Addr(), now)
	tx := &txState{method: req.Method, ev: ev, hadAuth: hasCredentials(req)}
	if d.Verdict.Blocks() {
		code, phrase, rule := decisionReply(&d)
		// In simulation mode every INVITE is answered, so the simulator
		// learns each decision.
		if d.Silent && !s.cfg.Simulation {
			tx.silent = true
			s.txs.put(branch, tx, now)
			s.metrics.drop(dropSilent)
			s.log.Debug("sip request dropped", "method", string(req.Method), "source", src.Addr().String(),
				"to", audit.MaskNumber(ev.To), "verdict", string(d.Verdict), "rule", rule)
			return
		}
		res := sip.NewResponseFromRequest(req, code, phrase, nil)
		res.AppendHeader(sip.NewHeader("Reason", fmt.Sprintf(`SIP;cause=%d;text="%s"`, code, rule)))
		if s.cfg.Simulation && req.IsInvite() {
			res.AppendHeader(decisionHeader(&d))
		}
		tx.local = res
		s.txs.put(branch, tx, now)
		s.send(in, res)
		s.log.Debug("sip request rejected", "method", string(req.Method), "source", src.Addr().String(),
			"to", audit.MaskNumber(ev.To), "verdict", string(d.Verdict), "code", code, "rule", rule)
		return
	}
	tx.screened = true
	if s.cfg.Simulation && req.IsInvite() {
		tx.decision = decisionHeader(&d)
		s.setDecisionHeader(req, tx.decision)
	}
	if req.IsInvite() {
		tx.opened = s.openCall(key, branch, fromTag(req), false, now)
	}
	s.txs.put(branch, tx, now)
	if err := s.forward(in, req, branch, false, stampFor(req), callID, src, route{}); err != nil {
		if req.IsInvite() {
			s.inviteNotForwarded(ctx, in, req, branch, tx, err, now, at)
			return
		}
		s.fail(in, req, err)
		return
	}
	s.metrics.forwarded(start)
}

// inviteNotForwarded answers an allowed INVITE the guard could not
// forward (483, 502, 503: the PBX never saw it) and ends its call, told
// before the answer goes: the engine must not keep counting a call that
// never rang. The transaction keeps that answer, so a retransmission gets
// it again rather than a second try that would bring up a call the
// engine has seen end.
func (s *Server) inviteNotForwarded(ctx context.Context, in *listener, req *sip.Request, branch string, tx *txState, err error, now, at time.Time) {
	s.failCall(ctx, tx, branch, now, at)
	r := replyFor(err)
	if r.code == 0 {
		s.txs.put(branch, &txState{method: req.Method, ev: tx.ev, silent: true}, now)
		s.metrics.drop(r.dropReason())
		return
	}
	s.log.Debug("sip invite not forwarded", "source", req.Source(), "err", err)
	res := sip.NewResponseFromRequest(req, r.code, r.reason, nil)
	s.txs.put(branch, &txState{method: req.Method, ev: tx.ev, local: res}, now)
	s.send(in, res)
}

// onAck forwards an ACK, or absorbs it when it acknowledges the guard's
// own rejection. An ACK is never answered.
func (s *Server) onAck(in *listener, req *sip.Request, src netip.AddrPort, branch, callID string, trusted, fromUp bool, now time.Time, start time.Time) {
	s.metrics.request(req.Method, verdictFollowUp)
	tx, known := s.txs.get(branch, now)
	if known && (tx.local != nil || tx.silent) {
		s.metrics.drop(dropAbsorbed)
		return
	}
	rt := s.popRoutes(req, callID, src)
	flag := rt.flag
	// The ACK of a forwarded INVITE's failure shares its branch; the ACK of
	// a 2xx is in-dialog and carries the stamp.
	if !trusted && !known && flag == 0 {
		s.metrics.drop(dropMalformed)
		return
	}
	if err := s.forward(in, req, branch, fromUp, 0, callID, src, rt); err != nil {
		s.metrics.drop(replyFor(err).dropReason())
		return
	}
	s.metrics.forwarded(start)
}

// onCancel forwards a CANCEL along its INVITE's path (the branch is the
// same), or answers it when the guard answered the INVITE itself.
func (s *Server) onCancel(in *listener, req *sip.Request, src netip.AddrPort, branch, callID string, trusted, fromUp bool, now, at time.Time, start time.Time) {
	s.metrics.request(req.Method, verdictFollowUp)
	tx, known := s.txs.get(branch, now)
	switch {
	case known && tx.silent:
		s.metrics.drop(dropSilent)
		return
	case known && tx.local != nil:
		s.send(in, sip.NewResponseFromRequest(req, 200, "OK", nil))
		return
	case !known && !trusted:
		s.fail(in, req, ErrUnknownDialog)
		return
	}
	// The CANCEL ends nothing by itself: the PBX may have answered
	// already (a CANCEL crossing the 200 leaves the call up), and one the
	// guard cannot forward never reaches it. The INVITE's 487 ends the
	// call (responseEvents), at the CANCEL's event time, set here before
	// the CANCEL goes so the 487 cannot overtake it.
	cancelled := known && tx.screened && s.markCancel(branch, now, at)
	rt := s.popRoutes(req, callID, src)
	if err := s.forward(in, req, branch, fromUp, 0, callID, src, rt); err != nil {
		if cancelled {
			s.markCancel(branch, now, time.Time{})
		}
		s.fail(in, req, err)
		return
	}
	s.metrics.forwarded(start)
}

// markCancel sets (at zero: clears) the event time of the CANCEL of the
// INVITE transaction branch, unless a CANCEL already set it. It reports
// whether it changed anything.
func (s *Server) markCancel(branch string, now, at time.Time) bool {
	changed := false
	s.txs.update(branch, now, func(t **txState) {
		if (*t).method == sip.INVITE && (at.IsZero() || (*t).cancelAt.IsZero()) {
			(*t).cancelAt, changed = at, true
		}
	})
	return changed
}

// onResponse relays a response one hop back, by its Via.
func (s *Server) onResponse(ctx context.Context, l *listener, res *sip.Response, src netip.AddrPort, start time.Time) {
	via := res.Via()
	if via == nil || res.CSeq() == nil || res.CallID() == nil {
		s.metrics.drop(dropMalformed)
		return
	}
	branch, _ := via.Params.Get("branch")
	idx, ok := s.ourBranch(branch)
	if !ok || !strings.EqualFold(via.Host, l.host) || via.Port != l.port {
		s.metrics.drop(dropStray)
		return
	}
	if !s.fromUpstream(l, src) {
		// A caller answers only requests the upstream sent through the
		// guard. Anything else is a forged response that would make the
		// guard reflect it to whatever its next Via names.
		if _, known := s.txs.get(branch, s.cfg.Clock()); !known {
			s.metrics.drop(dropStray)
			return
		}
	}
	if !s.fromUpstream(l, src) && !s.trusted(src.Addr()) && !s.cfg.KeepNATContact && s.fixNATContact(res, src, l.network) {
		s.metrics.natContact.Inc()
	}
	res.RemoveHeader("Via")
	next := res.Via()
	if next == nil {
		s.metrics.drop(dropMalformed)
		return
	}
	s.responseEvents(ctx, res, branch, s.fromUpstream(l, src))
	if !s.relayInOrder(branch, res, s.listener(idx)) {
		return
	}
	s.metrics.forwarded(start)
}

// relayInOrder sends a response on unless a final response of its
// transaction has already gone: the UDP readers work in parallel, so a 180
// read just before its 200 could otherwise overtake it, and a provisional
// response after the final one upsets strict user agents (a stateful proxy
// would absorb it, RFC 3261 §17.1.1.2). The check and the send happen
// under one of a few striped locks, so the order is exact.
func (s *Server) relayInOrder(branch string, res *sip.Response, out *listener) bool {
	h := fnv.New32a()
	h.Write([]byte(branch))
	mu := &s.order[h.Sum32()%uint32(len(s.order))]
	mu.Lock()
	defer mu.Unlock()
	method, final, late := res.CSeq().MethodName, res.StatusCode >= 200, false
	s.txs.update(branch, s.cfg.Clock(), func(t **txState) {
		if (*t).method != method {
			return
		}
		late = !final && (*t).relayed
		(*t).relayed = (*t).relayed || final
	})
	if late {
		s.metrics.drop(dropLateProvisional)
		return false
	}
	return s.send(out, res) == nil
}

// responseEvents turns an upstream answer into the events it means.
// fromUp says the upstream sent it: only the PBX accepts a caller's BYE.
func (s *Server) responseEvents(ctx context.Context, res *sip.Response, branch string, fromUp bool) {
	if res.StatusCode < 200 {
		return
	}
	now := s.cfg.Clock()
	method := res.CSeq().MethodName
	if method == sip.BYE {
		if b, ok := s.byes.get(branch, now); ok && fromUp && res.StatusCode < 300 {
			// The PBX took the caller's hang-up: the call ended at the
			// BYE's time, told before this 2xx is relayed.
			s.endCall(ctx, b.callID, b.tags, false, now, b.at, b.stamped)
		}
		return
	}
	var tx txState
	var found, first bool
	s.txs.update(branch, now, func(t **txState) {
		if (*t).method != method {
			return // the response to a CANCEL sharing the INVITE's branch
		}
		found = true
		first = !(*t).final
		(*t).final = true
		tx = **t
	})
	if !found && method == sip.INVITE && res.CallID() != nil {
		// The transaction left its table (a call ringing past its life,
		// or a full table), but the call it opened knows its branch: its
		// answer or failure is still the engine's to hear of.
		key := callKey(string(*res.CallID()))
		known := s.calls.update(key, now, func(c *callState) { found = c.branch == branch })
		if known && found {
			tx = txState{method: method, ev: event.Event{CallID: key}, screened: true, opened: true}
			first = true
		}
	}
	if !found || !tx.screened {
		return
	}
	at := s.responseTime(res, now)
	code := res.StatusCode
	// 401/407 to a request without credentials is the normal digest
	// challenge; the engine knows that from SIPInfo.Credentials. 404 to a
	// REGISTER or INVITE names a user that does not exist: enumeration.
	authFailed := code == 401 || code == 407 || code == 403 || code == 404
	switch method {
	case sip.INVITE:
		switch {
		case code < 300:
			toTag, _ := res.To().Params.Get("tag")
			s.answered(ctx, &tx, branch, toTag, first, now, at)
		case first:
			if !tx.cancelAt.IsZero() {
				at = tx.cancelAt // the caller hung up then
			}
			s.failCall(ctx, &tx, branch, now, at)
			if authFailed && tx.ev.Kind != "" && !tx.ev.Direction.IsInbound() { // not for a transaction forgotten
				s.authEvent(ctx, &tx, event.SIPAuthFailure, code, now, at)
			}
		}
	case sip.REGISTER:
		switch {
		case !first:
		case authFailed:
			s.authEvent(ctx, &tx, event.SIPAuthFailure, code, now, at)
		case code < 300 && tx.hadAuth:
			s.authEvent(ctx, &tx, event.SIPAuthSuccess, code, now, at)
		}
	}
}

// authEvent reports how the upstream answered a request that needed
// credentials. A blocking answer needs nothing more here: the engine keeps
// the ban, and the source's next request is decided against it.
func (s *Server) authEvent(ctx context.Context, tx *txState, kind event.Kind, code int, now, at time.Time) {
	ev := tx.ev
	ev.Kind = kind
	ev.Time = at
	info := *tx.ev.SIP
	info.Status = code
	info.Credentials = tx.hadAuth
	ev.SIP = &info
	d := s.eng.Decide(ctx, ev)
	s.applyBan(&d, ev.SourceIP, now)
	if d.Verdict.Blocks() {
		s.log.Info("sip auth event blocked", "kind", string(kind), "source", ev.SourceIP.String(),
			"verdict", string(d.Verdict), "ban_seconds", d.BanSeconds)
	}
}

// applyBan hands a ban the engine decided to the packet filter, so the
// source's next packets are dropped before parsing. The engine keeps the
// ban too: without a filter its decisions still refuse the source.
//
// Not in simulation mode: there the engine's bans run on event time, which
// the wall-clock filter knows nothing of, and the simulator needs the
// engine's answer to a banned source's every INVITE.
func (s *Server) applyBan(d *event.Decision, src netip.Addr, now time.Time) {
	f := s.cfg.Filter
	if f == nil || s.cfg.Simulation || d.Verdict != event.Ban || d.BanSeconds <= 0 || !src.IsValid() {
		return
	}
	_, _, rule := decisionReply(d)
	f.Ban(netip.PrefixFrom(src, src.BitLen()), now.Add(time.Duration(d.BanSeconds)*time.Second), rule)
}

// openCall records the call an allowed INVITE (transaction branch)
// opens, a carrier's (inbound) or a caller's, unless a live call has its
// Call-ID: that one stays, and only its own INVITE's answer and failure
// count (see callState.branch). It reports whether the call is branch's.
func (s *Server) openCall(callID, branch, callerTag string, inbound bool, now time.Time) bool {
	if s.calls.add(callID, callState{branch: branch, callerTag: callerTag}, inbound, now) {
		s.ended.remove(callID)
		return true
	}
	mine := false
	s.calls.update(callID, now, func(c *callState) { mine = c.branch == branch })
	return mine
}

// liveElsewhere reports whether a call is up under callID, opened by
// another INVITE than the one of branch.
func (s *Server) liveElsewhere(callID, branch string, now time.Time) bool {
	other := false
	known := s.calls.update(callID, now, func(c *callState) { other = c.branch != branch })
	return known && other
}

// answered reports the first 2xx to the INVITE tx (transaction branch)
// that opened a call the engine allowed, at event time at; now runs the
// guard's table. finalFirst says it is the transaction's first final
// response. A call the full table has forgotten is still reported: the
// engine holds it, and ignores a second answer.
func (s *Server) answered(ctx context.Context, tx *txState, branch, toTag string, finalFirst bool, now, at time.Time) {
	first, known := false, false
	s.calls.update(tx.ev.CallID, now, func(c *callState) {
		known = true
		if c.branch != branch {
			return // another INVITE's call
		}
		first = !c.answered
		if first {
			c.pbxTag = toTag // the dialog; a forked 2xx's is another
		}
		c.answered = true
	})
	if !known {
		first = tx.opened && finalFirst
	}
	if first {
		s.observe(ctx, event.CallAnswered, tx.ev.CallID, at)
	}
}

// failCall reports the end of a call whose INVITE tx (transaction branch)
// failed, even when the full table has forgotten the call. A failure of
// another INVITE reusing the Call-ID ends nothing.
func (s *Server) failCall(ctx context.Context, tx *txState, branch string, now, at time.Time) {
	id := tx.ev.CallID
	removed, present := s.calls.removeIf(id, now, func(c callState) bool { return c.branch != branch })
	switch {
	case removed:
		s.ended.put(id, struct{}{}, now)
	case present || !tx.opened || !s.ended.add(id, struct{}{}, now):
		return
	}
	s.observe(ctx, event.CallEnded, id, at)
}

// endCall reports a call's end once. stamped says the Record-Route stamp
// vouches the call was screened, for calls this process does not know (it
// restarted, or the table was full). at is the event time of the end; now
// runs the guard's tables.
// A BYE whose tags are not the call's dialog (tags; fromPBX says which
// side sent it) ends nothing.
func (s *Server) endCall(ctx context.Context, callID string, tags dialogTags, fromPBX bool, now, at time.Time, stamped bool) {
	removed, present := s.calls.removeIf(callID, now, func(c callState) bool { return !c.ends(tags, fromPBX) })
	switch {
	case removed:
		s.ended.put(callID, struct{}{}, now)
	case present || !stamped || !s.ended.add(callID, struct{}{}, now):
		return
	}
	s.observe(ctx, event.CallEnded, callID, at)
}

// fromTag is a request's From tag.
func fromTag(req *sip.Request) string {
	if h := req.From(); h != nil {
		t, _ := h.Params.Get("tag")
		return t
	}
	return ""
}

// byeTags are a BYE's From and To tags.
func byeTags(req *sip.Request) dialogTags {
	t := dialogTags{from: fromTag(req)}
	if h := req.To(); h != nil {
		t.to, _ = h.Params.Get("tag")
	}
	return t
}

func (s *Server) observe(ctx context.Context, kind event.Kind, callID string, at time.Time) {
	ev := event.Event{Kind: kind, Time: at, Tenant: s.cfg.Tenant, CallID: callID, Sensor: "sip"}
	if err := s.eng.Observe(ctx, ev); err != nil {
		s.log.Debug("sip edge observe", "kind", string(kind), "err", err)
	}
}

// forward sends req one hop on. Callers' requests always go to the
// upstream; only the upstream's follow their Route or Request-URI, or the
// flow a TCP or TLS caller's Record-Route named. rr, when not 0, adds a stamped
// Record-Route so that in-dialog requests come back through the guard; two
// of them when the request changes listener (RFC 5658).
func (s *Server) forward(in *listener, req *sip.Request, branch string, followRoute bool, rr byte, callID string, src netip.AddrPort, rt route) error {
	if mf := req.MaxForwards(); mf == nil {
		v := sip.MaxForwardsHeader(70)
		req.AppendHeader(&v)
	} else if mf.Val() == 0 {
		// Checked before Dec: sipgo's Dec wraps 0 round to 2^32-1.
		return ErrTooManyHops
	} else {
		mf.Dec()
	}
	dst, out := s.upstream, s.up
	if followRoute {
		if rt.flowL != nil {
			dst, out = rt.flow, rt.flowL
		} else {
			var err error
			if dst, err = nextHop(req); err != nil {
				return err
			}
			if s.isListener(dst) {
				return ErrLoop
			}
			if out = s.udpFor(dst.Addr(), rt.last); out == nil {
				return fmt.Errorf("%w: no udp listener for %s", ErrUnroutable, dst.Addr())
			}
		}
	}
	if req.Method == sip.REGISTER && !followRoute {
		s.addPath(req, in, out, src)
	}
	if rr != 0 && req.Method != sip.REGISTER {
		// Two entries when the request changes listener (RFC 5658), or
		// stays on a TCP or TLS listener but changes connection: each
		// names its side's flow, and the guard follows the one nearer
		// the request's recipient (see popRoutes).
		if in != out || (in.stream() && src != dst) {
			req.PrependHeader(s.recordRoute(in, rr, callID, src))
		}
		req.PrependHeader(s.recordRoute(out, rr, callID, dst))
	}
	v := &sip.ViaHeader{ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: out.viaTransport(),
		Host: out.host, Port: out.port, Params: sip.HeaderParams{{K: "branch", V: branch}}}
	req.PrependHeader(v)
	if err := s.write(out, req, dst); err != nil {
		// The sender's answer is built from req: without the guard's Via
		// it goes back to the sender, not to the guard itself.
		req.RemoveHeader("Via")
		return err
	}
	return nil
}

// stampFor says which requests open a dialog that the guard records.
func stampFor(req *sip.Request) byte {
	switch req.Method {
	case sip.INVITE:
		return stampScreened
	case sip.SUBSCRIBE, sip.REFER:
		return stampPlain
	}
	return 0
}

// udpFor is the UDP listener to send to a of: prefer (the listener the
// request's Route named, when it is UDP and can), else the upstream's, else
// any of a's address family. A request from an IPv4 PBX to an IPv6 phone
// leaves from an IPv6 listener.
func (s *Server) udpFor(a netip.Addr, prefer *listener) *listener {
	if prefer != nil && !prefer.stream() && prefer.canReach(a) {
		return prefer
	}
	if !s.up.stream() && s.up.canReach(a) {
		return s.up
	}
	for _, l := range s.listeners {
		if !l.stream() && l.canReach(a) {
			return l
		}
	}
	return nil
}

// recordRoute is the guard's Record-Route on listener l. On TCP and TLS it
// names the connection (flow) of the peer on that side, so requests the
// upstream sends into the dialog find the connection: a caller over TCP or
// TLS cannot be dialled back at its Contact. The stamp signs the flag, the
// listener, the flow and the Call-ID together, so no part can be changed
// or moved to another dialog.
func (s *Server) recordRoute(l *listener, flag byte, callID string, peer netip.AddrPort) *sip.RecordRouteHeader {
	fl := ""
	if l.stream() {
		fl = peer.String()
	}
	params := sip.HeaderParams{{K: "transport", V: l.network}, {K: "lr", V: ""}, {K: "tg", V: s.stamp(flag, l.idx, fl, callID)}}
	if fl != "" {
		params = append(params, sip.HeaderKV{K: "fl", V: fl})
	}
	return &sip.RecordRouteHeader{Address: sip.Uri{Scheme: "sip", Host: l.host, Port: l.port, UriParams: params}}
}

// addPath adds the guard's Path (RFC 3327) to a REGISTER on its way to the
// upstream, so that requests the upstream later sends to the registered
// phone (its incoming calls) come through the guard. The entry on the
// phone's side names the flow the REGISTER came in on, signed: the guard
// sends those requests to where the phone really is (its source, through
// any NAT), whatever its Contact says. Two entries when the REGISTER
// changes listener, as with Record-Route.
//
// Each entry is signed with its listener and flow and an expiry ("ex",
// Unix seconds): the registration's own expiry plus pathMargin, so a Path
// leaked from an old registration stops routing into the flow soon after
// the registration ends.
func (s *Server) addPath(req *sip.Request, in, out *listener, src netip.AddrPort) {
	ex := strconv.FormatInt(s.cfg.Clock().Add(registrationExpiry(req)+pathMargin).Unix(), 10)
	entry := func(l *listener, fl string) string {
		params := sip.HeaderParams{{K: "transport", V: l.network}, {K: "lr", V: ""}, {K: "tg", V: s.stamp(stampPath, l.idx, fl, ex)}}
		if fl != "" {
			params = append(params, sip.HeaderKV{K: "fl", V: fl})
		}
		params = append(params, sip.HeaderKV{K: "ex", V: ex})
		u := sip.Uri{Scheme: "sip", Host: l.host, Port: l.port, UriParams: params}
		return "<" + u.String() + ">"
	}
	v := entry(in, src.String())
	if in != out {
		// One header, so a registrar that keeps only the first Path
		// header still keeps both entries.
		v = entry(out, "") + ", " + v
	}
	req.PrependHeader(sip.NewHeader("Path", v))
	addSupported(req, "path")
}

// pathMargin is how long a Path stays good after its registration's
// expiry: the registrar may keep a binding a little longer, and clocks
// differ.
const pathMargin = 15 * time.Minute

// maxRegistrationExpiry caps the expiry a REGISTER asks for, as far as the
// Path's lifetime goes (a registrar grants at most this much in practice).
const maxRegistrationExpiry = 24 * time.Hour

// registrationExpiry is how long a REGISTER asks its bindings to last: the
// longest Contact expires parameter, else its Expires header, else an hour
// (RFC 3261 §10.2.1.1's default), capped at maxRegistrationExpiry.
func registrationExpiry(req *sip.Request) time.Duration {
	secs := -1
	for _, h := range req.GetHeaders("Contact") {
		if c, ok := h.(*sip.ContactHeader); ok {
			if v, ok := c.Params.Get("expires"); ok {
				if n, err := strconv.Atoi(v); err == nil && n > secs {
					secs = n
				}
			}
		}
	}
	if secs < 0 {
		if h := req.GetHeader("Expires"); h != nil {
			if n, err := strconv.Atoi(strings.TrimSpace(h.Value())); err == nil && n >= 0 {
				secs = n
			}
		}
	}
	if secs < 0 {
		secs = 3600
	}
	return min(time.Duration(secs)*time.Second, maxRegistrationExpiry)
}

// addSupported adds option to req's Supported header: a registrar with
// Path support on (Asterisk's support_path) answers 420 to a REGISTER
// that carries Path without "Supported: path" (RFC 3327 §5.1 asks the
// proxy to add it). The request's Supported headers, long or compact
// ("k"), become one holding all their options and the new one.
func addSupported(req *sip.Request, option string) {
	var opts []string
	var names []string
	for _, h := range req.Headers() {
		n := h.Name()
		if !strings.EqualFold(n, "Supported") && !strings.EqualFold(n, "k") {
			continue
		}
		names = append(names, n)
		for o := range strings.SplitSeq(h.Value(), ",") {
			o = strings.TrimSpace(o)
			if strings.EqualFold(o, option) {
				return
			}
			if o != "" {
				opts = append(opts, o)
			}
		}
	}
	for _, n := range names {
		req.RemoveHeader(n)
	}
	req.AppendHeader(sip.NewHeader("Supported", strings.Join(append(opts, option), ", ")))
}

// stamp signs one of the guard's Route entries: its flag, the index of
// the listener it names, the flow it names (fl, "" for none) and what it
// is bound to (the dialog's Call-ID for a Record-Route; "" for a Path,
// which outlives any one dialog). Each field is length-prefixed, so no
// two different entries sign the same bytes.
func (s *Server) stamp(flag byte, idx int, fl, bind string) string {
	m := hmac.New(sha256.New, s.stampKey)
	var b [8]byte
	b[0] = flag
	b[1], b[2] = byte(idx>>8), byte(idx)
	m.Write(b[:3])
	for _, f := range []string{fl, bind} {
		n := len(f)
		b[0], b[1], b[2], b[3] = byte(n>>24), byte(n>>16), byte(n>>8), byte(n)
		m.Write(b[:4])
		m.Write([]byte(f))
	}
	return string(flag) + hex.EncodeToString(m.Sum(nil)[:8])
}

// checkStamp returns the flag of a stamp valid for the listener, flow and
// binding given, or 0. The comparison is constant-time.
func (s *Server) checkStamp(stamp string, idx int, fl, bind string) byte {
	if len(stamp) != 17 {
		return 0
	}
	want := s.stamp(stamp[0], idx, fl, bind)
	if !hmac.Equal([]byte(stamp), []byte(want)) {
		return 0
	}
	return stamp[0]
}

// route is what the guard's own Route entries on a request said.
type route struct {
	flag  byte           // the stamp's flag, 0 when there is no valid stamp
	flowL *listener      // a TCP or TLS listener whose Route named a flow
	flow  netip.AddrPort // the peer's connection on it
	last  *listener      // the listener the last of the guard's Routes named
}

// popRoutes removes the guard's own Route entries from the top of req and
// returns what they said. Only a contiguous run at the top counts, and
// only entries the guard signed (or plain ones naming no flow and no
// stamp, which say nothing but "through the guard"): the first entry
// naming the guard with a flow or stamp that does not verify ends the run
// and stays, so a caller cannot plant one in its Record-Route (the PBX
// would echo it) to steer the PBX's requests into another peer's
// connection.
func (s *Server) popRoutes(req *sip.Request, callID string, src netip.AddrPort) route {
	var rt route
	for range 4 { // a double Record-Route leaves two; more is a loop
		r := req.Route()
		if r == nil {
			break
		}
		l := s.ours(&r.Address)
		if l == nil {
			break
		}
		tg, hasTag := r.Address.UriParams.Get("tg")
		fl, hasFlow := r.Address.UriParams.Get("fl")
		if hasTag || hasFlow {
			bind := callID
			if tg != "" && tg[0] == stampPath {
				// A Path: bound to its expiry, which must not have passed.
				bind, _ = r.Address.UriParams.Get("ex")
				if ex, err := strconv.ParseInt(bind, 10, 64); err != nil || s.cfg.Clock().Unix() > ex {
					s.log.Debug("sip path entry expired or without expiry", "source", src.String())
					break
				}
			}
			flag := s.checkStamp(tg, l.idx, fl, bind)
			if flag == 0 {
				s.log.Debug("sip route entry not the guard's own", "source", src.String())
				break
			}
			if flag != stampPath && rt.flag == 0 {
				rt.flag = flag
			}
		}
		// The flow followed is the last one named that is neither where
		// the request came from nor the upstream: the entry on the side
		// the request goes on to, whichever order the sender kept its
		// route set in (one entry names each side).
		if hasFlow {
			if ap, err := netip.ParseAddrPort(fl); err == nil {
				ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
				if ap != src && ap != s.upstream {
					rt.flowL, rt.flow = l, ap
				}
			}
		}
		rt.last = l
		req.RemoveHeader("Route")
	}
	return rt
}

// stripOurRecordRoutes removes the Record-Route entries of req that name
// one of the guard's listeners, keeping the others in order.
func (s *Server) stripOurRecordRoutes(req *sip.Request) {
	hs := req.GetHeaders("Record-Route")
	var keep []sip.Header
	found := false
	for _, h := range hs {
		if rr, ok := h.(*sip.RecordRouteHeader); ok && s.ours(&rr.Address) != nil {
			found = true
			continue
		}
		keep = append(keep, h)
	}
	if !found {
		return
	}
	for range hs {
		req.RemoveHeader("Record-Route")
	}
	for _, h := range keep {
		req.AppendHeader(h)
	}
}

// ours returns the listener a URI names, or nil. A URI without a
// transport parameter means UDP.
func (s *Server) ours(u *sip.Uri) *listener {
	port := u.Port
	if port == 0 {
		port = sip.DefaultUdpPort
	}
	network := strings.ToLower(u.UriParams.GetOr("transport", "udp"))
	host := strings.Trim(u.Host, "[]")
	var match *listener
	for _, l := range s.listeners {
		if port == l.port && strings.EqualFold(host, l.host) {
			if l.network == network {
				return l
			}
			match = l
		}
	}
	return match
}

func (s *Server) isListener(a netip.AddrPort) bool {
	for _, l := range s.listeners {
		if a == l.addr || (a.Port() == l.addr.Port() && l.addr.Addr().IsUnspecified()) {
			return true
		}
	}
	return false
}

// isOurBranch reports a request whose top Via the guard itself added.
func (s *Server) isOurBranch(via *sip.ViaHeader) bool {
	b, _ := via.Params.Get("branch")
	if _, ok := s.ourBranch(b); !ok {
		return false
	}
	for _, l := range s.listeners {
		if via.Port == l.port && strings.EqualFold(via.Host, l.host) {
			return true
		}
	}
	return false
}

// ourBranch parses a branch the guard made and returns its listener index.
func (s *Server) ourBranch(b string) (int, bool) {
	rest, ok := strings.CutPrefix(b, branchPrefix)
	if !ok {
		return 0, false
	}
	n, _, ok := strings.Cut(rest, "-")
	if !ok {
		return 0, false
	}
	i, err := strconv.Atoi(n)
	if err != nil || i < 0 || i >= len(s.listeners) {
		return 0, false
	}
	return i, true
}

func (s *Server) listener(i int) *listener { return s.listeners[i] }

// branchFor derives the guard's branch from the request's own transaction
// key (RFC 3261 §16.11): a retransmission, the CANCEL and the ACK of a
// failure get the same branch as their INVITE, so the upstream matches
// them, and no state is needed to do so.
func (s *Server) branchFor(req *sip.Request, src netip.AddrPort, in int) string {
	via := req.Via()
	h := sha256.New()
	h.Write(s.stampKey)
	h.Write([]byte(src.String()))
	h.Write([]byte{0})
	h.Write([]byte(via.SentBy()))
	h.Write([]byte{0})
	b, _ := via.Params.Get("branch")
	if strings.HasPrefix(b, sip.RFC3261BranchMagicCookie) {
		h.Write([]byte(b))
	} else {
		// RFC 2543 peers: the transaction is Call-ID, CSeq number, From
		// tag and Request-URI.
		h.Write([]byte(*req.CallID()))
		h.Write([]byte{0})
		h.Write([]byte(strconv.FormatUint(uint64(req.CSeq().SeqNo), 10)))
		h.Write([]byte{0})
		tag, _ := req.From().Params.Get("tag")
		h.Write([]byte(tag))
		h.Write([]byte{0})
		h.Write([]byte(req.Recipient.String()))
	}
	return branchPrefix + strconv.Itoa(in) + "-" + hex.EncodeToString(h.Sum(nil)[:10])
}

// send writes a response to the address its top Via names.
func (s *Server) send(l *listener, res *sip.Response) error {
	dst, err := viaDest(res.Via())
	if err != nil {
		s.metrics.drop(replyFor(err).dropReason())
		return err
	}
	return s.write(l, res, dst)
}

// fail answers a request that could not be forwarded, as errors.go says.
func (s *Server) fail(l *listener, req *sip.Request, err error) {
	r := replyFor(err)
	if r.code == 0 || req.IsAck() {
		s.metrics.drop(r.dropReason())
		return
	}
	s.log.Debug("sip request failed", "method", string(req.Method), "source", req.Source(), "err", err)
	s.send(l, sip.NewResponseFromRequest(req, r.code, r.reason, nil))
}

// write sends msg to dst from listener l. Over TCP and TLS it uses the
// connection dst opened to the guard: the guard dials no caller. It dials
// only a TCP or TLS upstream, when it has no connection to it.
func (s *Server) write(l *listener, msg sip.Message, dst netip.AddrPort) error {
	if l.stream() {
		conn, err := l.tp.GetConnection(l.network, dst.String())
		if err != nil && l == s.up && dst == s.upstream {
			if req, ok := msg.(*sip.Request); ok {
				if conn, err = s.upstreamConn(l, req); errors.Is(err, ErrUpstreamConnecting) {
					s.metrics.drop(dropSend)
					return err
				}
			}
		}
		if err != nil {
			s.metrics.drop(dropSend)
			return fmt.Errorf("%w: no %s connection from %s", ErrUnroutable, l.network, dst)
		}
		if err := conn.WriteMsg(msg); err != nil {
			s.metrics.drop(dropSend)
			s.log.Debug("sip edge send", "to", dst.String(), "err", err)
			return fmt.Errorf("%w: %w", ErrSend, err)
		}
		return nil
	}
	buf := bufPool.Get().(*bytes.Buffer)
	defer bufPool.Put(buf)
	buf.Reset()
	msg.StringWrite(buf)
	if _, err := l.conn.WriteToUDPAddrPort(buf.Bytes(), dst); err != nil {
		s.metrics.drop(dropSend)
		s.log.Debug("sip edge send", "to", dst.String(), "err", err)
		return fmt.Errorf("%w: %w", ErrSend, err)
	}
	return nil
}

// natPrefixes are the addresses a Contact names from behind a NAT: RFC
// 1918 private networks, RFC 6598 carrier-grade NAT space and IPv6
// unique local addresses (RFC 4193, behind NPTv6 or NAT66).
var natPrefixes = []netip.Prefix{
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.168.0.0/16"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("fc00::/7"),
}

// fixNATContact does what Kamailio's fix_nated_contact does: a Contact
// that names a private or CGNAT address other than where the message came
// from is a phone behind NAT, which nobody outside can reach there. Its
// host and port become the message's source, the NAT binding the phone
// keeps open, so the PBX's requests to it (in-dialog ones) find it.
// Parameters (transport, ob, …) stay. A Contact for another transport
// than the one the message came on (network) is left alone: the source
// port of a UDP datagram is no TCP listener. It reports whether it
// changed anything.
func (s *Server) fixNATContact(msg sip.Message, src netip.AddrPort, network string) bool {
	fixed := false
	for _, h := range msg.GetHeaders("Contact") {
		c, ok := h.(*sip.ContactHeader)
		if !ok || c.Address.Wildcard || (c.Address.Scheme != "sip" && c.Address.Scheme != "sips") {
			continue
		}
		transport := strings.ToLower(c.Address.UriParams.GetOr("transport", "udp"))
		if c.Address.Scheme == "sips" {
			transport = "tls"
		}
		if transport != network {
			continue
		}
		ip, err := netip.ParseAddr(strings.Trim(c.Address.Host, "[]"))
		if err != nil {
			continue // a name: not a NAT address
		}
		ip = ip.Unmap()
		port := c.Address.Port
		if port == 0 {
			port = sip.DefaultUdpPort
		}
		if netip.AddrPortFrom(ip, uint16(port)) == src || !private(ip) {
			continue
		}
		c.Address.Host = src.Addr().String()
		c.Address.Port = int(src.Port())
		fixed = true
	}
	return fixed
}

func private(a netip.Addr) bool {
	for _, p := range natPrefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// upstreamDialTimeout bounds a TCP connection attempt to the upstream;
// upstreamDialWait is how long the request that starts one waits for it.
// The wait blocks that request's worker (a UDP reader's worker, or a TCP
// connection's reader), so it is short: a PBX on the LAN answers in well
// under a millisecond, and one that does not is not waited for.
const (
	upstreamDialTimeout = 5 * time.Second
	upstreamDialWait    = 250 * time.Millisecond
)

// upstreamDial is a connection attempt to the upstream in progress.
type upstreamDial struct {
	done chan struct{}
	conn sip.Connection
	err  error
}

// upstreamConn returns a new connection to a TCP or TLS upstream, through
// one dialer: the request that finds no connection starts a dial in the
// background and waits up to upstreamDialWait for it; requests arriving
// while a dial is in progress fail at once with ErrUpstreamConnecting
// (503), so no worker waits out a PBX that does not answer.
func (s *Server) upstreamConn(l *listener, req *sip.Request) (sip.Connection, error) {
	s.dialMu.Lock()
	if d := s.dial; d != nil {
		s.dialMu.Unlock()
		select {
		case <-d.done:
			return d.conn, d.err
		default:
			return nil, ErrUpstreamConnecting
		}
	}
	d := &upstreamDial{done: make(chan struct{})}
	s.dial = d
	s.dialMu.Unlock()
	clone := req.Clone()
	go func() {
		d.conn, d.err = s.dialUpstream(l, clone)
		close(d.done)
		s.dialMu.Lock()
		s.dial = nil
		s.dialMu.Unlock()
	}()
	t := time.NewTimer(upstreamDialWait)
	defer t.Stop()
	select {
	case <-d.done:
		return d.conn, d.err
	case <-t.C:
		return nil, ErrUpstreamConnecting
	}
}

// dialUpstream opens a connection to a TCP or TLS upstream for req. sipgo's
// transport layer reads it like an accepted one, so the upstream's
// answers and requests on it reach onStreamMessage; the connection is
// kept until the upstream closes it.
func (s *Server) dialUpstream(l *listener, req *sip.Request) (sip.Connection, error) {
	req.SetTransport(strings.ToUpper(s.upNet))
	req.SetDestination(s.upstream.String())
	ctx, cancel := context.WithTimeout(context.Background(), upstreamDialTimeout)
	defer cancel()
	conn, err := l.tp.ClientRequestConnection(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("dial upstream: %w", err)
	}
	return conn, nil
}

// fromUpstream reports a message from the upstream: from its exact
// address (over UDP; over TCP or TLS, the connection the guard dialled to
// it), or, with a TLS upstream, on a connection the PBX opened to a tls
// listener presenting the PBX's certificate. Another connection from the
// PBX's IP address is a caller like any other: a phone or an attacker on
// the PBX's host (or behind the same NAT) is screened.
//
// Over plain TCP nothing proves who opened a connection, yet a PBX may
// open its own for requests into a dialog (Asterisk does). So an operator
// who lists the PBX's address alone (a /32 or /128) in the trusted peers
// says that address is the PBX's only: connections from it are the PBX.
func (s *Server) fromUpstream(in *listener, src netip.AddrPort) bool {
	if src == s.upstream {
		return true
	}
	if s.upNet == "udp" || !in.stream() || src.Addr() != s.upstream.Addr() {
		return false
	}
	if s.upNet == "tcp" {
		return in.network == "tcp" && s.upstreamHostTrusted
	}
	_, ok := s.pbxConns.Load(src)
	return ok && in.network == "tls"
}

// trusted reports a source that bypasses screening.
func (s *Server) trusted(a netip.Addr) bool {
	for _, p := range s.trusts {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// validate checks what every request must carry for the guard to handle
// it (RFC 3261 §8.1.1).
func validate(req *sip.Request) error {
	if req.Via() == nil || req.From() == nil || req.To() == nil || req.CallID() == nil || req.CSeq() == nil {
		return ErrMalformed
	}
	if req.CSeq().MethodName != req.Method {
		return ErrMalformed
	}
	return nil
}

func hasToTag(req *sip.Request) bool {
	_, ok := req.To().Params.Get("tag")
	return ok
}

// stampReceived records where the request really came from (RFC 3261
// §18.2.1, RFC 3581), so the response finds its way back through NAT. Over
// a connection the response must take that connection (§18.2.2), so rport
// is always filled in: received:rport then names it.
func stampReceived(via *sip.ViaHeader, src netip.AddrPort, conn bool) {
	ip := src.Addr().String()
	if via.Params.Has("rport") || conn {
		via.Params.Add("rport", strconv.Itoa(int(src.Port())))
		via.Params.Add("received", ip)
		return
	}
	if strings.Trim(via.Host, "[]") != ip {
		via.Params.Add("received", ip)
	}
}

// viaDest is where a response to via goes: received (else the sent-by
// host), rport (else the sent-by port, else 5060).
func viaDest(via *sip.ViaHeader) (netip.AddrPort, error) {
	if via == nil {
		return netip.AddrPort{}, ErrMalformed
	}
	host := via.Host
	if r, ok := via.Params.Get("received"); ok && r != "" {
		host = r
	}
	ip, err := netip.ParseAddr(strings.Trim(host, "[]"))
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("%w: via host %q", ErrUnroutable, bound(host))
	}
	port := via.Port
	if r, ok := via.Params.Get("rport"); ok && r != "" {
		if p, err := strconv.Atoi(r); err == nil && p > 0 && p < 65536 {
			port = p
		}
	}
	if port <= 0 || port > 65535 {
		port = sip.DefaultUdpPort
	}
	return netip.AddrPortFrom(ip.Unmap(), uint16(port)), nil
}

// nextHop is where a trusted request goes: its top Route, else its
// Request-URI. Names are resolved; the guard's own peers should use IPs.
func nextHop(req *sip.Request) (netip.AddrPort, error) {
	u := &req.Recipient
	if r := req.Route(); r != nil {
		u = &r.Address
	}
	port := u.Port
	if port == 0 {
		port = sip.DefaultUdpPort
	}
	host := strings.Trim(u.Host, "[]")
	if ip, err := netip.ParseAddr(host); err == nil {
		return netip.AddrPortFrom(ip.Unmap(), uint16(port)), nil
	}
	ua, err := net.ResolveUDPAddr("udp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("%w: %w", ErrUnroutable, err)
	}
	ap := ua.AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
}

func verdictLabel(v event.Verdict) string {
	if v.Valid() {
		return string(v)
	}
	return "invalid" // an engine bug; don't let it mint labels
}

func (r reply) dropReason() string {
	if r.drop != "" {
		return r.drop
	}
	return "error"
}
