package event

import (
	"net/netip"
	"time"
)

// CallRecord is one finished call as a CDR or the call history holds it:
// what CDR import stores, what replay and anomaly training read. Times are
// event times; a call never answered has a zero Answer and no Billsec.
type CallRecord struct {
	Tenant    string     `json:"tenant"`
	Account   string     `json:"account"`
	CallID    string     `json:"call_id"`
	From      string     `json:"from,omitempty"`
	To        string     `json:"to"` // as dialled
	Direction Direction  `json:"direction,omitempty"`
	SourceIP  netip.Addr `json:"source_ip,omitzero"`
	Start     time.Time  `json:"start"`
	Answer    time.Time  `json:"answer,omitzero"`
	End       time.Time  `json:"end"`
	// Billsec is the answered duration.
	Billsec time.Duration `json:"billsec,omitempty"`
	// Disposition is the call's outcome as the switch wrote it (ANSWERED,
	// NO ANSWER, BUSY, FAILED, or a SIP/Q.850 cause), for reports.
	Disposition string `json:"disposition,omitempty"`
	// Flagged is set on a call the engine let through although a rule
	// challenged it or would have blocked it: training learns baselines
	// only from unflagged calls, as the live engine does. Imported CDRs
	// have it unset.
	Flagged bool `json:"flagged,omitempty"`
}

// DispositionExpired is the disposition telguard records for a call whose
// end was never reported: it was ended, and billed, at max_call_duration.
const DispositionExpired = "EXPIRED"

// Answered reports whether the call was answered.
func (r CallRecord) Answered() bool { return !r.Answer.IsZero() }

// Events returns the call as the events a live sensor would have produced,
// in time order: the attempt, the answer when there was one, and the end.
// sensor names the source ("cdr").
func (r CallRecord) Events(sensor string) []Event {
	base := Event{
		Tenant: r.Tenant, Account: r.Account, CallID: r.CallID, From: r.From, To: r.To,
		Direction: r.Direction, SourceIP: r.SourceIP, Sensor: sensor,
	}
	out := make([]Event, 0, 3)
	ev := base
	ev.Kind, ev.Time = CallAttempt, r.Start
	out = append(out, ev)
	if r.Answered() {
		ev = base
		ev.Kind, ev.Time = CallAnswered, r.Answer
		out = append(out, ev)
	}
	ev = base
	ev.Kind, ev.Time, ev.Duration = CallEnded, r.End, r.Billsec
	out = append(out, ev)
	return out
}
