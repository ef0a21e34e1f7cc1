package policy

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/telguard/telguard/internal/event"
)

// SIP holds a tenant's rules for what a SIP sensor sees besides calls:
// scanner fingerprints and authentication brute force.
type SIP struct {
	// ScannerAction is what a scanner gets: a silent drop (a reply tells it
	// a host is there) or a 403. Either way its source is banned.
	ScannerAction   ScannerAction
	ScannerBan      time.Duration
	Scanners        []Fingerprint
	BruteForce      BruteForce
	scannersByField map[string][]Fingerprint
}

// ScannerAction is how a scanner's request is answered.
type ScannerAction string

// Scanner actions.
const (
	ScannerDrop   ScannerAction = "drop"
	ScannerReject ScannerAction = "reject"
)

// Fingerprint is a case-insensitive substring that marks a request as a
// scanner's when it appears in one field.
type Fingerprint struct {
	Field    string // user_agent, from, to, contact, sdp_session
	Contains string // lower case
	Name     string // the tool, for reasons
}

// BruteForce sets when failed authentication bans a source. A count above
// a threshold bans; 0 turns that check off.
type BruteForce struct {
	Window            time.Duration
	FailuresPerIP     int // failed authentications from one address
	FailuresPerUser   int // failures for one username from one address
	UsernamesPerIP    int // distinct failing usernames from one address: enumeration
	SlowWindow        time.Duration
	SlowFailuresPerIP int // failures from one address over the slow window
	Ban               time.Duration
	EnumerationBan    time.Duration
}

// BuiltinScanners are the fingerprints of SIP scanners and attack tools
// seen in the wild and in their own sources. Matching is case-insensitive
// on a substring of the field.
var BuiltinScanners = []Fingerprint{
	{"user_agent", "friendly-scanner", "SIPVicious"},
	{"user_agent", "sipvicious", "SIPVicious"},
	{"from", "sipvicious", "SIPVicious"},
	{"user_agent", "sipcli", "sipcli"},
	{"user_agent", "sipsak", "sipsak"},
	{"user_agent", "pplsip", "SIPPTS"},
	{"user_agent", "sippts", "SIPPTS"},
	{"user_agent", "vaxsipuseragent", "VaxSIPUserAgent"},
	{"user_agent", "sundayddr", "sundayddr"},
	{"user_agent", "sipsscuser", "sipsscuser"},
	{"from", "sipsscuser", "sipsscuser"},
	{"user_agent", "iwar", "iWar"},
	{"user_agent", "sip-scan", "sip-scan"},
	{"user_agent", "smap", "smap"},
	{"user_agent", "voiper", "VoIPER"},
	{"user_agent", "hacker", "User-Agent: Hacker"},
	{"from", "sip:nm@nm", "nmap sip-methods"},
	{"to", "sip:nm@nm", "nmap sip-methods"},
	{"contact", "sip:nm@nm", "nmap sip-methods"},
	{"user_agent", "sipscan", "sipscan"},
	{"user_agent", "siparmyknife", "SIP Army Knife"},
	{"user_agent", "warvox", "WarVOX"},
	{"user_agent", "mr.scanner", "mr.scanner"},
	{"sdp_session", "sipvicious", "SIPVicious"},
	{"sdp_session", "sippts", "SIPPTS"},
}

// Defaults of the sip section. fail2ban's Asterisk jail bans after 5
// failures in 10 minutes for 10 minutes, CrowdSec's asterisk_bf after 5
// quick failures; these catch at least what those catch, and ban longer.
var defaultBruteForce = BruteForce{
	Window: 10 * time.Minute, FailuresPerIP: 5, FailuresPerUser: 3, UsernamesPerIP: 5,
	SlowWindow: 24 * time.Hour, SlowFailuresPerIP: 20, Ban: time.Hour, EnumerationBan: 24 * time.Hour,
}

var fingerprintFields = []string{"user_agent", "from", "to", "contact", "sdp_session"}

// Match returns the tool whose fingerprint the request carries, if any.
func (s *SIP) Match(ua string, info *event.SIPInfo) (string, bool) {
	fields := [...]struct{ name, value string }{
		{"user_agent", ua}, {"from", ""}, {"to", ""}, {"contact", ""}, {"sdp_session", ""},
	}
	if info != nil {
		fields[1].value, fields[2].value, fields[3].value, fields[4].value = info.From, info.To, info.Contact, info.SDPSession
	}
	for _, f := range fields {
		if f.value == "" {
			continue
		}
		fps := s.scannersByField[f.name]
		if len(fps) == 0 {
			continue
		}
		v := strings.ToLower(f.value)
		for _, fp := range fps {
			if strings.Contains(v, fp.Contains) {
				return fp.Name, true
			}
		}
	}
	return "", false
}

func (c *compiler) sip(path string, y *sipYAML) *SIP {
	s := &SIP{ScannerAction: ScannerDrop, ScannerBan: 24 * time.Hour, BruteForce: defaultBruteForce}
	if y == nil {
		y = &sipYAML{}
	}
	switch ScannerAction(y.ScannerAction) {
	case "":
	case ScannerDrop, ScannerReject:
		s.ScannerAction = ScannerAction(y.ScannerAction)
	default:
		c.fail(path+".scanner_action", "want drop or reject, got %q", y.ScannerAction)
	}
	if y.ScannerBan != nil {
		s.ScannerBan = time.Duration(*y.ScannerBan)
		if s.ScannerBan < time.Second || s.ScannerBan > 365*24*time.Hour {
			c.fail(path+".scanner_ban", "a ban lasts between 1s and 365d")
		}
	}
	if y.BuiltinScanners == nil || *y.BuiltinScanners {
		s.Scanners = append(s.Scanners, BuiltinScanners...)
	}
	if len(y.Scanners) > maxListEntries {
		c.fail(path+".scanners", "%d fingerprints; the limit is %d", len(y.Scanners), maxListEntries)
	}
	for i, f := range y.Scanners {
		fp := fmt.Sprintf("%s.scanners[%d]", path, i)
		if !slices.Contains(fingerprintFields, f.Field) {
			c.fail(fp+".field", "want one of %s, got %q", strings.Join(fingerprintFields, ", "), f.Field)
		}
		if len(f.Contains) < 3 || len(f.Contains) > 128 {
			c.fail(fp+".contains", "want 3 to 128 characters, got %d", len(f.Contains))
		}
		name := f.Name
		if name == "" {
			name = f.Contains
		}
		s.Scanners = append(s.Scanners, Fingerprint{Field: f.Field, Contains: strings.ToLower(f.Contains), Name: name})
	}
	s.scannersByField = map[string][]Fingerprint{}
	for _, f := range s.Scanners {
		s.scannersByField[f.Field] = append(s.scannersByField[f.Field], f)
	}
	if b := y.BruteForce; b != nil {
		bp := path + ".brute_force"
		dur := func(field string, v *Duration, dst *time.Duration) {
			if v == nil {
				return
			}
			*dst = time.Duration(*v)
			if *dst < time.Second || *dst > 30*24*time.Hour {
				c.fail(bp+"."+field, "must be between 1s and 30d")
			}
		}
		count := func(field string, v *int, dst *int) {
			if v == nil {
				return
			}
			*dst = *v
			if *dst < 0 || *dst > maxThreshold {
				c.fail(bp+"."+field, "must be between 0 (off) and %d", maxThreshold)
			}
		}
		bf := &s.BruteForce
		dur("window", b.Window, &bf.Window)
		dur("slow_window", b.SlowWindow, &bf.SlowWindow)
		dur("ban", b.Ban, &bf.Ban)
		dur("enumeration_ban", b.EnumerationBan, &bf.EnumerationBan)
		count("failures_per_ip", b.FailuresPerIP, &bf.FailuresPerIP)
		count("failures_per_user", b.FailuresPerUser, &bf.FailuresPerUser)
		count("usernames_per_ip", b.UsernamesPerIP, &bf.UsernamesPerIP)
		count("slow_failures_per_ip", b.SlowFailuresPerIP, &bf.SlowFailuresPerIP)
		if bf.SlowWindow < bf.Window {
			c.fail(bp+".slow_window", "must be at least window (%s)", bf.Window)
		}
	}
	return s
}
