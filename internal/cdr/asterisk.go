package cdr

import (
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/telguard/telguard/internal/event"
)

// asteriskColumns is cdr_csv's column order: 16 columns, then uniqueid and
// userfield when loguniqueid and loguserfield are on (the default), then
// peeraccount, linkedid and sequence with newcdrcolumns.
var asteriskColumns = []string{
	"accountcode", "src", "dst", "dcontext", "clid", "channel", "dstchannel", "lastapp", "lastdata",
	"start", "answer", "end", "duration", "billsec", "disposition", "amaflags",
	"uniqueid", "userfield", "peeraccount", "linkedid", "sequence",
}

const (
	astAccountCode = iota
	astSrc
	astDst
	astDContext
	astCLID
	astChannel
	astDstChannel
	astLastApp
	astLastData
	astStart
	astAnswer
	astEnd
	astDuration
	astBillsec
	astDisposition
	astAMAFlags
	astUniqueID
	astUserField
	astPeerAccount
	astLinkedID
	astSequence
)

// defaultInbound are the dialplan contexts whose calls are inbound when the
// options name none.
var defaultInbound = []string{"from-trunk", "from-pstn", "from-external", "from-did", "from-provider", "public"}

type asteriskParser struct {
	o       *Options
	inbound map[string]bool
	clock   switchClock
}

func newAsteriskParser(o *Options) *asteriskParser {
	return &asteriskParser{o: o, inbound: contextSet(o.InboundContexts)}
}

func contextSet(names []string) map[string]bool {
	if names == nil {
		names = defaultInbound
	}
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}

// looksAsterisk reports whether fields are a Master.csv record.
func looksAsterisk(f []string) bool {
	return len(f) >= 16 && len(f) <= len(asteriskColumns) &&
		isSwitchTime(f[astStart]) && isDigits(strings.TrimSpace(f[astDuration])) && isDigits(strings.TrimSpace(f[astBillsec]))
}

func isSwitchTime(s string) bool {
	_, err := time.Parse(switchLayout, s)
	return err == nil
}

func astCol(name string) string {
	switch name {
	case "account":
		return "accountcode"
	case "to":
		return "dst"
	case "from":
		return "src"
	case "call_id":
		return "uniqueid"
	}
	return name
}

func (p *asteriskParser) parse(f []string, line int64) (event.CallRecord, error) {
	if len(f) < 16 || len(f) > len(asteriskColumns) {
		return event.CallRecord{}, &LineError{Line: line, Err: errors.New("want 16 to 21 columns (Asterisk Master.csv), got " + strconv.Itoa(len(f)))}
	}
	var rec event.CallRecord
	start, err := parseSwitchTime(f[astStart], p.o.Location)
	if err != nil {
		return rec, colErr(line, "start", err)
	}
	end, err := parseSwitchTime(f[astEnd], p.o.Location)
	if err != nil {
		return rec, colErr(line, "end", err)
	}
	billsec, err := parseSeconds(f[astBillsec])
	if err != nil {
		return rec, colErr(line, "billsec", err)
	}
	duration, err := parseSeconds(f[astDuration])
	if err != nil {
		return rec, colErr(line, "duration", err)
	}
	if rec.Start, rec.End, err = p.clock.place(start, end, duration, line, "end"); err != nil {
		return rec, err
	}
	rec.Disposition = strings.TrimSpace(f[astDisposition])
	if billsec > 0 || rec.Disposition == "ANSWERED" {
		// The answer column is checked, but the answer is placed from the
		// end, as the end is from the start: billsec is real time, the
		// column a wall-clock reading.
		if a := strings.TrimSpace(f[astAnswer]); a != "" {
			if _, err = parseSwitchTime(a, p.o.Location); err != nil {
				return rec, colErr(line, "answer", err)
			}
		}
		rec.Answer, rec.Billsec = rec.End.Add(-billsec), billsec
	}
	rec.To, rec.From = strings.TrimSpace(f[astDst]), strings.TrimSpace(f[astSrc])
	switch p.o.Account {
	case AccountCode:
		rec.Account = strings.TrimSpace(f[astAccountCode])
	case AccountChannel:
		rec.Account = channelPeer(f[astChannel])
	case AccountSource:
		rec.Account = rec.From
	default:
		if rec.Account = strings.TrimSpace(f[astAccountCode]); rec.Account == "" {
			rec.Account = channelPeer(f[astChannel])
		}
	}
	if p.inbound[strings.TrimSpace(f[astDContext])] {
		rec.Direction = event.Inbound
	} else {
		rec.Direction = event.Outbound
	}
	switch {
	case len(f) > astSequence && f[astUniqueID] != "":
		rec.CallID = f[astUniqueID] + "-" + f[astSequence]
	case len(f) > astUniqueID && f[astUniqueID] != "":
		// Before Asterisk 12 one channel could write several records (a
		// Dial to several numbers in turn) under one uniqueid.
		rec.CallID = f[astUniqueID] + "-" + digestID("", f[astStart], f[astDst], f[astDstChannel])[:8]
	default:
		rec.CallID = digestID("ast-", f...)
	}
	if rec.Account == "" {
		c := "accountcode"
		switch p.o.Account {
		case AccountChannel:
			c = "channel"
		case AccountSource:
			c = "src"
		}
		return rec, colErr(line, c, errors.New("no account: accountcode is empty and the channel names no peer"))
	}
	if err := finish(&rec, p.o, line, astCol); err != nil {
		return rec, err
	}
	return rec, nil
}

// channelPeer returns the peer of a channel name: SIP/1001-0000abcd → 1001,
// PJSIP/alice-00000002 → alice, Local/1001@from-internal-0000;1 → 1001.
// It returns "" for a channel without a technology prefix.
func channelPeer(ch string) string {
	_, rest, ok := strings.Cut(strings.TrimSpace(ch), "/")
	if !ok {
		return ""
	}
	if at := strings.IndexByte(rest, '@'); at >= 0 {
		return rest[:at]
	}
	if dash := strings.LastIndexByte(rest, '-'); dash > 0 {
		return rest[:dash]
	}
	return rest
}
