// Package cdr reads call detail records — Asterisk Master.csv, FreeSWITCH
// CSV CDRs and any CSV with a header row and a column mapping — into
// event.CallRecord values, one at a time, in constant memory whatever the
// file size. Every line and field is bounded; a bad line is counted and
// skipped (up to a cap) with an error naming its line and column, unless the
// reader is strict.
package cdr

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/telguard/telguard/internal/event"
)

// Format names a CDR file layout.
type Format string

// The formats. Auto detects the format from the first record.
const (
	Auto       Format = ""
	Asterisk   Format = "asterisk"   // cdr_csv Master.csv, no header
	FreeSWITCH Format = "freeswitch" // mod_cdr_csv default template, no header
	Generic    Format = "csv"        // a header row, columns named by a Mapping
)

// ParseFormat reads a --format value: asterisk, freeswitch, csv, or auto
// (or empty).
func ParseFormat(s string) (Format, error) {
	switch s {
	case "", "auto":
		return Auto, nil
	case "asterisk", "freeswitch", "csv":
		return Format(s), nil
	}
	return "", fmt.Errorf("format %q: want auto, asterisk, freeswitch or csv: %w", s, ErrUnknownFormat)
}

// Where an Asterisk record's account comes from.
const (
	AccountAuto        = "auto"        // accountcode, else the channel's peer name
	AccountCode        = "accountcode" // the accountcode column only
	AccountChannel     = "channel"     // the peer name of the channel (SIP/1001-0000abcd → 1001)
	AccountSource      = "src"         // the source (caller) number
	AccountCallerIDNum = "caller_id_number"
)

// Limits on what one file can make the reader hold.
const (
	DefaultMaxLineBytes = 64 << 10 // one record, quotes and all
	MaxFields           = 256      // columns in one record
	DefaultMaxBadLines  = 1000     // bad lines skipped before the reader gives up
	maxAccountLen       = 128
	maxNumberLen        = 128
	maxCallIDLen        = 256
	maxDispositionLen   = 64
	// maxCallLength bounds a call's duration: a record claiming more is
	// damaged (or hostile) and would distort every total.
	maxCallLength = 7 * 24 * time.Hour
)

// Options configure a Reader. The zero value reads any known format in UTC,
// skipping up to DefaultMaxBadLines bad lines.
type Options struct {
	Format Format
	// Tenant is set on every record.
	Tenant string
	// Location is the zone of timestamps that carry none (Asterisk and
	// FreeSWITCH write local time); nil means UTC.
	Location *time.Location
	// Account says where an Asterisk or FreeSWITCH record's account comes
	// from: AccountAuto (the default), AccountCode, AccountChannel
	// (Asterisk), AccountSource or AccountCallerIDNum (FreeSWITCH).
	Account string
	// InboundContexts are dialplan contexts whose calls are inbound (calls
	// to the tenant, not by it). Nil means the usual names: from-trunk,
	// from-pstn, from-external, from-did (Asterisk) and public (FreeSWITCH).
	InboundContexts []string
	// Mapping names the columns of a generic CSV; empty fields are found
	// by their usual header names.
	Mapping Mapping
	// Strict makes the first bad line an error instead of a skip.
	Strict bool
	// MaxBadLines is how many bad lines are skipped before Next fails with
	// ErrTooManyBadLines; 0 means DefaultMaxBadLines, negative means no cap.
	MaxBadLines int
	// MaxLineBytes bounds one record; 0 means DefaultMaxLineBytes.
	MaxLineBytes int
	// OnSkip, when set, is told about every skipped line.
	OnSkip func(*LineError)
	// Now tells the time when the reader starts, against which a start
	// in the future is refused; nil means time.Now.
	Now func() time.Time

	latest time.Time // the latest start accepted: Now + a day
}

// EarliestStart is the earliest call start a reader accepts: a CDR from
// before it is a damaged or zeroed clock, not history.
var EarliestStart = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// FutureSlack is how far after the reader's Now a call may start: clocks
// and zones differ, but a call from next week is a damaged record, and one
// far in the future would stall replay's reordering and overflow the
// store's times.
const FutureSlack = 24 * time.Hour

// Stats counts what a Reader has read so far.
type Stats struct {
	Format  Format `json:"format"`
	Lines   int64  `json:"lines"`   // physical lines read, blank ones included
	Records int64  `json:"records"` // call records returned
	Skipped int64  `json:"skipped"` // bad lines skipped
}

// LineError is a bad line: its number, the column at fault when one is, and
// what is wrong. It wraps ErrBadRecord.
type LineError struct {
	Line   int64
	Column string // column name; "" for a problem with the whole line
	Err    error
}

func (e *LineError) Error() string {
	if e.Column != "" {
		return fmt.Sprintf("line %d: column %s: %v", e.Line, e.Column, e.Err)
	}
	return fmt.Sprintf("line %d: %v", e.Line, e.Err)
}

// Unwrap returns the cause and ErrBadRecord.
func (e *LineError) Unwrap() []error { return []error{e.Err, ErrBadRecord} }

// ErrBadRecord is wrapped by every LineError: a line that is not a call
// record of the format.
var ErrBadRecord = errors.New("bad record")

// ErrTooManyBadLines is returned by Next once more lines than
// Options.MaxBadLines were bad: the file is probably not of the format.
var ErrTooManyBadLines = errors.New("too many bad lines")

// ErrUnknownFormat is returned for a format name that is not known, or by
// NewReader when auto-detection cannot tell what a file is.
var ErrUnknownFormat = errors.New("unknown CDR format")

// ErrBadOption is returned by NewReader for an option the file's format
// does not have, such as an account source it cannot honour: refused
// rather than silently read another way.
var ErrBadOption = errors.New("option does not apply to the format")

// ErrBadMapping is returned for a generic CSV mapping that does not parse or
// that names a column the header lacks.
var ErrBadMapping = errors.New("bad column mapping")

// parser turns one record's fields into a call record.
type parser interface {
	parse(fields []string, line int64) (event.CallRecord, error)
}

// Reader reads call records from a CDR file. It is not safe for concurrent
// use.
type Reader struct {
	o      Options
	sc     *scanner
	p      parser
	stats  Stats
	err    error // sticky
	maxBad int64
	// pending is the first record, read to detect the format, not yet
	// returned.
	pending     []string
	pendingLine int64
}

// NewReader returns a Reader of r. With Format Auto it reads the first
// record to tell the format; an empty file is then ErrUnknownFormat. A
// generic CSV's header is read here, so a mapping that names a missing
// column fails now.
func NewReader(r io.Reader, o Options) (*Reader, error) {
	if o.MaxLineBytes <= 0 {
		o.MaxLineBytes = DefaultMaxLineBytes
	}
	if o.Location == nil {
		o.Location = time.UTC
	}
	if o.Account == "" {
		o.Account = AccountAuto
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	o.latest = o.Now().Add(FutureSlack)
	rd := &Reader{o: o, sc: newScanner(r, o.MaxLineBytes)}
	switch {
	case o.MaxBadLines == 0:
		rd.maxBad = DefaultMaxBadLines
	case o.MaxBadLines < 0:
		rd.maxBad = -1
	default:
		rd.maxBad = int64(o.MaxBadLines)
	}
	if err := rd.start(); err != nil {
		return nil, err
	}
	rd.stats.Format = rd.o.Format
	return rd, nil
}

// Stats returns the counts so far.
func (rd *Reader) Stats() Stats {
	s := rd.stats
	s.Lines = rd.sc.line
	return s
}

// Format returns the format being read (detected, when Options said Auto).
func (rd *Reader) Format() Format { return rd.o.Format }

// Next returns the next call record, or io.EOF after the last. A bad line is
// skipped (and counted) unless the reader is strict, when it is returned as
// a *LineError; past the cap of bad lines Next returns an error wrapping
// ErrTooManyBadLines. An error other than a skipped line is final.
func (rd *Reader) Next() (event.CallRecord, error) {
	if rd.err != nil {
		return event.CallRecord{}, rd.err
	}
	for {
		fields, line, err := rd.nextFields()
		if err != nil {
			var le *LineError
			if errors.As(err, &le) {
				if serr := rd.skip(le); serr != nil {
					rd.err = serr
					return event.CallRecord{}, serr
				}
				continue
			}
			rd.err = err
			return event.CallRecord{}, err
		}
		rec, err := rd.p.parse(fields, line)
		if err != nil {
			le, ok := err.(*LineError)
			if !ok {
				le = &LineError{Line: line, Err: err}
			}
			if serr := rd.skip(le); serr != nil {
				rd.err = serr
				return event.CallRecord{}, serr
			}
			continue
		}
		rec.Tenant = rd.o.Tenant
		rd.stats.Records++
		return rec, nil
	}
}

// skip counts a bad line, or returns the error that ends reading.
func (rd *Reader) skip(le *LineError) error {
	if rd.o.Strict {
		return le
	}
	rd.stats.Skipped++
	if rd.o.OnSkip != nil {
		rd.o.OnSkip(le)
	}
	if rd.maxBad >= 0 && rd.stats.Skipped > rd.maxBad {
		return fmt.Errorf("read CDR: %d bad lines, the last %v: %w", rd.stats.Skipped, le, ErrTooManyBadLines)
	}
	return nil
}

// nextFields returns the next non-blank record's fields.
func (rd *Reader) nextFields() ([]string, int64, error) {
	if rd.pending != nil {
		f, l := rd.pending, rd.pendingLine
		rd.pending = nil
		return f, l, nil
	}
	return rd.sc.next()
}

// start reads the first record when it is needed to detect the format or
// is a header, and sets the parser.
func (rd *Reader) start() error {
	o := &rd.o
	if o.Format != Auto && o.Format != Asterisk && o.Format != FreeSWITCH && o.Format != Generic {
		return fmt.Errorf("format %q: %w", o.Format, ErrUnknownFormat)
	}
	var (
		first      []string
		line       int64
		undetected int64 // the first line auto-detection could not tell
	)
	// The first record decides; a first line too long, with a stray
	// quote, or with a damaged start time is no evidence, so a few are
	// tried.
	for tries := 0; ; tries++ {
		f, l, err := rd.sc.next()
		if errors.Is(err, io.EOF) {
			if o.Format == Auto {
				if undetected > 0 {
					return neitherFormat(undetected)
				}
				return fmt.Errorf("detect format: the file holds no records: %w", ErrUnknownFormat)
			}
			if err := checkFormatOptions(o); err != nil {
				return err
			}
			rd.setParser(nil)
			return nil
		}
		var le *LineError
		if errors.As(err, &le) && tries < maxDetectTries && !o.Strict {
			if serr := rd.skip(le); serr != nil {
				return serr
			}
			continue
		}
		if err != nil {
			return err
		}
		if o.Format == Auto {
			switch {
			case looksAsterisk(f):
				o.Format = Asterisk
			case looksFreeSWITCH(f):
				o.Format = FreeSWITCH
			case looksHeader(f) || o.Mapping != (Mapping{}):
				o.Format = Generic
			default:
				if undetected == 0 {
					undetected = l
				}
				if tries < maxDetectTries && !o.Strict {
					if serr := rd.skip(&LineError{Line: l, Err: errors.New("not a record of a known format (bad start time?)")}); serr != nil {
						return serr
					}
					continue
				}
				return neitherFormat(undetected)
			}
		}
		first, line = f, l
		break
	}
	if err := checkFormatOptions(o); err != nil {
		return err
	}
	switch o.Format {
	case Generic:
		p, err := newGenericParser(o, first, line)
		if err != nil {
			return err
		}
		rd.p = p
		return nil
	case Asterisk:
		if !looksAsterisk(first) && looksHeader(first) {
			first = nil // a header someone added
		}
	case FreeSWITCH:
		if !looksFreeSWITCH(first) && looksHeader(first) {
			first = nil
		}
	}
	rd.setParser(first)
	rd.pendingLine = line
	return nil
}

// checkFormatOptions refuses options the format would ignore.
func checkFormatOptions(o *Options) error {
	ok := map[Format][]string{
		Asterisk:   {AccountAuto, AccountCode, AccountChannel, AccountSource},
		FreeSWITCH: {AccountAuto, AccountCode, AccountSource, AccountCallerIDNum},
		Generic:    {AccountAuto},
	}[o.Format]
	if !slices.Contains(ok, o.Account) {
		if o.Format == Generic {
			return fmt.Errorf("account source %q: a generic CSV's account is its account column (map it with account=COLUMN): %w", o.Account, ErrBadOption)
		}
		return fmt.Errorf("account source %q: %s records take one of %s: %w", o.Account, o.Format, strings.Join(ok, ", "), ErrBadOption)
	}
	if o.Format == Generic && o.InboundContexts != nil {
		return fmt.Errorf("inbound contexts: a generic CSV has no dialplan context (map its direction column with direction=COLUMN): %w", ErrBadOption)
	}
	return nil
}

// maxDetectTries is how many lines auto-detection reads before it gives
// up on a file.
const maxDetectTries = 10

func neitherFormat(line int64) error {
	return fmt.Errorf("detect format: line %d is neither an Asterisk Master.csv record (16-21 columns), a FreeSWITCH CSV CDR (13-15 columns) nor a header row naming account, to and start, and neither are the lines after it; pass --format: %w",
		line, ErrUnknownFormat)
}

func (rd *Reader) setParser(first []string) {
	switch rd.o.Format {
	case Asterisk:
		rd.p = newAsteriskParser(&rd.o)
	case FreeSWITCH:
		rd.p = newFreeSWITCHParser(&rd.o)
	default:
		rd.p = &genericParser{o: &rd.o, idx: map[string]int{}}
	}
	rd.pending = first
}
