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

// Valid reports whether k is a kind the engine understands.
func (k Kind) Valid() bool {
	switch k {
	case CallAttempt, CallAnswered, CallEnded:
		return true
	}
	return false
}

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
	// Sensor names the front-end that produced the event ("api", "cli", "sip").
	Sensor string `json:"sensor,omitempty"`
}
