package webhook

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/telguard/telguard/internal/event"
)

// ErrUnmapped means a queued payload cannot become a call event: it is not
// JSON, a mapped field has the wrong type, the call id is missing or the
// state is not one the mapping knows. Workers drop such events (counted)
// instead of retrying them: a redelivery would fail the same way.
var ErrUnmapped = errors.New("payload does not map to a call event")

// Limits on what normalisation reads and produces. The ingress already caps
// the body; these keep a mapping's output bounded whatever the payload.
const (
	// MaxNormalizeBody is the largest body Normalize decodes.
	MaxNormalizeBody = 1 << 20
	// maxPointerLength bounds a configured JSON pointer.
	maxPointerLength = 256
	// maxValueLength caps call id, direction, numbers, account and state.
	maxValueLength = 256
	// maxRecordingLength caps the recording reference (often a URL).
	maxRecordingLength = 2048
	// maxDuration is the longest call duration accepted: a week.
	maxDuration = 7 * 24 * time.Hour
	// maxFutureSkew is how far ahead of its receipt an event's own
	// timestamp may be; later ones are replaced by the receipt time, so a
	// sender cannot push events into the engine's future windows.
	maxFutureSkew = 5 * time.Minute
)

// Direction of a call as the provider reports it.
type Direction string

// Directions. An unrecognised value normalises to DirectionUnknown ("").
const (
	DirectionUnknown  Direction = ""
	DirectionInbound  Direction = "inbound"
	DirectionOutbound Direction = "outbound"
)

// CallEvent is a provider's webhook normalised: what the engine and the
// outbound destinations receive. Tenant and Source come from the ingress
// configuration, never from the payload.
type CallEvent struct {
	ID        string        `json:"id"` // the event id the ingress deduplicated on
	Source    string        `json:"source"`
	Tenant    string        `json:"tenant"`
	Kind      event.Kind    `json:"kind"`
	State     string        `json:"state"` // the provider's state value, as sent (capped)
	Time      time.Time     `json:"time"`
	CallID    string        `json:"call_id"`
	Direction Direction     `json:"direction,omitempty"`
	From      string        `json:"from,omitempty"`
	To        string        `json:"to,omitempty"`
	Account   string        `json:"account,omitempty"`
	Duration  time.Duration `json:"duration,omitempty"`
	Recording string        `json:"recording,omitempty"`
}

// Event converts c to the engine's event. An inbound call is marked
// inbound; outbound and unknown ones are left outbound (event.Event's
// default). The recording reference has no place in event.Event.
func (c CallEvent) Event() event.Event {
	var dir event.Direction
	if c.Direction == DirectionInbound {
		dir = event.Inbound
	}
	return event.Event{
		Direction: dir,
		Kind:      c.Kind,
		Time:      c.Time,
		Tenant:    c.Tenant,
		Account:   c.Account,
		CallID:    c.CallID,
		From:      c.From,
		To:        c.To,
		Duration:  c.Duration,
		Sensor:    "webhook",
	}
}

// Mapping says where a source's JSON payload keeps each call field, as RFC
// 6901 JSON pointers ("/data/call/id"). Preset names one of Presets as the
// base; any pointer set here overrides the preset's. CallID and State are
// required (from the preset or here); a field whose pointer is empty, or
// whose value is absent or null, stays empty.
type Mapping struct {
	Preset    string `json:"preset,omitempty" yaml:"preset"`
	CallID    string `json:"call_id,omitempty" yaml:"call_id"`
	State     string `json:"state,omitempty" yaml:"state"`
	Direction string `json:"direction,omitempty" yaml:"direction"`
	From      string `json:"from,omitempty" yaml:"from"`
	To        string `json:"to,omitempty" yaml:"to"`
	Duration  string `json:"duration,omitempty" yaml:"duration"`
	Recording string `json:"recording,omitempty" yaml:"recording"`
	Account   string `json:"account,omitempty" yaml:"account"`
	Time      string `json:"time,omitempty" yaml:"time"`
	// DurationUnit is "s" (seconds, the default) or "ms".
	DurationUnit string `json:"duration_unit,omitempty" yaml:"duration_unit"`
	// States maps further state values (compared case-insensitively) to
	// call_attempt, call_answered or call_ended, before DefaultStates.
	States map[string]event.Kind `json:"states,omitempty" yaml:"states"`
	// Directions maps further direction values (compared
	// case-insensitively) to inbound or outbound, before the built-in
	// reading (a value starting with "in" is inbound, "out" outbound:
	// inbound, incoming, outbound-api, outgoing…).
	Directions map[string]event.Direction `json:"directions,omitempty" yaml:"directions"`
	// DefaultDirection is the direction of a call whose payload has none
	// the mapping recognises: inbound for a source that only reports
	// calls to your numbers. "" leaves it unknown (outbound to the engine).
	DefaultDirection event.Direction `json:"default_direction,omitempty" yaml:"default_direction"`
}

// Presets are field paths for common shapes of telephony webhooks. They
// are named by shape, not by vendor; a provider whose payload looks like
// one of them needs only `preset: <name>`.
//
// flat — every field at the top level:
//
//	{"call_id":"c1","status":"completed","direction":"outbound",
//	 "from":"+441234","to":"+33123","duration":42,"recording_url":"https://…",
//	 "account":"acc-1","timestamp":"2025-01-02T03:04:05Z"}
//
// envelope-data — the Standard Webhooks payload convention (type,
// timestamp, data), the state being the event type ("call.ended"):
//
//	{"type":"call.answered","timestamp":"2025-01-02T03:04:05Z",
//	 "data":{"call_id":"c1","direction":"inbound","from":"+441234","to":"+33123",
//	 "duration":0,"recording_url":"","account_id":"acc-1"}}
//
// nested-call — an event name beside a call object whose parties are
// objects:
//
//	{"event":"hangup","occurred_at":1735787045,"account":{"id":"acc-1"},
//	 "call":{"id":"c1","direction":"outbound","from":{"number":"+441234"},
//	 "to":{"number":"+33123"},"duration":42,"recording":{"url":"https://…"}}}
var Presets = map[string]Mapping{
	"flat": {
		CallID: "/call_id", State: "/status", Direction: "/direction", From: "/from", To: "/to",
		Duration: "/duration", Recording: "/recording_url", Account: "/account", Time: "/timestamp",
	},
	"envelope-data": {
		CallID: "/data/call_id", State: "/type", Direction: "/data/direction", From: "/data/from",
		To: "/data/to", Duration: "/data/duration", Recording: "/data/recording_url",
		Account: "/data/account_id", Time: "/timestamp",
	},
	"nested-call": {
		CallID: "/call/id", State: "/event", Direction: "/call/direction", From: "/call/from/number",
		To: "/call/to/number", Duration: "/call/duration", Recording: "/call/recording/url",
		Account: "/account/id", Time: "/occurred_at",
	},
}

// DefaultStates are the state values every mapping understands, compared
// case-insensitively with "-" and " " folded to "_". A dotted value
// ("call.ended") that is not listed whole is looked up by its last part.
var DefaultStates = map[string]event.Kind{
	"attempt": event.CallAttempt, "initiated": event.CallAttempt, "created": event.CallAttempt,
	"started": event.CallAttempt, "queued": event.CallAttempt, "dialing": event.CallAttempt,
	"ringing": event.CallAttempt, "new": event.CallAttempt,

	"answered": event.CallAnswered, "in_progress": event.CallAnswered, "connected": event.CallAnswered,
	"bridged": event.CallAnswered,

	"ended": event.CallEnded, "completed": event.CallEnded, "hangup": event.CallEnded,
	"hung_up": event.CallEnded, "finished": event.CallEnded, "busy": event.CallEnded,
	"failed": event.CallEnded, "no_answer": event.CallEnded, "canceled": event.CallEnded,
	"cancelled": event.CallEnded, "rejected": event.CallEnded,
}

// Normalizer turns one source's payloads into CallEvents. Build it with
// NewNormalizer; it is read-only afterwards and safe for concurrent use.
type Normalizer struct {
	callID, state, direction, from, to, duration, recording, account, time []string
	millis                                                                 bool
	states                                                                 map[string]event.Kind
	directions                                                             map[string]Direction
	defaultDirection                                                       Direction
}

// NewNormalizer checks m and compiles its pointers.
func NewNormalizer(m Mapping) (*Normalizer, error) {
	base := Mapping{}
	if m.Preset != "" {
		p, ok := Presets[m.Preset]
		if !ok {
			return nil, fmt.Errorf("mapping: unknown preset %q", m.Preset)
		}
		base = p
	}
	n := &Normalizer{states: make(map[string]event.Kind, len(m.States))}
	for _, f := range []struct {
		name       string
		over, base string
		dst        *[]string
	}{
		{"call_id", m.CallID, base.CallID, &n.callID},
		{"state", m.State, base.State, &n.state},
		{"direction", m.Direction, base.Direction, &n.direction},
		{"from", m.From, base.From, &n.from},
		{"to", m.To, base.To, &n.to},
		{"duration", m.Duration, base.Duration, &n.duration},
		{"recording", m.Recording, base.Recording, &n.recording},
		{"account", m.Account, base.Account, &n.account},
		{"time", m.Time, base.Time, &n.time},
	} {
		p := cmpOr(f.over, f.base)
		if p == "" {
			continue
		}
		if len(p) > maxPointerLength {
			return nil, fmt.Errorf("mapping: %s: json pointer longer than %d", f.name, maxPointerLength)
		}
		toks, err := parsePointer(p)
		if err != nil {
			return nil, fmt.Errorf("mapping: %s: %w", f.name, err)
		}
		*f.dst = toks
	}
	if n.callID == nil || n.state == nil {
		return nil, errors.New("mapping: call_id and state are required")
	}
	switch m.DurationUnit {
	case "", "s":
	case "ms":
		n.millis = true
	default:
		return nil, fmt.Errorf("mapping: duration_unit %q: want s or ms", m.DurationUnit)
	}
	n.directions = make(map[string]Direction, len(m.Directions))
	for v, d := range m.Directions {
		dd, err := checkDirection(d)
		if err != nil || dd == DirectionUnknown {
			return nil, fmt.Errorf("mapping: directions %q: want inbound or outbound, got %q", v, d)
		}
		n.directions[strings.ToLower(strings.TrimSpace(v))] = dd
	}
	var err error
	if n.defaultDirection, err = checkDirection(m.DefaultDirection); err != nil {
		return nil, fmt.Errorf("mapping: default_direction: %w", err)
	}
	for v, k := range m.States {
		if k != event.CallAttempt && k != event.CallAnswered && k != event.CallEnded {
			return nil, fmt.Errorf("mapping: state %q: kind %q is not a call kind", v, k)
		}
		n.states[foldState(v)] = k
	}
	return n, nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// Normalize maps env's body to a call event. Errors wrap ErrUnmapped and
// name the field, never its value.
func (n *Normalizer) Normalize(env Envelope) (CallEvent, error) {
	if len(env.Body) > MaxNormalizeBody {
		return CallEvent{}, fmt.Errorf("%w: body larger than %d bytes", ErrUnmapped, MaxNormalizeBody)
	}
	dec := json.NewDecoder(bytes.NewReader(env.Body))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return CallEvent{}, fmt.Errorf("%w: body is not JSON", ErrUnmapped)
	}
	ev := CallEvent{ID: capString(env.ID, maxValueLength), Source: capString(env.Source, maxValueLength),
		Tenant: capString(env.Tenant, maxValueLength), Time: env.Received}
	var err error
	str := func(name string, toks []string, limit int) string {
		if err != nil || toks == nil {
			return ""
		}
		var s string
		s, err = stringAt(doc, toks, name, limit)
		return s
	}
	ev.CallID = str("call_id", n.callID, maxValueLength)
	ev.State = str("state", n.state, maxValueLength)
	dir := str("direction", n.direction, maxValueLength)
	ev.From = str("from", n.from, maxValueLength)
	ev.To = str("to", n.to, maxValueLength)
	ev.Recording = str("recording", n.recording, maxRecordingLength)
	ev.Account = str("account", n.account, maxValueLength)
	if err != nil {
		return CallEvent{}, err
	}
	if ev.CallID == "" {
		return CallEvent{}, fmt.Errorf("%w: no call_id", ErrUnmapped)
	}
	var ok bool
	if ev.Kind, ok = n.kind(ev.State); !ok {
		return CallEvent{}, fmt.Errorf("%w: state not mapped to a call kind", ErrUnmapped)
	}
	ev.Direction = n.readDirection(dir)
	if n.duration != nil {
		if ev.Duration, err = n.durationAt(doc); err != nil {
			return CallEvent{}, err
		}
	}
	if n.time != nil {
		t, err := timeAt(doc, n.time)
		if err != nil {
			return CallEvent{}, err
		}
		if !t.IsZero() && (env.Received.IsZero() || !t.After(env.Received.Add(maxFutureSkew))) {
			ev.Time = t
		}
	}
	ev.Time = ev.Time.UTC()
	return ev, nil
}

func (n *Normalizer) kind(state string) (event.Kind, bool) {
	s := foldState(state)
	if s == "" {
		return "", false
	}
	if k, ok := n.states[s]; ok {
		return k, true
	}
	if k, ok := DefaultStates[s]; ok {
		return k, true
	}
	if i := strings.LastIndexByte(state, '.'); i >= 0 {
		last := foldState(state[i+1:])
		if k, ok := n.states[last]; ok {
			return k, true
		}
		k, ok := DefaultStates[last]
		return k, ok
	}
	return "", false
}

func foldState(s string) string {
	return strings.Map(func(r rune) rune {
		switch r {
		case '-', ' ':
			return '_'
		}
		return unicode.ToLower(r)
	}, strings.TrimSpace(s))
}

// builtinDirections are the direction values read without a mapping of
// the source's own, matched whole (after trimming and lower-casing):
// "internal" or "international" say nothing about who called whom, and a
// call read inbound skips the toll checks.
var builtinDirections = map[string]Direction{
	"inbound": DirectionInbound, "in": DirectionInbound, "incoming": DirectionInbound,
	"mt": DirectionInbound, "terminating": DirectionInbound, "terminated": DirectionInbound,
	"outbound": DirectionOutbound, "out": DirectionOutbound, "outgoing": DirectionOutbound,
	"mo": DirectionOutbound, "originating": DirectionOutbound, "originated": DirectionOutbound,
	"outbound-api": DirectionOutbound, "outbound-dial": DirectionOutbound,
}

// readDirection reads a payload's direction value: the mapping's own values
// first, then builtinDirections, then the default.
func (n *Normalizer) readDirection(s string) Direction {
	s = strings.ToLower(strings.TrimSpace(s))
	if d, ok := n.directions[s]; ok {
		return d
	}
	if d, ok := builtinDirections[s]; ok {
		return d
	}
	return n.defaultDirection
}

func checkDirection(d event.Direction) (Direction, error) {
	switch d {
	case "":
		return DirectionUnknown, nil
	case event.Inbound:
		return DirectionInbound, nil
	case event.Outbound:
		return DirectionOutbound, nil
	}
	return DirectionUnknown, fmt.Errorf("want inbound or outbound, got %q", d)
}

// stringAt reads a string (or a number, as written) at toks. Absent and
// null give "".
func stringAt(doc any, toks []string, name string, limit int) (string, error) {
	v, ok := lookup(doc, toks)
	if !ok || v == nil {
		return "", nil
	}
	switch x := v.(type) {
	case string:
		return capString(x, limit), nil
	case json.Number:
		return capString(x.String(), limit), nil
	}
	return "", fmt.Errorf("%w: %s is not a string", ErrUnmapped, name)
}

func (n *Normalizer) durationAt(doc any) (time.Duration, error) {
	v, ok := lookup(doc, n.duration)
	if !ok || v == nil || v == "" {
		return 0, nil
	}
	var s string
	switch x := v.(type) {
	case string:
		s = strings.TrimSpace(x)
	case json.Number:
		s = x.String()
	default:
		return 0, fmt.Errorf("%w: duration is not a number", ErrUnmapped)
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || f < 0 {
		return 0, fmt.Errorf("%w: duration is not a non-negative number", ErrUnmapped)
	}
	unit := time.Second
	if n.millis {
		unit = time.Millisecond
	}
	if f*float64(unit) > float64(maxDuration) {
		return 0, fmt.Errorf("%w: duration longer than %s", ErrUnmapped, maxDuration)
	}
	return time.Duration(f * float64(unit)), nil
}

// timeAt reads an RFC 3339 string or Unix seconds (a number, or a numeric
// string; values above 1e11 are taken as milliseconds). Absent and null
// give the zero time.
func timeAt(doc any, toks []string) (time.Time, error) {
	v, ok := lookup(doc, toks)
	if !ok || v == nil || v == "" {
		return time.Time{}, nil
	}
	var s string
	switch x := v.(type) {
	case string:
		s = x
		if len(s) > 64 {
			return time.Time{}, fmt.Errorf("%w: time too long", ErrUnmapped)
		}
		if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
			return checkYear(t)
		}
	case json.Number:
		s = x.String()
	default:
		return time.Time{}, fmt.Errorf("%w: time is not a string or number", ErrUnmapped)
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return time.Time{}, fmt.Errorf("%w: time is neither RFC 3339 nor Unix seconds", ErrUnmapped)
	}
	if f > 1e11 {
		f /= 1000
	}
	if f < 0 || f > 1e11 {
		return time.Time{}, fmt.Errorf("%w: time out of range", ErrUnmapped)
	}
	sec, frac := math.Modf(f)
	return checkYear(time.Unix(int64(sec), int64(frac*1e9)))
}

func checkYear(t time.Time) (time.Time, error) {
	if y := t.UTC().Year(); y < 2000 || y > 2200 {
		return time.Time{}, fmt.Errorf("%w: time out of range", ErrUnmapped)
	}
	return t, nil
}

// capString returns s without control characters or invalid UTF-8, cut to
// at most limit bytes on a rune boundary.
func capString(s string, limit int) string {
	clean := true
	for _, r := range s {
		if r == utf8.RuneError || unicode.IsControl(r) {
			clean = false
			break
		}
	}
	if !clean {
		s = strings.Map(func(r rune) rune {
			if r == utf8.RuneError || unicode.IsControl(r) {
				return -1
			}
			return r
		}, s)
	}
	s = strings.TrimSpace(s)
	if len(s) <= limit {
		return s
	}
	cut := limit
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}
