package event

import "time"

// The records below are the engine's durable state: what must survive a
// restart. The engine emits Changes to them; the store persists the changes
// and hands the records back at start-up.

// Call is a call in flight.
type Call struct {
	Tenant        string    `json:"tenant"`
	Account       string    `json:"account"`
	CallID        string    `json:"call_id"`
	SourceIP      string    `json:"source_ip,omitempty"`
	E164          string    `json:"e164,omitempty"`
	Country       string    `json:"country,omitempty"`
	International bool      `json:"international"`
	RatePerMinute float64   `json:"rate_per_minute,omitempty"`
	Started       time.Time `json:"started"`
	Answered      time.Time `json:"answered,omitzero"` // zero until answered
	// From and To are the numbers as the attempt gave them (To as dialled),
	// for the call history.
	From string `json:"from,omitempty"`
	To   string `json:"to,omitempty"`
	// Flagged is set when a rule challenged the call or would have blocked
	// it (in monitor): such a call teaches the behaviour baselines nothing,
	// even once restored after a restart. NewNetwork is set when the rule
	// that did was baseline.new_network, which is forgiven when the network
	// was seen on an unflagged call since.
	Flagged    bool `json:"flagged,omitempty"`
	NewNetwork bool `json:"new_network,omitempty"`
}

// QuotaUsage is an account's international usage on one local day.
type QuotaUsage struct {
	Tenant  string  `json:"tenant"`
	Account string  `json:"account"`
	Day     string  `json:"day"` // YYYY-MM-DD in the tenant's time zone
	Seconds float64 `json:"seconds"`
	Money   float64 `json:"money"`
}

// IPBan blocks a source IP (or prefix) for a tenant until Until.
type IPBan struct {
	Tenant  string    `json:"tenant"`
	Subject string    `json:"subject"` // an IP address or CIDR prefix
	Until   time.Time `json:"until"`
	Rule    string    `json:"rule"`
	Reason  string    `json:"reason"`
	Created time.Time `json:"created"`
}

// Suspension stops an account's international calling until an operator
// lifts it.
type Suspension struct {
	Tenant  string    `json:"tenant"`
	Account string    `json:"account"`
	Rule    string    `json:"rule"`
	Reason  string    `json:"reason"`
	Created time.Time `json:"created"`
}

// Op is the kind of a state change.
type Op string

// State change operations.
const (
	OpPutCall          Op = "put_call"
	OpDeleteCall       Op = "delete_call"
	OpPutQuota         Op = "put_quota"
	OpPutBan           Op = "put_ban"
	OpDeleteBan        Op = "delete_ban"
	OpPutSuspension    Op = "put_suspension"
	OpDeleteSuspension Op = "delete_suspension"
	OpDecision         Op = "decision"
	// OpPutHistory records a finished call in the call history, the
	// record `telguard anomaly train` and `telguard replay --stored` read.
	// Like a decision, it is a record, not state the engine reads back.
	OpPutHistory Op = "put_history"
)

// Change is one durable state change, emitted by the engine in order. Exactly
// one of the pointer fields is set, matching Op. Delete ops carry the record
// with its key fields filled.
type Change struct {
	Op         Op
	Call       *Call
	Quota      *QuotaUsage
	Ban        *IPBan
	Suspension *Suspension
	Decision   *Decision
	History    *CallRecord
}

// Tenant returns the tenant the change belongs to.
func (c Change) Tenant() string {
	switch {
	case c.Call != nil:
		return c.Call.Tenant
	case c.Quota != nil:
		return c.Quota.Tenant
	case c.Ban != nil:
		return c.Ban.Tenant
	case c.Suspension != nil:
		return c.Suspension.Tenant
	case c.Decision != nil:
		return c.Decision.Tenant
	case c.History != nil:
		return c.History.Tenant
	}
	return ""
}

// State is the durable state of one tenant, as loaded at start-up.
type State struct {
	Calls       []Call
	Quotas      []QuotaUsage
	Bans        []IPBan
	Suspensions []Suspension
}
