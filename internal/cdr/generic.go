package cdr

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/telguard/telguard/internal/event"
)

// Mapping names the header columns of a generic CSV that hold each field
// of a call. An empty name is looked up among the field's usual header names
// (see Fields); Account, To and Start must be found, and one of End,
// Duration and Billsec.
type Mapping struct {
	Account     string `json:"account,omitempty"`
	CallID      string `json:"call_id,omitempty"`
	From        string `json:"from,omitempty"`
	To          string `json:"to,omitempty"`
	Start       string `json:"start,omitempty"`
	Answer      string `json:"answer,omitempty"`
	End         string `json:"end,omitempty"`
	Billsec     string `json:"billsec,omitempty"`  // answered seconds
	Duration    string `json:"duration,omitempty"` // seconds from start to end
	Direction   string `json:"direction,omitempty"`
	SourceIP    string `json:"source_ip,omitempty"`
	Disposition string `json:"disposition,omitempty"`
	// TimeFormat is how times are written: "" (RFC 3339, "2006-01-02
	// 15:04:05" or Unix seconds, told apart per value), "unix", "unixms",
	// "rfc3339", or a Go layout such as "02/01/2006 15:04".
	TimeFormat string `json:"time_format,omitempty"`
}

// Field is one field a generic CSV can carry: its mapping key and the
// header names it is found under when the mapping does not name a column.
type Field struct {
	Key     string
	Aliases []string
	Help    string
}

// Fields lists the generic CSV fields in mapping-key order. Header names
// match case-insensitively, ignoring spaces, '_' and '-'.
var Fields = []Field{
	{"account", []string{"account", "accountcode", "account_code", "extension", "ext", "user", "username", "subscriber"}, "the account that placed (and pays for) the call"},
	{"call_id", []string{"call_id", "callid", "uniqueid", "uuid", "call_uuid"}, "the switch's id of the call (with the start and destination, so that exports numbering rows 1..N do not collide); without one, a digest of the line"},
	{"from", []string{"from", "src", "source", "caller", "callerid", "caller_id_number", "calling_number", "ani", "cli"}, "calling number"},
	{"to", []string{"to", "dst", "destination", "destination_number", "dest", "dialed", "dialled", "called", "called_number", "callee", "dnis", "number"}, "dialled number, as the switch saw it"},
	{"start", []string{"start", "start_time", "started_at", "start_at", "start_stamp", "started", "calldate", "call_date", "setup_time", "date"}, "when the call was placed"},
	{"answer", []string{"answer", "answer_time", "answered_at", "answer_stamp", "answered", "connect_time"}, "when it was answered; empty when it was not"},
	{"end", []string{"end", "end_time", "ended_at", "end_at", "end_stamp", "ended", "hangup_time"}, "when it ended"},
	{"billsec", []string{"billsec", "bill_sec", "billable", "billable_seconds", "billed_seconds", "talk_time", "talktime"}, "answered (billed) seconds"},
	{"duration", []string{"duration", "total_seconds", "call_duration"}, "seconds from start to end; talk time when no answer, billsec or end column says otherwise"},
	{"direction", []string{"direction", "call_direction", "dir"}, "inbound or outbound (in/out, incoming/outgoing); empty is outbound"},
	{"source_ip", []string{"source_ip", "src_ip", "sourceip", "ip", "remote_ip", "network_addr"}, "address the call came from"},
	{"disposition", []string{"disposition", "status", "hangup_cause", "result", "outcome"}, "outcome as the switch wrote it"},
}

func (m *Mapping) ptr(key string) *string {
	switch key {
	case "account":
		return &m.Account
	case "call_id":
		return &m.CallID
	case "from":
		return &m.From
	case "to":
		return &m.To
	case "start":
		return &m.Start
	case "answer":
		return &m.Answer
	case "end":
		return &m.End
	case "billsec":
		return &m.Billsec
	case "duration":
		return &m.Duration
	case "direction":
		return &m.Direction
	case "source_ip":
		return &m.SourceIP
	case "disposition":
		return &m.Disposition
	case "time_format":
		return &m.TimeFormat
	}
	return nil
}

// ParseMapping reads "key=column,key=column": keys are the Fields keys and
// time_format, columns are header names. For example
// "account=ext,to=dialled,start=started_at,time_format=unix".
func ParseMapping(s string) (Mapping, error) {
	var m Mapping
	if strings.TrimSpace(s) == "" {
		return m, nil
	}
	seen := map[string]bool{}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(kv, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || k == "" || v == "" {
			return Mapping{}, fmt.Errorf("%q: want key=column: %w", kv, ErrBadMapping)
		}
		p := m.ptr(k)
		if p == nil {
			return Mapping{}, fmt.Errorf("key %q: want one of %s, time_format: %w", k, strings.Join(fieldKeys(), ", "), ErrBadMapping)
		}
		if seen[k] {
			return Mapping{}, fmt.Errorf("key %q given twice: %w", k, ErrBadMapping)
		}
		seen[k] = true
		*p = v
	}
	return m, nil
}

func fieldKeys() []string {
	ks := make([]string, len(Fields))
	for i, f := range Fields {
		ks[i] = f.Key
	}
	return ks
}

// normName folds a header name for matching.
func normName(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(s)) {
		if r == ' ' || r == '_' || r == '-' {
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// genericParser reads records by column index, resolved from the header.
type genericParser struct {
	o      *Options
	layout string
	idx    map[string]int // field key → column index
	names  []string       // header, for errors
	width  int
}

// newGenericParser resolves the mapping against the header.
func newGenericParser(o *Options, header []string, line int64) (*genericParser, error) {
	p := &genericParser{o: o, layout: o.Mapping.TimeFormat, idx: map[string]int{}, names: header, width: len(header)}
	byName := map[string]int{}
	for i, h := range header {
		if n := normName(h); n != "" {
			if _, dup := byName[n]; !dup {
				byName[n] = i
			}
		}
	}
	m := o.Mapping
	for _, f := range Fields {
		if col := *m.ptr(f.Key); col != "" {
			i, ok := byName[normName(col)]
			if !ok {
				return nil, fmt.Errorf("line %d: %s=%s: the header has no column %q (%s): %w",
					line, f.Key, col, col, describeHeader(header), ErrBadMapping)
			}
			p.idx[f.Key] = i
			continue
		}
		for _, a := range f.Aliases {
			if i, ok := byName[normName(a)]; ok {
				p.idx[f.Key] = i
				break
			}
		}
	}
	var missing []string
	for _, k := range []string{"account", "to", "start"} {
		if _, ok := p.idx[k]; !ok {
			missing = append(missing, k)
		}
	}
	if !p.has("end") && !p.has("duration") && !p.has("billsec") {
		missing = append(missing, "end, duration or billsec")
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("line %d: no column for %s in the header (%s); name them with a mapping such as account=ext,to=dialled: %w",
			line, strings.Join(missing, ", "), describeHeader(header), ErrBadMapping)
	}
	return p, nil
}

// describeHeader lists a header's names for an error, unless the first
// line holds numbers or times: then it is a call, not a header, and its
// fields are not repeated.
func describeHeader(header []string) string {
	for _, h := range header {
		if isDigits(h) || isSwitchTime(h) || strings.ContainsAny(h, "0123456789") && len(h) > 6 {
			return "the first line is not a header row of column names"
		}
	}
	return "it has " + strings.Join(header, ", ")
}

func (p *genericParser) has(k string) bool { _, ok := p.idx[k]; return ok }

// get returns the field's value and its column name.
func (p *genericParser) get(f []string, k string) (string, string) {
	i, ok := p.idx[k]
	if !ok || i >= len(f) {
		return "", k
	}
	return strings.TrimSpace(f[i]), p.names[i]
}

// looksHeader reports whether a first record is a header: no field is a
// number or a time, and some field is a known name.
func looksHeader(f []string) bool {
	known := false
	for _, h := range f {
		if isDigits(h) || isSwitchTime(h) {
			return false
		}
		n := normName(h)
		for _, fl := range Fields {
			if slices.ContainsFunc(fl.Aliases, func(a string) bool { return normName(a) == n }) {
				known = true
			}
		}
	}
	return known
}

func (p *genericParser) parse(f []string, line int64) (event.CallRecord, error) {
	var rec event.CallRecord
	if len(f) != p.width {
		return rec, &LineError{Line: line, Err: fmt.Errorf("%d columns, the header has %d", len(f), p.width)}
	}
	tm := func(k string) (time.Time, error) {
		v, col := p.get(f, k)
		if v == "" {
			return time.Time{}, nil
		}
		t, err := parseTime(v, p.layout, p.o.Location)
		if err != nil {
			return t, colErr(line, col, err)
		}
		return t, nil
	}
	secs := func(k string) (time.Duration, bool, error) {
		v, col := p.get(f, k)
		if !p.has(k) || v == "" {
			return 0, false, nil
		}
		d, err := parseSeconds(v)
		if err != nil {
			return 0, false, colErr(line, col, err)
		}
		return d, true, nil
	}
	var err error
	if rec.Start, err = tm("start"); err != nil {
		return rec, err
	}
	if rec.Start.IsZero() {
		_, col := p.get(f, "start")
		return rec, colErr(line, col, errors.New("no start time"))
	}
	answer, err := tm("answer")
	if err != nil {
		return rec, err
	}
	if rec.End, err = tm("end"); err != nil {
		return rec, err
	}
	billsec, hasBill, err := secs("billsec")
	if err != nil {
		return rec, err
	}
	duration, hasDur, err := secs("duration")
	if err != nil {
		return rec, err
	}
	disposition, _ := p.get(f, "disposition")
	loc := p.o.Location
	switch {
	case !rec.End.IsZero():
		if hasDur && rec.Start.Location() == loc && rec.End.Location() == loc {
			// Readings without a zone: across a DST change the end can
			// read before the start, or a reading name two instants.
			// The duration is real time and tells which.
			rec.Start, rec.End, _ = closestPair(rec.Start, rec.End, duration, time.Time{})
		}
	case hasDur:
		rec.End = rec.Start.Add(duration)
	case !answer.IsZero() && hasBill:
		rec.End = answer.Add(billsec)
	case hasBill:
		rec.End = rec.Start.Add(billsec)
	default:
		_, col := p.get(f, "end")
		return rec, colErr(line, col, errors.New("no end time and no duration"))
	}
	if !answer.IsZero() && answer.Location() == loc {
		answer = withinCall(answer, rec.Start, rec.End)
	}
	switch {
	case hasBill:
		if billsec > 0 || !answer.IsZero() {
			rec.Billsec, rec.Answer = billsec, answer
			if answer.IsZero() {
				rec.Answer = rec.End.Add(-billsec)
			}
		}
	case !answer.IsZero():
		rec.Answer, rec.Billsec = answer, rec.End.Sub(answer)
		if rec.Billsec < 0 && rec.Billsec >= -time.Second {
			rec.Billsec = 0 // rounded to the second; finish clamps the answer
		}
		if rec.Billsec < 0 {
			_, col := p.get(f, "answer")
			return rec, colErr(line, col, errors.New("answer time is after the end"))
		}
	case p.has("answer"):
		// An answer column that is empty: not answered.
	case hasDur && duration > 0 && !p.has("end") && !unanswered(disposition):
		// Only a duration: a billing export, whose duration is talk time.
		// Not with an end column (the duration is then start to end,
		// ringing included) nor for a call its status says was not
		// answered.
		rec.Answer, rec.Billsec = rec.End.Add(-duration), duration
	}
	rec.Account, _ = p.get(f, "account")
	rec.To, _ = p.get(f, "to")
	rec.From, _ = p.get(f, "from")
	rec.Disposition = disposition
	if v, col := p.get(f, "direction"); v != "" {
		if rec.Direction, err = parseDirection(v); err != nil {
			return rec, colErr(line, col, err)
		}
	} else {
		rec.Direction = event.Outbound
	}
	if v, col := p.get(f, "source_ip"); v != "" {
		if rec.SourceIP, err = parseIP(v); err != nil {
			return rec, colErr(line, col, err)
		}
	}
	// An id column is often per export (rows numbered 1..N in each
	// file): alone it would make a second month's calls look stored
	// already. With the start and destination it stays stable for one
	// call and cannot collide across exports.
	if id, _ := p.get(f, "call_id"); id != "" {
		rec.CallID = id + "-" + digestID("", rec.Start.UTC().Format(time.RFC3339Nano), rec.To)[:8]
	} else {
		rec.CallID = digestID("csv-", f...)
	}
	col := func(k string) string {
		_, c := p.get(f, k)
		return c
	}
	if err := finish(&rec, p.o, line, col); err != nil {
		return rec, err
	}
	return rec, nil
}

// unansweredWords are what dispositions of calls that were not answered
// contain, folded by normName and upper-cased: Asterisk's NO ANSWER, BUSY,
// FAILED, CONGESTION; FreeSWITCH's hangup causes; billing exports' words.
var unansweredWords = []string{"NOANSWER", "BUSY", "FAIL", "CONGESTION", "CANCEL", "REJECT", "DECLINE",
	"MISSED", "UNANSWERED", "ABANDON", "UNAVAILABLE", "UNALLOCATED", "NOUSERRESPONSE", "NOROUTE", "INVALID"}

// unanswered reports whether a disposition says the call was not answered.
func unanswered(disposition string) bool {
	d := strings.ToUpper(normName(disposition))
	for _, w := range unansweredWords {
		if strings.Contains(d, w) {
			return true
		}
	}
	return false
}
