// Package event holds the leaf types every part of telguard speaks: the
// events sensors produce, the decisions the engine returns, and the durable
// state records the engine hands to the store. It imports only the standard
// library so that every other package can depend on it.
package event

import (
	"net/netip"
	"time"
)

// Kind names what happened.
type Kind string

// The call lifecycle. A call_attempt is decided; the others are observed.
const (
	CallAttempt  Kind = "call_attempt"
	CallAnswered Kind = "call_answered"
	CallEnded    Kind = "call_ended"
)

// What a SIP sensor sees besides calls. A sip_request is any initial
// request that is not an INVITE (an initial INVITE is a call_attempt, which
// gets the same source and scanner checks); it is decided, so scanners and
// banned sources are stopped there. sip_auth_failure and sip_auth_success
// report how the PBX answered a request that needed credentials; they are
// decided too, because enough failures ban the source.
const (
	SIPRequest     Kind = "sip_request"
	SIPAuthFailure Kind = "sip_auth_failure"
	SIPAuthSuccess Kind = "sip_auth_success"
)

// Valid reports whether k is a kind the engine understands.
func (k Kind) Valid() bool {
	switch k {
	case CallAttempt, CallAnswered, CallEnded, SIPRequest, SIPAuthFailure, SIPAuthSuccess:
		return true
	}
	return false
}

// Direction says which way a call goes, from the tenant's point of view.
type Direction string

// Directions. The zero value means outbound.
const (
	Outbound Direction = "outbound"
	Inbound  Direction = "inbound"
)

// IsInbound reports whether d is inbound; empty means outbound.
func (d Direction) IsInbound() bool { return d == Inbound }

// Event is one thing a sensor saw. Time is event time: the engine's windows
// run on it, so replaying the same events gives the same decisions.
type Event struct {
	Kind      Kind       `json:"kind"`
	Time      time.Time  `json:"time"`
	Tenant    string     `json:"tenant"`
	Account   string     `json:"account,omitempty"`
	CallID    string     `json:"call_id,omitempty"`
	From      string     `json:"from,omitempty"`
	To        string     `json:"to,omitempty"` // as dialled; the engine normalises it
	SourceIP  netip.Addr `json:"source_ip,omitzero"`
	UserAgent string     `json:"user_agent,omitempty"`
	// Duration is the billed (answered) duration of an ended call. Zero means
	// unknown: the engine then uses the time since the call was answered.
	Duration time.Duration `json:"duration,omitempty"`
	// Direction says who placed the call: outbound (the default, empty)
	// is a call the tenant's account makes and pays for; inbound is a call
	// to the tenant, such as a provider reporting a call received.
	Direction Direction `json:"direction,omitempty"`
	// Sensor names the front-end that produced the event ("api", "cli", "sip").
	Sensor string `json:"sensor,omitempty"`
	// SIP carries what a SIP sensor saw; nil for other sensors.
	SIP *SIPInfo `json:"sip,omitempty"`
}

// SIPInfo is the part of a SIP message the engine judges. Sensors copy
// header values as received (bounded in length); the engine never logs
// them unmasked.
type SIPInfo struct {
	Method     string `json:"method,omitempty"`
	User       string `json:"user,omitempty"` // the username tried: Authorization username, else the From user
	From       string `json:"from,omitempty"` // whole header values, for scanner fingerprints
	To         string `json:"to,omitempty"`
	Contact    string `json:"contact,omitempty"`
	SDPSession string `json:"sdp_session,omitempty"` // the SDP s= line, when there is a body
	Transport  string `json:"transport,omitempty"`   // udp, tcp, tls
	Status     int    `json:"status,omitempty"`      // the PBX's answer, for auth events
	// Credentials is true when the request carried Authorization or
	// Proxy-Authorization. A 401/407 to a request without them is the
	// normal first step of digest authentication, not a failure.
	Credentials bool `json:"credentials,omitempty"`
}
