package sipedge

import (
	"errors"
	"strings"

	"github.com/telguard/telguard/internal/event"
)

// Errors a request can fail with on its way through the guard. replyFor
// maps each to the SIP answer the sender gets, or to a silent drop.
var (
	// ErrMalformed: the message lacks what SIP requires (Via, Call-ID,
	// CSeq, From, To) or has values the guard cannot use.
	ErrMalformed = errors.New("malformed sip message")
	// ErrTooManyHops: Max-Forwards reached zero.
	ErrTooManyHops = errors.New("max-forwards exhausted")
	// ErrUnknownDialog: an in-dialog request from a caller that did not
	// come through the guard (no valid Record-Route stamp), or a CANCEL
	// with no transaction to cancel.
	ErrUnknownDialog = errors.New("no such dialog or transaction")
	// ErrLoop: the request would be sent back to the guard itself.
	ErrLoop = errors.New("request loops back to the guard")
	// ErrUnroutable: the next hop is not an address the guard can send to.
	ErrUnroutable = errors.New("next hop cannot be resolved")
	// ErrSend: writing to the network failed.
	ErrSend = errors.New("send failed")
	// ErrUpstreamConnecting: the guard is still opening its TCP or TLS
	// connection to the upstream; the sender should try again shortly.
	ErrUpstreamConnecting = errors.New("connecting to the upstream")
	// ErrUnsupportedTransport: a listen or upstream address names a
	// transport the guard does not (yet) speak.
	ErrUnsupportedTransport = errors.New("unsupported transport")
	// ErrNoCertificate: a tls listener is configured without a
	// certificate and key.
	ErrNoCertificate = errors.New("a tls listener needs a certificate and key")
	// ErrBadEventTime: in simulation mode, a request's X-Telguard-Time is
	// not an RFC 3339 time. The sender gets 400.
	ErrBadEventTime = errors.New("malformed event time")
	// ErrSimulationNotLoopback: simulation mode with a listener or an
	// upstream that is not a loopback address.
	ErrSimulationNotLoopback = errors.New("simulation mode needs loopback addresses only")
)

// reply is how an error is answered: a SIP status, or none (silent drop)
// when code is 0. drop is the metrics reason when nothing is sent.
type reply struct {
	code   int
	drop   string
	reason string
}

// replyFor maps an error to its answer.
func replyFor(err error) reply {
	switch {
	case errors.Is(err, ErrTooManyHops):
		return reply{code: 483, reason: "Too Many Hops"}
	case errors.Is(err, ErrUnknownDialog):
		return reply{code: 481, reason: "Call/Transaction Does Not Exist"}
	case errors.Is(err, ErrLoop):
		return reply{code: 482, reason: "Loop Detected"}
	case errors.Is(err, ErrUnroutable):
		return reply{code: 502, reason: "Bad Gateway"}
	case errors.Is(err, ErrSend), errors.Is(err, ErrUpstreamConnecting):
		return reply{code: 503, reason: "Service Unavailable"}
	case errors.Is(err, ErrBadEventTime):
		return reply{code: 400, reason: "Bad Request", drop: dropBadEventTime}
	case errors.Is(err, ErrMalformed):
		return reply{drop: dropMalformed}
	}
	return reply{code: 500, reason: "Server Internal Error"}
}

// reasonPhrases are the phrases for the codes a decision may carry.
var reasonPhrases = map[int]string{
	403: "Forbidden", 404: "Not Found", 480: "Temporarily Unavailable", 486: "Busy Here",
	488: "Not Acceptable Here", 503: "Service Unavailable", 603: "Decline", 606: "Not Acceptable",
}

// decisionReply is how a blocking decision is answered: its SIP code (403
// when it has none or one that is not a final failure) and the rule to
// name in the Reason header.
func decisionReply(d *event.Decision) (code int, phrase, rule string) {
	code = d.SIPCode
	if code < 300 || code > 699 {
		code = 403
	}
	phrase = reasonPhrases[code]
	if phrase == "" {
		phrase = "Forbidden"
	}
	for _, r := range d.Reasons {
		if r.Mode == event.Enforce && r.Verdict == d.Verdict {
			rule = r.Rule
			break
		}
	}
	if rule == "" && len(d.Reasons) > 0 {
		rule = d.Reasons[0].Rule
	}
	return code, phrase, quoteSafe(rule)
}

// quoteSafe keeps what may sit inside a quoted Reason text.
func quoteSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '"' || r == '\\' || r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, bound(s))
}
