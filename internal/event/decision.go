package event

import "time"

// Verdict is what should happen to the request. Verdicts are ordered by
// severity; a decision takes the most severe enforced verdict of its rules.
type Verdict string

// The verdicts, least severe first.
const (
	Allow     Verdict = "allow"
	Challenge Verdict = "challenge" // ask for more proof (PIN, re-auth) or alert
	Throttle  Verdict = "throttle"  // try again later
	Deny      Verdict = "deny"
	Ban       Verdict = "ban" // deny and ban the source for Decision.BanSeconds
)

var severity = map[Verdict]int{Allow: 0, Challenge: 1, Throttle: 2, Deny: 3, Ban: 4}

// Severity orders verdicts: allow 0 … ban 4. Unknown verdicts rank as deny so
// that a mistake fails closed.
func (v Verdict) Severity() int {
	if s, ok := severity[v]; ok {
		return s
	}
	return severity[Deny]
}

// Valid reports whether v is one of the defined verdicts.
func (v Verdict) Valid() bool { _, ok := severity[v]; return ok }

// Blocks reports whether the verdict stops the call.
func (v Verdict) Blocks() bool { return v.Severity() >= Throttle.Severity() }

// Max returns the more severe of a and b.
func Max(a, b Verdict) Verdict {
	if b.Severity() > a.Severity() {
		return b
	}
	return a
}

// Mode says whether a rule's hits change the verdict.
type Mode string

// Rule modes. In monitor a hit is recorded as "would have blocked" only.
const (
	Enforce Mode = "enforce"
	Monitor Mode = "monitor"
)

// Reason is one rule that fired.
type Reason struct {
	Rule    string  `json:"rule"`
	Reason  string  `json:"reason"`
	Mode    Mode    `json:"mode"`
	Verdict Verdict `json:"verdict"` // what this rule asks for (or would, in monitor)
	Level   string  `json:"level,omitempty"`
}

// Destination is what the engine made of the dialled number.
type Destination struct {
	E164          string  `json:"e164,omitempty"`
	Country       string  `json:"country,omitempty"` // ISO 3166 alpha-2, or "001" for non-geographic
	Type          string  `json:"type,omitempty"`    // libphonenumber number type, lower case
	International bool    `json:"international"`
	HighRisk      bool    `json:"high_risk,omitempty"`
	RatePerMinute float64 `json:"rate_per_minute,omitempty"`
}

// Decision is the engine's answer to one event. It explains itself: every
// rule that fired is listed with its mode, and monitor hits show in
// WouldVerdict without changing Verdict.
type Decision struct {
	ID           int64       `json:"id,omitempty"` // assigned by the decisions log
	Time         time.Time   `json:"time"`
	Tenant       string      `json:"tenant"`
	Account      string      `json:"account,omitempty"`
	CallID       string      `json:"call_id,omitempty"`
	From         string      `json:"from,omitempty"`
	To           string      `json:"to,omitempty"`
	SourceIP     string      `json:"source_ip,omitempty"`
	Destination  Destination `json:"destination"`
	Verdict      Verdict     `json:"verdict"`
	WouldVerdict Verdict     `json:"would_verdict,omitempty"` // set when monitor hits would have been more severe
	Reasons      []Reason    `json:"reasons"`
	Risk         int         `json:"risk"` // 0..100
	SIPCode      int         `json:"sip_code"`
	HTTPCode     int         `json:"http_code"`
	BanSeconds   int64       `json:"ban_seconds,omitempty"`
	// Silent asks a SIP front-end to drop the request without any reply:
	// a reply tells a scanner that a host is there.
	Silent     bool   `json:"silent,omitempty"`
	Escalation string `json:"escalation,omitempty"` // the escalation step this decision took, if any
	// AnomalyScore is the isolation forest's score of the account's
	// recent calls, in (0, 1): about 0.5 or less is ordinary, near 1 an
	// outlier. 0 when no model is loaded or the call was not scored.
	AnomalyScore float64 `json:"anomaly_score,omitempty"`
}

// Rules returns the ids of the rules that fired, in order.
func (d *Decision) Rules() []string {
	ids := make([]string, len(d.Reasons))
	for i, r := range d.Reasons {
		ids[i] = r.Rule
	}
	return ids
}
