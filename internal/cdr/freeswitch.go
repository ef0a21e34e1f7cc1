package cdr

import (
	"errors"
	"strconv"
	"strings"

	"github.com/telguard/telguard/internal/event"
)

// freeswitchColumns is mod_cdr_csv's default template:
// "${caller_id_name}","${caller_id_number}","${destination_number}",
// "${context}","${start_stamp}","${answer_stamp}","${end_stamp}",
// "${duration}","${billsec}","${hangup_cause}","${uuid}","${bleg_uuid}",
// "${accountcode}","${read_codec}","${write_codec}". Records without the two
// codec columns are read too.
var freeswitchColumns = []string{
	"caller_id_name", "caller_id_number", "destination_number", "context", "start_stamp", "answer_stamp",
	"end_stamp", "duration", "billsec", "hangup_cause", "uuid", "bleg_uuid", "accountcode", "read_codec", "write_codec",
}

const (
	fsCallerIDName = iota
	fsCallerIDNumber
	fsDestination
	fsContext
	fsStart
	fsAnswer
	fsEnd
	fsDuration
	fsBillsec
	fsHangupCause
	fsUUID
	fsBlegUUID
	fsAccountCode
	fsMinColumns
)

type freeswitchParser struct {
	o       *Options
	inbound map[string]bool
	clock   switchClock
}

func newFreeSWITCHParser(o *Options) *freeswitchParser {
	return &freeswitchParser{o: o, inbound: contextSet(o.InboundContexts)}
}

func looksFreeSWITCH(f []string) bool {
	return len(f) >= fsMinColumns && len(f) <= len(freeswitchColumns) &&
		isSwitchTime(f[fsStart]) && isDigits(strings.TrimSpace(f[fsDuration])) && isDigits(strings.TrimSpace(f[fsBillsec]))
}

func fsCol(name string) string {
	switch name {
	case "account":
		return "accountcode"
	case "to":
		return "destination_number"
	case "from":
		return "caller_id_number"
	case "call_id":
		return "uuid"
	case "start", "answer", "end":
		return name + "_stamp"
	case "disposition":
		return "hangup_cause"
	}
	return name
}

func (p *freeswitchParser) parse(f []string, line int64) (event.CallRecord, error) {
	if len(f) < fsMinColumns || len(f) > len(freeswitchColumns) {
		return event.CallRecord{}, &LineError{Line: line, Err: errors.New("want 13 to 15 columns (FreeSWITCH CSV CDR), got " + strconv.Itoa(len(f)))}
	}
	var rec event.CallRecord
	start, err := parseSwitchTime(f[fsStart], p.o.Location)
	if err != nil {
		return rec, colErr(line, "start_stamp", err)
	}
	end, err := parseSwitchTime(f[fsEnd], p.o.Location)
	if err != nil {
		return rec, colErr(line, "end_stamp", err)
	}
	billsec, err := parseSeconds(f[fsBillsec])
	if err != nil {
		return rec, colErr(line, "billsec", err)
	}
	duration, err := parseSeconds(f[fsDuration])
	if err != nil {
		return rec, colErr(line, "duration", err)
	}
	if rec.Start, rec.End, err = p.clock.place(start, end, duration, line, "end_stamp"); err != nil {
		return rec, err
	}
	// As for Asterisk: the answer is the end less billsec, real time; the
	// answer_stamp only says the call was answered.
	answered := billsec > 0
	if a := strings.TrimSpace(f[fsAnswer]); a != "" {
		if _, err = parseSwitchTime(a, p.o.Location); err != nil {
			return rec, colErr(line, "answer_stamp", err)
		}
		answered = true
	}
	if answered {
		rec.Answer, rec.Billsec = rec.End.Add(-billsec), billsec
	}
	rec.To, rec.From = strings.TrimSpace(f[fsDestination]), strings.TrimSpace(f[fsCallerIDNumber])
	rec.Disposition = strings.TrimSpace(f[fsHangupCause])
	if p.inbound[strings.TrimSpace(f[fsContext])] {
		rec.Direction = event.Inbound
	} else {
		rec.Direction = event.Outbound
	}
	switch p.o.Account {
	case AccountCode:
		rec.Account = strings.TrimSpace(f[fsAccountCode])
	case AccountSource, AccountCallerIDNum:
		rec.Account = rec.From
	default:
		// An inbound call's caller is an outsider, not an account of the
		// tenant (and a phone number: personal data); the number it
		// dialled is the tenant's.
		if rec.Account = strings.TrimSpace(f[fsAccountCode]); rec.Account == "" {
			if rec.Direction.IsInbound() {
				rec.Account = rec.To
			} else {
				rec.Account = rec.From
			}
		}
	}
	if rec.CallID = strings.TrimSpace(f[fsUUID]); rec.CallID == "" {
		rec.CallID = digestID("fs-", f...)
	}
	if err := finish(&rec, p.o, line, fsCol); err != nil {
		return rec, err
	}
	return rec, nil
}
