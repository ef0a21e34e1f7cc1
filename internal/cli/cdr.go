package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/telguard/telguard/internal/cdr"
	"github.com/telguard/telguard/internal/config"
	"github.com/telguard/telguard/internal/engine/policy"
	"github.com/telguard/telguard/internal/event"
	"github.com/telguard/telguard/internal/store/sqlite"
)

const cdrHelp = `
Usage: telguard cdr import [flags] FILE
       telguard cdr delete --tenant T (--before DATE | --all) [--data DIR]

Reads a CDR file — Asterisk Master.csv, a FreeSWITCH CSV CDR or any CSV
with a header row — checks every line, and stores the calls as the tenant's
call history in the database (DIR/telguard.db), where replay and anomaly
training read them. Importing the same file again stores each call once:
calls are kept by (tenant, call id). FILE "-" reads standard input.

Bad lines are skipped and counted (the first few are shown on stderr with
their line and column) up to --max-bad-lines; --strict stops at the first.
A summary is printed at the end; a progress line goes to stderr every few
seconds on long files. docs/cdr.md describes every format and flag.

Exit status: 0 when the file was imported (bad lines skipped included); 1
when reading or storing failed; 2 on bad flags or a file of no known format.
Call history holds phone numbers in clear: telguard serve deletes calls
older than store.retain_history (400 days by default).

cdr delete deletes one tenant's stored call history: the calls that started
before DATE (2026-01-31, midnight UTC; an RFC 3339 time; or an age like
90d), or with --all every call of the tenant.

Examples:
  telguard cdr import --tenant demo /var/log/asterisk/cdr-csv/Master.csv
  telguard cdr import --tenant demo --format freeswitch --timezone Europe/London Master.csv
  telguard cdr import --tenant demo --map account=ext,to=dialled calls.csv
  telguard cdr delete --tenant demo --before 2026-01-01
`

// cdrFlags are the reading flags cdr import and replay share.
type cdrFlags struct {
	format, account, mapping, timeFormat, inbound, timezone *string
	strict                                                  *bool
	maxBad                                                  *int
}

func addCDRFlags(fs *flag.FlagSet, tzHelp string) *cdrFlags {
	return &cdrFlags{
		format:     fs.String("format", "auto", "CDR `format`: auto, asterisk, freeswitch or csv (a header row)"),
		account:    fs.String("account-from", "auto", "`source` of an Asterisk/FreeSWITCH record's account: auto (accountcode, else the channel's peer (Asterisk) or the caller id number, the dialled number for inbound calls (FreeSWITCH)), accountcode, channel, src, caller_id_number"),
		mapping:    fs.String("map", "", "generic CSV columns as `key=column,...` (keys: "+strings.Join(cdrKeys(), ", ")+"); unnamed keys are found by usual header names"),
		timeFormat: fs.String("time-format", "", "generic CSV time `layout`: unix, unixms, rfc3339 or a Go layout like \"02/01/2006 15:04\" (default: RFC 3339, 2006-01-02 15:04:05 or Unix seconds)"),
		inbound:    fs.String("inbound-contexts", "", "comma-separated dialplan `contexts` whose calls are inbound (default from-trunk,from-pstn,from-external,from-did,from-provider,public)"),
		timezone:   fs.String("timezone", "", tzHelp),
		strict:     fs.Bool("strict", false, "stop at the first bad line instead of skipping it"),
		maxBad:     fs.Int("max-bad-lines", cdr.DefaultMaxBadLines, "give up after this many bad lines; -1 for no limit (for none, use --strict)"),
	}
}

func cdrKeys() []string {
	ks := make([]string, 0, len(cdr.Fields)+1)
	for _, f := range cdr.Fields {
		ks = append(ks, f.Key)
	}
	return append(ks, "time_format")
}

// options turns the flags into reader options; loc is the zone to use when
// --timezone is not given.
func (c *cdrFlags) options(cmd, tenant string, loc *time.Location) (cdr.Options, error) {
	o := cdr.Options{Tenant: tenant, Location: loc, Strict: *c.strict, Account: *c.account}
	var err error
	if o.Format, err = cdr.ParseFormat(*c.format); err != nil {
		return o, usagef("%s: --format: %v", cmd, err)
	}
	switch o.Account {
	case cdr.AccountAuto, cdr.AccountCode, cdr.AccountChannel, cdr.AccountSource, cdr.AccountCallerIDNum:
	default:
		return o, usagef("%s: --account-from %q: want auto, accountcode, channel, src or caller_id_number", cmd, o.Account)
	}
	if o.Mapping, err = cdr.ParseMapping(*c.mapping); err != nil {
		return o, usagef("%s: --map: %v", cmd, err)
	}
	if *c.timeFormat != "" {
		o.Mapping.TimeFormat = *c.timeFormat
	}
	if (o.Mapping != cdr.Mapping{}) && o.Format != cdr.Auto && o.Format != cdr.Generic {
		return o, usagef("%s: --map and --time-format are for --format csv", cmd)
	}
	if *c.inbound != "" {
		for ctx := range strings.SplitSeq(*c.inbound, ",") {
			if ctx = strings.TrimSpace(ctx); ctx != "" {
				o.InboundContexts = append(o.InboundContexts, ctx)
			}
		}
	}
	if *c.timezone != "" {
		if o.Location, err = time.LoadLocation(*c.timezone); err != nil {
			return o, usagef("%s: --timezone: unknown time zone %q (want an IANA name like America/Sao_Paulo)", cmd, *c.timezone)
		}
	}
	switch {
	case *c.maxBad < 0:
		o.MaxBadLines = -1
	case *c.maxBad == 0:
		return o, usagef("%s: --max-bad-lines 0: to stop at the first bad line use --strict; -1 is no limit", cmd)
	default:
		o.MaxBadLines = *c.maxBad
	}
	return o, nil
}

// readerFlags are the flags that say how to read a file: they mean
// nothing to a command that reads the database.
var readerFlags = []string{"format", "account-from", "map", "time-format", "inbound-contexts", "timezone", "strict", "max-bad-lines"}

// setReaderFlags returns the reader flags given on the command line.
func setReaderFlags(fs *flag.FlagSet) []string {
	var set []string
	fs.Visit(func(f *flag.Flag) {
		if slices.Contains(readerFlags, f.Name) {
			set = append(set, "--"+f.Name)
		}
	})
	return set
}

// shownSkips is how many skipped lines are printed on stderr.
const shownSkips = 10

// openCDR opens FILE (or stdin for "-") and a reader over it. Skipped
// lines are reported on stderr, the first few in full.
func (e *env) openCDR(cmd, file string, o cdr.Options) (*cdr.Reader, func(), error) {
	var r io.Reader = e.stdin
	closeFn := func() {}
	if file != "-" {
		f, err := os.Open(file)
		if err != nil {
			return nil, nil, usagef("%s: %v", cmd, err)
		}
		r, closeFn = f, func() { f.Close() }
	}
	shown := 0
	o.OnSkip = func(le *cdr.LineError) {
		if shown < shownSkips {
			fmt.Fprintf(e.stderr, "%s: %s: skipped %v\n", cmd, file, le)
		} else if shown == shownSkips {
			fmt.Fprintf(e.stderr, "%s: %s: more bad lines skipped; the count is in the summary\n", cmd, file)
		}
		shown++
	}
	rd, err := cdr.NewReader(r, o)
	if err != nil {
		closeFn()
		if errors.Is(err, cdr.ErrUnknownFormat) || errors.Is(err, cdr.ErrBadMapping) || errors.Is(err, cdr.ErrBadOption) {
			return nil, nil, usagef("%s: %s: %v", cmd, file, err)
		}
		return nil, nil, fmt.Errorf("%s: %s: %w", cmd, file, err)
	}
	return rd, closeFn, nil
}

// importBatch is how many calls one transaction stores.
const importBatch = 2000

// progressEvery is how often a long import or replay reports on stderr.
const progressEvery = 3 * time.Second

// importSummary is what cdr import reports.
type importSummary struct {
	File     string    `json:"file"`
	Format   string    `json:"format"`
	Tenant   string    `json:"tenant"`
	Database string    `json:"database"`
	Calls    int64     `json:"calls"`
	New      int64     `json:"new"`
	Stored   int64     `json:"already_stored"`
	Changed  int64     `json:"changed"` // already stored with different data; the stored call was kept
	Answered int64     `json:"answered"`
	Minutes  float64   `json:"minutes"`
	From     time.Time `json:"from,omitzero"`
	To       time.Time `json:"to,omitzero"`
	Lines    int64     `json:"lines"`
	Skipped  int64     `json:"skipped_lines"`
}

func (e *env) cdr(args []string) error {
	if len(args) > 0 && args[0] == "delete" {
		return e.cdrDelete(args[1:])
	}
	if len(args) == 0 || args[0] != "import" {
		fmt.Fprint(e.stdout, strings.TrimLeft(cdrHelp, "\n"))
		if len(args) > 0 && (args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
			return nil
		}
		return usagef("cdr: want the subcommand import or delete")
	}
	const cmd = "cdr import"
	fs := e.flags(cmd, cdrHelp)
	tenant := fs.String("tenant", "", "tenant the calls belong to (required)")
	dataDir := fs.String("data", "", "data `directory` holding telguard.db (default ./data, or the config's)")
	cfgFile := fs.String("config", "", "configuration `file` whose data_dir / store.path to use")
	policyFile := fs.String("policy", "", "policy `file`: zone-less times are in its tenant's timezone unless --timezone is given")
	asJSON := fs.Bool("json", false, "print the summary as JSON")
	cf := addCDRFlags(fs, "IANA time `zone` of timestamps without one (default: the --policy tenant's, else UTC)")
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("%s: want exactly one FILE (see telguard cdr import --help)", cmd)
	}
	if *tenant == "" {
		return usagef("%s: missing --tenant", cmd)
	}
	file := fs.Arg(0)
	loc := time.UTC
	if *policyFile != "" {
		pol, err := policy.Load(*policyFile)
		if err != nil {
			return usageError{err.Error()}
		}
		t := pol.Tenants[*tenant]
		if t == nil {
			return usagef("%s: tenant %q is not in %s", cmd, *tenant, *policyFile)
		}
		loc = t.Location
	}
	o, err := cf.options(cmd, *tenant, loc)
	if err != nil {
		return err
	}
	cfg, err := loadStoreConfig(*cfgFile, *dataDir)
	if err != nil {
		return err
	}
	rd, closeFile, err := e.openCDR(cmd, file, o)
	if err != nil {
		return err
	}
	defer closeFile()
	db, err := sqlite.Open(cfg.StorePath())
	if err != nil {
		return fmt.Errorf("%s: %w", cmd, err)
	}
	defer db.Close()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	sum := importSummary{File: file, Format: string(rd.Format()), Tenant: *tenant, Database: cfg.StorePath()}
	batch := make([]event.CallRecord, 0, importBatch)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		res, err := db.PutHistory(ctx, *tenant, batch)
		if err != nil {
			return fmt.Errorf("%s: store calls: %w", cmd, err)
		}
		sum.New += int64(res.New)
		sum.Changed += int64(res.Changed)
		batch = batch[:0]
		return nil
	}
	src := &progressSource{src: rd, w: e.stderr, what: cmd + ": " + file, detail: func() string {
		st := rd.Stats()
		return fmt.Sprintf("%d lines, %d new, %d bad lines skipped", st.Lines, sum.New, st.Skipped)
	}}
	for {
		rec, err := src.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if ferr := flush(); ferr != nil {
				return ferr
			}
			return fmt.Errorf("%s: %s: %w (calls before it were stored)", cmd, file, err)
		}
		sum.Calls++
		if rec.Answered() {
			sum.Answered++
			sum.Minutes += rec.Billsec.Seconds() / 60
		}
		if sum.From.IsZero() || rec.Start.Before(sum.From) {
			sum.From = rec.Start
		}
		if rec.Start.After(sum.To) {
			sum.To = rec.Start
		}
		batch = append(batch, rec)
		if len(batch) == importBatch {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := flush(); err != nil {
		return err
	}
	st := rd.Stats()
	sum.Lines, sum.Skipped, sum.Stored = st.Lines, st.Skipped, sum.Calls-sum.New
	if *asJSON {
		out, err := json.MarshalIndent(sum, "", "  ")
		if err != nil {
			return fmt.Errorf("encode summary: %w", err)
		}
		_, err = fmt.Fprintf(e.stdout, "%s\n", out)
		return err
	}
	return writeImportSummary(e.stdout, &sum, o.Location)
}

func writeImportSummary(w io.Writer, s *importSummary, loc *time.Location) error {
	fmt.Fprintf(w, "imported %s (%s) into tenant %s in %s\n", s.File, s.Format, s.Tenant, s.Database)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	pct := 0.0
	if s.Calls > 0 {
		pct = 100 * float64(s.Answered) / float64(s.Calls)
	}
	fmt.Fprintf(tw, "  calls\t%d read, %d new, %d already stored\n", s.Calls, s.New, s.Stored)
	if s.Changed > 0 {
		fmt.Fprintf(tw, "  changed\t%d already stored with different data; the stored calls were kept\n", s.Changed)
	}
	fmt.Fprintf(tw, "  answered\t%d (%.1f%%), %.1f minutes\n", s.Answered, pct, s.Minutes)
	if s.Calls > 0 {
		fmt.Fprintf(tw, "  dates\t%s to %s (%s)\n", s.From.In(loc).Format(time.DateTime), s.To.In(loc).Format(time.DateTime), loc)
	}
	fmt.Fprintf(tw, "  lines\t%d read, %d bad lines skipped\n", s.Lines, s.Skipped)
	return tw.Flush()
}

// loadStoreConfig returns the configuration whose database a command uses:
// cfgFile's (or the defaults), with --data overriding where it is.
func loadStoreConfig(cfgFile, dataDir string) (*config.Config, error) {
	cfg := config.Default()
	if cfgFile != "" {
		var err error
		if cfg, err = config.Load(cfgFile); err != nil {
			return nil, usageError{err.Error()}
		}
	}
	if dataDir != "" {
		cfg.DataDir, cfg.Store.Path = dataDir, ""
	}
	return cfg, nil
}

// cdrDelete deletes a tenant's call history, before a date or all of it.
func (e *env) cdrDelete(args []string) error {
	const cmd = "cdr delete"
	fs := e.flags(cmd, cdrHelp)
	tenant := fs.String("tenant", "", "tenant whose call history to delete (required)")
	beforeFlag := fs.String("before", "", "delete calls that started before this `date`: 2026-01-31 (midnight UTC), an RFC 3339 time, or an age like 90d")
	all := fs.Bool("all", false, "delete every call of the tenant")
	dataDir := fs.String("data", "", "data `directory` holding telguard.db (default ./data, or the config's)")
	cfgFile := fs.String("config", "", "configuration `file` whose data_dir / store.path to use")
	if err := parse(fs, args); err != nil {
		return err
	}
	switch {
	case fs.NArg() != 0:
		return usagef("%s: unexpected argument %q", cmd, fs.Arg(0))
	case *tenant == "":
		return usagef("%s: missing --tenant", cmd)
	case *all == (*beforeFlag != ""):
		return usagef("%s: want exactly one of --before DATE and --all", cmd)
	}
	var before time.Time
	if *beforeFlag != "" {
		var err error
		if before, err = parseBefore(*beforeFlag, time.Now()); err != nil {
			return usagef("%s: --before: %v", cmd, err)
		}
	}
	cfg, err := loadStoreConfig(*cfgFile, *dataDir)
	if err != nil {
		return err
	}
	path := cfg.StorePath()
	if _, err := os.Stat(path); err != nil {
		return usagef("%s: no database at %s", cmd, path)
	}
	db, err := sqlite.Open(path)
	if err != nil {
		return fmt.Errorf("%s: %w", cmd, err)
	}
	defer db.Close()
	n, err := db.DeleteHistory(context.Background(), *tenant, before)
	if err != nil {
		return fmt.Errorf("%s: %w", cmd, err)
	}
	what := "all calls"
	if !before.IsZero() {
		what = "calls that started before " + before.UTC().Format(time.RFC3339)
	}
	_, err = fmt.Fprintf(e.stdout, "deleted %d stored calls of tenant %s (%s) from %s\n", n, *tenant, what, path)
	return err
}

// parseBefore reads cdr delete's --before: a date (midnight UTC), an RFC
// 3339 time, or an age before now like 90d.
func parseBefore(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if d, err := policy.ParseDuration(s); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("%q is not a date like 2026-01-31, an RFC 3339 time or an age like 90d", s)
}
