package sipedge

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"net/netip"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/emiago/sipgo/sip"

	"github.com/telguard/telguard/internal/event"
)

// maxField bounds every string copied from a SIP message into an event: a
// header is the attacker's to fill, and events are kept and logged.
const maxField = 256

// bound cuts s to at most maxField bytes, drops invalid UTF-8 (a rune cut
// in two included) and turns control characters into spaces, so a value is
// safe to log and to store as JSON.
func bound(s string) string {
	if len(s) > maxField {
		s = s[:maxField]
	}
	clean := utf8.ValidString(s)
	for i := 0; clean && i < len(s); i++ {
		clean = s[i] >= 0x20 && s[i] != 0x7f
	}
	if clean {
		return s
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(s, ""))
}

// requestEvent converts a request into an event of the given kind. It is
// pure: the engine does the judging. Every string is bounded.
func requestEvent(req *sip.Request, kind event.Kind, src netip.Addr, tenant, accountFrom string, now time.Time) event.Event {
	from := fromUser(req)
	ev := event.Event{
		Kind:      kind,
		Time:      now,
		Tenant:    tenant,
		Account:   bound(account(req, accountFrom)),
		From:      bound(from),
		To:        bound(req.Recipient.User),
		SourceIP:  src,
		UserAgent: bound(headerValue(req, "User-Agent")),
		Sensor:    "sip",
		SIP: &event.SIPInfo{
			Method:     bound(string(req.Method)),
			User:       bound(authUser(req, from)),
			Contact:    bound(headerValue(req, "Contact")),
			SDPSession: bound(sdpSession(req.Body())),
			Transport:  strings.ToLower(bound(req.Transport())),
		},
	}
	if h := req.CallID(); h != nil {
		ev.CallID = callKey(string(*h))
	}
	if h := req.From(); h != nil {
		ev.SIP.From = bound(h.Value())
	}
	if h := req.To(); h != nil {
		ev.SIP.To = bound(h.Value())
	}
	return ev
}

func fromUser(req *sip.Request) string {
	if h := req.From(); h != nil {
		return h.Address.User
	}
	return ""
}

// account picks the account the call is billed to.
func account(req *sip.Request, from string) string {
	switch from {
	case AccountAuthUser:
		if u := credentialUser(req); u != "" {
			return u
		}
	case AccountPAI:
		if h := req.GetHeader("P-Asserted-Identity"); h != nil {
			var u sip.Uri
			var params sip.HeaderParams
			if _, err := sip.ParseAddressValue(h.Value(), &u, &params); err == nil && u.User != "" {
				return u.User
			}
		}
	}
	return fromUser(req)
}

// authUser is the username tried: the credentials' username, else the
// From user.
func authUser(req *sip.Request, from string) string {
	if u := credentialUser(req); u != "" {
		return u
	}
	return from
}

// credentialUser returns the username of the Authorization or
// Proxy-Authorization header, "" when there is none.
func credentialUser(req *sip.Request) string {
	for _, name := range []string{"Authorization", "Proxy-Authorization"} {
		h := req.GetHeader(name)
		if h == nil {
			continue
		}
		if u := digestParam(h.Value(), "username"); u != "" {
			return u
		}
	}
	return ""
}

func hasCredentials(req *sip.Request) bool {
	return req.GetHeader("Authorization") != nil || req.GetHeader("Proxy-Authorization") != nil
}

// digestParam finds name="value" (or name=value) in a Digest credentials
// header without a full parse: only the username is needed.
func digestParam(v, name string) string {
	for rest := v; rest != ""; {
		i := strings.Index(strings.ToLower(rest), name)
		if i < 0 {
			return ""
		}
		before := strings.TrimRight(rest[:i], " \t")
		rest = rest[i+len(name):]
		if before != "" && !strings.HasSuffix(before, ",") && !strings.HasSuffix(strings.ToLower(before), "digest") {
			continue // part of another parameter's name or value
		}
		t := strings.TrimLeft(rest, " \t")
		if !strings.HasPrefix(t, "=") {
			continue
		}
		t = strings.TrimLeft(t[1:], " \t")
		if strings.HasPrefix(t, `"`) {
			if j := strings.IndexByte(t[1:], '"'); j >= 0 {
				return t[1 : 1+j]
			}
			return t[1:]
		}
		if j := strings.IndexAny(t, ", \t"); j >= 0 {
			return t[:j]
		}
		return t
	}
	return ""
}

func headerValue(m *sip.Request, name string) string {
	if h := m.GetHeader(name); h != nil {
		return h.Value()
	}
	return ""
}

// callKey is a call's id in the guard's tables and in its events: the
// Call-ID itself when it is short and clean, else its first 200 bytes
// (made safe) and a hash of the whole. Cutting alone would make two calls
// that differ after the cut one call: the second would pass for a
// retransmission of the first, and its end would end the first.
func callKey(callID string) string {
	if b := bound(callID); b == callID {
		return callID
	}
	sum := sha256.Sum256([]byte(callID))
	head := callID[:min(len(callID), 200)]
	return bound(head) + "~" + hex.EncodeToString(sum[:12])
}

// assertedUser returns the user of the first identity in a
// P-Asserted-Identity value (RFC 3325): the number of a sip: or sips: URI,
// or of a tel: URI, without parameters; "" when it has none. The value is
// bounded before it is read, and the result like every event field.
func assertedUser(v string) string {
	if len(v) > 4*maxField {
		v = v[:4*maxField]
	}
	v = strings.TrimSpace(v)
	if strings.HasPrefix(v, `"`) { // a quoted display name may hold '<' and \"
		end := -1
		for i := 1; i < len(v); i++ {
			if v[i] == '\\' {
				i++ // a quoted pair: the next byte is taken as is
				continue
			}
			if v[i] == '"' {
				end = i
				break
			}
		}
		if end < 0 {
			return ""
		}
		v = v[end+1:]
	}
	if i := strings.IndexByte(v, '<'); i >= 0 {
		v = v[i+1:]
		j := strings.IndexByte(v, '>')
		if j < 0 {
			return ""
		}
		v = v[:j]
	} else if i := strings.IndexByte(v, ','); i >= 0 {
		v = v[:i]
	}
	v = strings.TrimSpace(v)
	scheme, rest, ok := strings.Cut(v, ":")
	if !ok {
		return ""
	}
	switch strings.ToLower(scheme) {
	case "sip", "sips":
		at := strings.IndexByte(rest, '@')
		if at < 0 {
			return ""
		}
		rest = rest[:at]
	case "tel":
	default:
		return ""
	}
	if i := strings.IndexAny(rest, ";?"); i >= 0 {
		rest = rest[:i]
	}
	return bound(rest)
}

// sdpSession returns the value of the SDP s= line, if the body has one.
func sdpSession(body []byte) string {
	for len(body) > 0 {
		line := body
		if i := bytes.IndexByte(body, '\n'); i >= 0 {
			line, body = body[:i], body[i+1:]
		} else {
			body = nil
		}
		line = bytes.TrimRight(line, "\r")
		if bytes.HasPrefix(line, []byte("s=")) {
			if len(line) > maxField+2 {
				line = line[:maxField+2]
			}
			return string(line[2:])
		}
	}
	return ""
}
