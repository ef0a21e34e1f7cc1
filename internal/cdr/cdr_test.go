package cdr

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/telguard/telguard/internal/event"
)

var saoPaulo = mustZone("America/Sao_Paulo")

func mustZone(name string) *time.Location {
	l, err := time.LoadLocation(name)
	if err != nil {
		panic(err)
	}
	return l
}

// summary is what a test checks of a record, in one readable line.
func summary(r event.CallRecord) string {
	ans := "-"
	if r.Answered() {
		ans = r.Answer.UTC().Format("15:04:05")
	}
	ip := ""
	if r.SourceIP.IsValid() {
		ip = " ip=" + r.SourceIP.String()
	}
	return fmt.Sprintf("%s %s→%s %s %s start=%s answer=%s end=%s billsec=%s %s%s",
		r.Tenant, r.Account, r.To, r.Direction, r.From, r.Start.UTC().Format(time.DateTime), ans,
		r.End.UTC().Format("15:04:05"), r.Billsec, r.Disposition, ip)
}

type readResult struct {
	records []event.CallRecord
	skipped []string
	stats   Stats
	err     error
}

func readAll(t *testing.T, r io.Reader, o Options) readResult {
	t.Helper()
	var res readResult
	o.OnSkip = func(le *LineError) { res.skipped = append(res.skipped, le.Error()) }
	rd, err := NewReader(r, o)
	if err != nil {
		res.err = err
		return res
	}
	for {
		rec, err := rd.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			res.err = err
			break
		}
		res.records = append(res.records, rec)
	}
	res.stats = rd.Stats()
	return res
}

func openTestdata(t *testing.T, name string) *os.File {
	t.Helper()
	f, err := os.Open("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func TestSampleFiles(t *testing.T) {
	tests := []struct {
		file    string
		o       Options
		format  Format
		want    []string
		skipped []string
		lines   int64
	}{
		{
			file: "asterisk_master.csv", o: Options{Tenant: "demo", Location: saoPaulo}, format: Asterisk,
			want: []string{
				"demo 1001→0044163296012 outbound 1001 start=2026-03-02 12:15:02 answer=12:15:09 end=12:17:41 billsec=2m32s ANSWERED",
				"demo 1002→01133334444 outbound 1002 start=2026-03-02 12:20:00 answer=- end=12:20:31 billsec=0s NO ANSWER",
				"demo sales→011987654321 outbound 1003 start=2026-03-02 12:25:10 answer=- end=12:25:12 billsec=0s BUSY",
				"demo provider→s inbound +5511987654334 start=2026-03-02 12:30:00 answer=12:30:04 end=12:31:00 billsec=56s ANSWERED",
				"demo 1004→00881612345678 outbound 1004 start=2026-03-03 02:10:00 answer=02:10:05 end=02:12:05 billsec=2m0s ANSWERED",
			},
			skipped: []string{
				"line 5: column start: not a time like 2026-03-02 14:05:09",
				"line 7: column accountcode: no account: accountcode is empty and the channel names no peer",
			},
			lines: 8,
		},
		{
			file: "asterisk_master.csv", o: Options{Format: Asterisk, Account: AccountSource}, format: Asterisk,
			want: []string{
				" 1001→0044163296012 outbound 1001 start=2026-03-02 09:15:02 answer=09:15:09 end=09:17:41 billsec=2m32s ANSWERED",
				" 1002→01133334444 outbound 1002 start=2026-03-02 09:20:00 answer=- end=09:20:31 billsec=0s NO ANSWER",
				" 1003→011987654321 outbound 1003 start=2026-03-02 09:25:10 answer=- end=09:25:12 billsec=0s BUSY",
				" +5511987654334→s inbound +5511987654334 start=2026-03-02 09:30:00 answer=09:30:04 end=09:31:00 billsec=56s ANSWERED",
				" 1004→00881612345678 outbound 1004 start=2026-03-02 23:10:00 answer=23:10:05 end=23:12:05 billsec=2m0s ANSWERED",
			},
			skipped: []string{
				"line 5: column start: not a time like 2026-03-02 14:05:09",
				"line 7: column src: no account", // src is empty
			},
			lines: 8,
		},
		{
			file: "freeswitch_master.csv", o: Options{Tenant: "demo", Location: saoPaulo}, format: FreeSWITCH,
			want: []string{
				"demo 1001→0044163296012 outbound 1001 start=2026-03-02 12:15:02 answer=12:15:09 end=12:17:41 billsec=2m32s NORMAL_CLEARING",
				"demo 1002→01133334444 outbound 1002 start=2026-03-02 12:20:00 answer=- end=12:20:31 billsec=0s NO_ANSWER",
				"demo 1001→1001 inbound +5511987654334 start=2026-03-02 12:30:00 answer=12:30:04 end=12:31:00 billsec=56s NORMAL_CLEARING",
				"demo sales→011987654321 outbound 1003 start=2026-03-02 12:25:10 answer=- end=12:25:12 billsec=0s USER_BUSY",
			},
			skipped: []string{"line 5: column end_stamp: end 2026-03-02T09:39:00-03:00 is before start 2026-03-02T09:40:00-03:00"},
			lines:   5,
		},
		{
			file: "generic_calls.csv", o: Options{Tenant: "demo", Location: saoPaulo}, format: Generic,
			want: []string{
				"demo 1001→+441632960123 outbound  start=2026-03-02 12:15:02 answer=12:15:09 end=12:17:41 billsec=2m32s ANSWERED ip=192.0.2.10",
				"demo 1002→+13333344444 outbound  start=2026-03-02 12:20:00 answer=- end=12:20:31 billsec=0s NO ANSWER ip=192.0.2.11",
				"demo 1001→+5511987654334 inbound  start=2026-03-02 12:30:00 answer=12:30:04 end=12:31:00 billsec=56s ANSWERED ip=198.51.100.7",
				"demo 1003→+44 7700 900124 outbound  start=2026-03-02 12:26:00 answer=12:26:03 end=12:26:30 billsec=27s ANSWERED",
			},
			skipped: []string{"line 5: column direction: neither inbound nor outbound"},
			lines:   6,
		},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/%s", tt.file, tt.o.Format), func(t *testing.T) {
			res := readAll(t, openTestdata(t, tt.file), tt.o)
			if res.err != nil {
				t.Fatal(res.err)
			}
			var got []string
			for _, r := range res.records {
				got = append(got, summary(r))
			}
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("records:\n got %s\nwant %s", strings.Join(got, "\n     "), strings.Join(tt.want, "\n     "))
			}
			if len(res.skipped) != len(tt.skipped) {
				t.Fatalf("skipped %q, want %q", res.skipped, tt.skipped)
			}
			for i := range tt.skipped {
				if !strings.HasPrefix(res.skipped[i], tt.skipped[i]) {
					t.Errorf("skipped line %d: %q, want %q", i, res.skipped[i], tt.skipped[i])
				}
			}
			want := Stats{Format: tt.format, Lines: tt.lines, Records: int64(len(tt.want)), Skipped: int64(len(tt.skipped))}
			if res.stats != want {
				t.Errorf("stats %+v, want %+v", res.stats, want)
			}
		})
	}
}

func TestCallIDs(t *testing.T) {
	res := readAll(t, openTestdata(t, "asterisk_master.csv"), Options{})
	ids := map[string]bool{}
	for _, r := range res.records {
		if ids[r.CallID] {
			t.Fatalf("call id %s given twice", r.CallID)
		}
		ids[r.CallID] = true
	}
	if id := res.records[0].CallID; !strings.HasPrefix(id, "1772453702.1-") || len(id) != len("1772453702.1-")+8 {
		t.Errorf("Asterisk call id %q, want the uniqueid and a digest", id)
	}
	again := readAll(t, openTestdata(t, "asterisk_master.csv"), Options{})
	for i := range res.records {
		if res.records[i].CallID != again.records[i].CallID {
			t.Fatal("call ids differ between two reads of one file: an import would not be idempotent")
		}
	}
	// Asterisk 12+ with newcdrcolumns: one channel's records share the
	// uniqueid and differ by sequence.
	line := `"","1001","0044163296012","from-internal","","SIP/1001-1","","Dial","","2026-03-02 09:15:02","","2026-03-02 09:15:09",7,0,"NO ANSWER","DOCUMENTATION","1772453702.1","","","1772453702.1","4"` + "\n"
	r := readAll(t, strings.NewReader(line), Options{})
	if len(r.records) != 1 || r.records[0].CallID != "1772453702.1-4" {
		t.Fatalf("newcdrcolumns record: %+v %v", r.records, r.err)
	}
	// FreeSWITCH: the uuid.
	fs := readAll(t, openTestdata(t, "freeswitch_master.csv"), Options{})
	if fs.records[0].CallID != "6f1c0c1e-5e4b-4a0e-9d7c-0b7c3f1a0001" {
		t.Errorf("FreeSWITCH call id %q, want the uuid", fs.records[0].CallID)
	}
	// Generic without a call id column: a digest of the line.
	csv := "account,to,start,billsec\n1001,+441632960123,2026-03-02T09:00:00Z,30\n1001,+441632960123,2026-03-02T09:05:00Z,30\n"
	g := readAll(t, strings.NewReader(csv), Options{})
	if len(g.records) != 2 || g.records[0].CallID == g.records[1].CallID || !strings.HasPrefix(g.records[0].CallID, "csv-") {
		t.Fatalf("generic digests: %+v", g.records)
	}
}

func TestChannelPeer(t *testing.T) {
	for in, want := range map[string]string{
		"SIP/1001-0000abcd":                   "1001",
		"PJSIP/alice-00000002":                "alice",
		"PJSIP/my-trunk-00000003":             "my-trunk",
		"IAX2/1001-12345":                     "1001",
		"Local/1004@from-internal-00000001;1": "1004",
		"SIP/1001":                            "1001",
		"":                                    "",
		"dsp":                                 "",
	} {
		if got := channelPeer(in); got != want {
			t.Errorf("channelPeer(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestStrictStopsAtFirstBadLine(t *testing.T) {
	rd, err := NewReader(openTestdata(t, "asterisk_master.csv"), Options{Strict: true})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		_, err = rd.Next()
		if err != nil {
			break
		}
		n++
	}
	var le *LineError
	if !errors.As(err, &le) || le.Line != 5 || le.Column != "start" || !errors.Is(err, ErrBadRecord) {
		t.Fatalf("strict: %v after %d records, want line 5 column start", err, n)
	}
	if n != 4 {
		t.Fatalf("strict returned %d records before the bad line, want 4", n)
	}
	if _, again := rd.Next(); again != err {
		t.Fatalf("Next after the error: %v, want the same error", again)
	}
}

func TestBadLineCap(t *testing.T) {
	var b strings.Builder
	b.WriteString("account,to,start,end\n")
	for i := range 20 {
		fmt.Fprintf(&b, "1001,+441632960123,yesterday %d,2026-03-02T09:00:00Z\n", i)
	}
	res := readAll(t, strings.NewReader(b.String()), Options{MaxBadLines: 5})
	if !errors.Is(res.err, ErrTooManyBadLines) || len(res.skipped) != 6 {
		t.Fatalf("cap 5: %v after %d skipped, want ErrTooManyBadLines after 6", res.err, len(res.skipped))
	}
	res = readAll(t, strings.NewReader(b.String()), Options{MaxBadLines: -1})
	if res.err != nil || len(res.skipped) != 20 {
		t.Fatalf("no cap: %v, %d skipped", res.err, len(res.skipped))
	}
}

func TestLimits(t *testing.T) {
	good := `"","1001","0044163296012","from-internal","","SIP/1001-1","","Dial","","2026-03-02 09:15:02","","2026-03-02 09:15:09",7,0,"NO ANSWER","DOCUMENTATION","u1",""`
	long := `"","1001","0044163296012","from-internal","` + strings.Repeat("x", 2000) + `","SIP/1001-1","","Dial","","2026-03-02 09:15:02","","2026-03-02 09:15:09",7,0,"NO ANSWER","DOCUMENTATION","u2",""`
	wide := strings.Repeat("a,", MaxFields+5) + "a"
	longAccount := `"` + strings.Repeat("9", 200) + `","1001","0044163296012","from-internal","","SIP/1001-1","","Dial","","2026-03-02 09:15:02","","2026-03-02 09:15:09",7,0,"NO ANSWER","DOCUMENTATION","u3",""`
	longCall := `"","1001","0044163296012","from-internal","","SIP/1001-1","","Dial","","2026-03-02 09:15:02","2026-03-02 09:15:09","2026-03-12 09:15:02",864000,0,"ANSWERED","DOCUMENTATION","u4",""`
	in := strings.Join([]string{good, long, wide, longAccount, longCall, good}, "\n") + "\n"
	res := readAll(t, strings.NewReader(in), Options{Format: Asterisk, MaxLineBytes: 1024})
	if res.err != nil {
		t.Fatal(res.err)
	}
	want := []string{
		"line 2: longer than 1024 bytes",
		"line 3: more than 256 columns",
		"line 4: column accountcode: longer than 128 bytes",
		"line 5: column duration: seconds out of range (0 to 604800)",
	}
	if strings.Join(res.skipped, "\n") != strings.Join(want, "\n") || len(res.records) != 2 {
		t.Fatalf("skipped:\n%s\nwant:\n%s\nrecords %d", strings.Join(res.skipped, "\n"), strings.Join(want, "\n"), len(res.records))
	}
}

func TestQuotedNewlinesAndHeader(t *testing.T) {
	in := "accountcode,src,dst,dcontext,clid,channel,dstchannel,lastapp,lastdata,start,answer,end,duration,billsec,disposition,amaflags,uniqueid,userfield\r\n" +
		`"","1001","0044163296012","from-internal","""Alice` + "\r\n" + `Silva"" <1001>","SIP/1001-1","","Dial","a,b","2026-03-02 09:15:02","","2026-03-02 09:15:09",7,0,"NO ANSWER","DOCUMENTATION","u1",""` + "\r\n" +
		`"","1002","0044163296013","from-internal","","SIP/1002-1","","Dial","","2026-03-02 09:16:02","","2026-03-02 09:16:09",7,0,"NO ANSWER","DOCUMENTATION","u2",""` + "\r\n" +
		`"","1003","0044163296013","from-internal","unclosed,SIP/1003-1` + "\n"
	res := readAll(t, strings.NewReader(in), Options{Format: Asterisk})
	if res.err != nil {
		t.Fatal(res.err)
	}
	if len(res.records) != 2 || res.records[0].Account != "1001" || res.records[1].Account != "1002" {
		t.Fatalf("records %+v", res.records)
	}
	if len(res.skipped) != 1 || !strings.HasPrefix(res.skipped[0], "line 5: column 5: quoted field not closed") {
		t.Fatalf("skipped %q", res.skipped)
	}
	if res.stats.Lines != 5 {
		t.Fatalf("lines %d, want 5 (a quoted newline is a line)", res.stats.Lines)
	}
}

func TestDetection(t *testing.T) {
	for _, tt := range []struct {
		in   string
		o    Options
		want error
	}{
		{"", Options{}, ErrUnknownFormat},
		{"\n\n", Options{}, ErrUnknownFormat},
		{"hello,world\n1,2\n", Options{}, ErrUnknownFormat},
		{"account,to\n1001,+441632960123\n", Options{}, ErrBadMapping}, // a header without start
		{"ext,num,when,secs\n", Options{Mapping: Mapping{Account: "ext", To: "num", Start: "when", Billsec: "nope"}}, ErrBadMapping},
		{"ext,num,when,secs\n", Options{Mapping: Mapping{Account: "ext", To: "num", Start: "when", Billsec: "secs"}}, nil},
		{"x", Options{Format: "cdr"}, ErrUnknownFormat},
	} {
		_, err := NewReader(strings.NewReader(tt.in), tt.o)
		if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
			t.Errorf("NewReader(%q, %+v) = %v, want %v", tt.in, tt.o, err, tt.want)
		}
	}
	// The error of a header that lacks columns says which.
	_, err := NewReader(strings.NewReader("account,to\n"), Options{})
	if err == nil || !strings.Contains(err.Error(), "no column for start, end, duration or billsec") {
		t.Errorf("missing columns: %v", err)
	}
}

func TestGenericMapping(t *testing.T) {
	m, err := ParseMapping("account=Ext , to=Number,start=When,duration=Secs,time_format=02/01/2006 15:04")
	if err != nil {
		t.Fatal(err)
	}
	in := "Ext,Number,When,Secs\n2001,+447700900123,02/03/2026 21:00,95\n2001,+447700900124,02/03/2026 21:05,0\n"
	res := readAll(t, strings.NewReader(in), Options{Mapping: m, Location: saoPaulo})
	if res.err != nil || len(res.records) != 2 {
		t.Fatalf("%v %+v %q", res.err, res.records, res.skipped)
	}
	r := res.records[0]
	if r.Account != "2001" || !r.Start.Equal(time.Date(2026, 3, 3, 0, 0, 0, 0, time.UTC)) || r.Billsec != 95*time.Second || !r.Answered() {
		t.Fatalf("duration-only record: %s", summary(r))
	}
	if res.records[1].Answered() {
		t.Fatalf("a zero-duration call came back answered: %s", summary(res.records[1]))
	}
	for _, bad := range []string{"account", "account=", "acount=x", "to=a,to=b"} {
		if _, err := ParseMapping(bad); !errors.Is(err, ErrBadMapping) {
			t.Errorf("ParseMapping(%q) = %v, want ErrBadMapping", bad, err)
		}
	}
}

func TestParseTime(t *testing.T) {
	want := time.Date(2026, 3, 2, 12, 15, 2, 0, time.UTC)
	for _, s := range []string{
		"2026-03-02T09:15:02-03:00", "2026-03-02T12:15:02Z", "2026-03-02 09:15:02", "2026-03-02T09:15:02",
		"2026-03-02 12:15:02 +0000", "1772453702", "1772453702000", "1772453702.000",
	} {
		got, err := parseTime(s, "", saoPaulo)
		if err != nil || !got.Equal(want) {
			t.Errorf("parseTime(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
}

// TestSwitchTime checks the fast path against time.ParseInLocation; both
// pick one instant for a reading in a repeated hour, which TestDST covers.
func TestSwitchTime(t *testing.T) {
	for _, s := range []string{"2026-03-02 14:05:09", "2024-02-29 00:00:00", "2026-12-31 23:59:59", "2026-04-31 10:00:00", "2026-13-01 00:00:00", "2026-03-02 24:00:00", "2026-03-02 14:05:60", "2026-03-02T14:05:09", "2026-3-2 14:05:09", "+026-03-02 14:05:09", "2025-02-29 00:00:00"} {
		want, wantErr := time.ParseInLocation(switchLayout, s, saoPaulo)
		got, err := parseSwitchTime(s, saoPaulo)
		if (err != nil) != (wantErr != nil) || !got.Equal(want) {
			t.Errorf("parseSwitchTime(%q) = %v, %v; time.ParseInLocation says %v, %v", s, got, err, want, wantErr)
		}
	}
}

func TestBackslashEscapedQuote(t *testing.T) {
	in := `"Bob \"The Boss\" Smith","1002","01133334444","default","2026-03-02 09:20:00","","2026-03-02 09:20:31","31","0","NO_ANSWER","uuid-1","","1002","PCMA","PCMA"` + "\n" +
		`"C:\","1003","01133334444","default","2026-03-02 09:21:00","","2026-03-02 09:21:31","31","0","NO_ANSWER","uuid-2","","1003","PCMA","PCMA"` + "\n"
	rd, err := NewReader(strings.NewReader(in), Options{Strict: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"1002", "1003"} {
		r, err := rd.Next()
		if err != nil || r.Account != want {
			t.Fatalf("got %+v, %v; want account %s", r, err, want)
		}
	}
	s := newScanner(strings.NewReader(`"Bob \"The Boss\" Smith","C:\"`+"\n"), 1024)
	f, _, err := s.next()
	if err != nil || len(f) != 2 || f[0] != `Bob "The Boss" Smith` || f[1] != `C:\` {
		t.Fatalf("fields %q, %v", f, err)
	}
}

// TestGenericRowNumbersDoNotCollide: billing exports number their rows
// 1..N in every file. January's row 1 and February's row 1 are different
// calls and must get different call ids, or importing February after
// January would store nothing of it.
func TestGenericRowNumbersDoNotCollide(t *testing.T) {
	jan := "id,account,to,start,billsec\n1,1001,+441632960123,2026-01-05T09:00:00Z,30\n2,1002,+441632960124,2026-01-06T09:00:00Z,40\n"
	feb := "id,account,to,start,billsec\n1,1001,+441632960123,2026-02-05T09:00:00Z,30\n2,1002,+441632960124,2026-02-06T09:00:00Z,40\n"
	ids := map[string]string{}
	for name, in := range map[string]string{"jan": jan, "feb": feb} {
		res := readAll(t, strings.NewReader(in), Options{})
		if res.err != nil || len(res.records) != 2 {
			t.Fatalf("%s: %v, %d records", name, res.err, len(res.records))
		}
		for _, r := range res.records {
			if prev, dup := ids[r.CallID]; dup {
				t.Fatalf("%s and %s both give call id %q", prev, name, r.CallID)
			}
			ids[r.CallID] = name
		}
	}
	// An explicit call id column keeps its value, made unique by the
	// start and destination, and stable across reads.
	in := "call_id,account,to,start,billsec\nabc-1,1001,+441632960123,2026-01-05T09:00:00Z,30\n"
	a := readAll(t, strings.NewReader(in), Options{})
	b := readAll(t, strings.NewReader(in), Options{})
	if len(a.records) != 1 || !strings.HasPrefix(a.records[0].CallID, "abc-1-") || a.records[0].CallID != b.records[0].CallID {
		t.Fatalf("call_id column: %+v then %+v", a.records, b.records)
	}
}

var berlin = mustZone("Europe/Berlin")

// TestDST reads calls across Europe/Berlin's clock changes in 2026 — back
// from 03:00 CEST to 02:00 CET on 25 October, forward from 02:00 CET to
// 03:00 CEST on 29 March — from Asterisk and FreeSWITCH files, which write
// wall-clock time. The duration column is real time and decides.
func TestDST(t *testing.T) {
	utc := func(s string) time.Time {
		t.Helper()
		v, err := time.Parse(time.DateTime, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	type want struct{ start, answer, end string }
	tests := []struct {
		name           string
		start, answer  string
		end            string
		duration, bill int
		want           want
	}{
		// 02:50 CEST (00:50 UTC) to 02:10 CET (01:10 UTC): 20 minutes,
		// though the end reads earlier than the start.
		{"autumn across", "2026-10-25 02:50:00", "2026-10-25 02:50:10", "2026-10-25 02:10:00", 1200, 1190,
			want{"2026-10-25 00:50:00", "2026-10-25 00:50:10", "2026-10-25 01:10:00"}},
		// 01:50 CEST to 02:10 CET would be 80 minutes; the duration says
		// 20, so the end is 02:10 CEST.
		{"autumn into the repeated hour", "2026-10-25 01:50:00", "2026-10-25 01:50:05", "2026-10-25 02:10:00", 1200, 1195,
			want{"2026-10-24 23:50:00", "2026-10-24 23:50:05", "2026-10-25 00:10:00"}},
		// 02:30 CET (the second 02:30) to 03:10 CET: 40 minutes; the
		// first 02:30 would be 100.
		{"autumn out of the second pass", "2026-10-25 02:30:00", "2026-10-25 02:30:02", "2026-10-25 03:10:00", 2400, 2398,
			want{"2026-10-25 01:30:00", "2026-10-25 01:30:02", "2026-10-25 02:10:00"}},
		// 01:50 CET (00:50 UTC) to 03:10 CEST (01:10 UTC): 20 minutes.
		{"spring across", "2026-03-29 01:50:00", "2026-03-29 01:50:30", "2026-03-29 03:10:00", 1200, 1170,
			want{"2026-03-29 00:50:00", "2026-03-29 00:50:30", "2026-03-29 01:10:00"}},
		{"spring after", "2026-03-29 03:05:00", "", "2026-03-29 03:05:30", 30, 0,
			want{"2026-03-29 01:05:00", "", "2026-03-29 01:05:30"}},
	}
	for _, tt := range tests {
		disp := "ANSWERED"
		if tt.bill == 0 {
			disp = "NO ANSWER"
		}
		ast := fmt.Sprintf(`"","1001","0044163296012","from-internal","","SIP/1001-1","","Dial","","%s","%s","%s",%d,%d,"%s","DOCUMENTATION","u1",""`,
			tt.start, tt.answer, tt.end, tt.duration, tt.bill, disp)
		fs := fmt.Sprintf(`"Alice","1001","0044163296012","default","%s","%s","%s","%d","%d","NORMAL_CLEARING","uuid-1","","1001","PCMA","PCMA"`,
			tt.start, tt.answer, tt.end, tt.duration, tt.bill)
		for format, line := range map[Format]string{Asterisk: ast, FreeSWITCH: fs} {
			t.Run(tt.name+"/"+string(format), func(t *testing.T) {
				res := readAll(t, strings.NewReader(line+"\n"), Options{Format: format, Location: berlin, Strict: true})
				if res.err != nil || len(res.records) != 1 {
					t.Fatalf("%v, %d records", res.err, len(res.records))
				}
				r := res.records[0]
				if !r.Start.Equal(utc(tt.want.start)) || !r.End.Equal(utc(tt.want.end)) {
					t.Errorf("start %s end %s (UTC), want %s and %s", r.Start.UTC(), r.End.UTC(), tt.want.start, tt.want.end)
				}
				if tt.want.answer == "" {
					if r.Answered() {
						t.Errorf("answered at %s, want unanswered", r.Answer.UTC())
					}
				} else if !r.Answer.Equal(utc(tt.want.answer)) || r.Billsec != time.Duration(tt.bill)*time.Second {
					t.Errorf("answer %s billsec %s (UTC), want %s and %ds", r.Answer.UTC(), r.Billsec, tt.want.answer, tt.bill)
				}
			})
		}
	}
}

// TestDSTSecondPass: calls wholly inside the repeated hour fit either
// pass; in a file in end order, the one after calls of the second pass is
// of the second pass too.
func TestDSTSecondPass(t *testing.T) {
	line := func(start, end string, dur int, id string) string {
		return fmt.Sprintf(`"","1001","0044163296012","from-internal","","SIP/1001-1","","Dial","","%s","","%s",%d,0,"NO ANSWER","DOCUMENTATION","%s",""`+"\n", start, end, dur, id)
	}
	in := line("2026-10-25 02:50:00", "2026-10-25 02:10:00", 1200, "a") + // 00:50 → 01:10 UTC
		line("2026-10-25 02:15:00", "2026-10-25 02:20:00", 300, "b") // second pass: 01:15 UTC
	res := readAll(t, strings.NewReader(in), Options{Format: Asterisk, Location: berlin, Strict: true})
	if res.err != nil || len(res.records) != 2 {
		t.Fatalf("%v, %d records", res.err, len(res.records))
	}
	if got, want := res.records[1].Start.UTC(), time.Date(2026, 10, 25, 1, 15, 0, 0, time.UTC); !got.Equal(want) {
		t.Fatalf("second call starts %s, want %s", got, want)
	}
}

// TestEndMustMatchDuration: the end column checks start + duration.
func TestEndMustMatchDuration(t *testing.T) {
	in := `"","1001","0044163296012","from-internal","","SIP/1001-1","","Dial","","2026-03-02 09:15:02","","2026-03-02 09:25:02",7,0,"NO ANSWER","DOCUMENTATION","u1",""` + "\n"
	res := readAll(t, strings.NewReader(in), Options{Format: Asterisk})
	if len(res.records) != 0 || len(res.skipped) != 1 || !strings.Contains(res.skipped[0], "column end: end") {
		t.Fatalf("records %d, skipped %q; want the line skipped for its end", len(res.records), res.skipped)
	}
}

// TestGenericDurationOnly: a duration is talk time only in a billing
// export that has nothing else to say; a call whose status says it was not
// answered, or a file with an end column (duration = start to end, ringing
// included), bills nothing from it.
func TestGenericDurationOnly(t *testing.T) {
	for _, tt := range []struct {
		in       string
		answered bool
	}{
		{"account,to,start,duration\n1001,+441632960123,2026-03-02T09:00:00Z,95\n", true},
		{"account,to,start,duration,status\n1001,+441632960123,2026-03-02T09:00:00Z,95,ANSWERED\n", true},
		{"account,to,start,duration,status\n1001,+441632960123,2026-03-02T09:00:00Z,95,NO ANSWER\n", false},
		{"account,to,start,duration,status\n1001,+441632960123,2026-03-02T09:00:00Z,25,BUSY\n", false},
		{"account,to,start,duration,hangup_cause\n1001,+441632960123,2026-03-02T09:00:00Z,30,ORIGINATOR_CANCEL\n", false},
		{"account,to,start,end,duration\n1001,+441632960123,2026-03-02T09:00:00Z,2026-03-02T09:01:35Z,95\n", false},
	} {
		res := readAll(t, strings.NewReader(tt.in), Options{Strict: true})
		if res.err != nil || len(res.records) != 1 {
			t.Fatalf("%q: %v, %d records", tt.in, res.err, len(res.records))
		}
		r := res.records[0]
		if r.Answered() != tt.answered || (!tt.answered && r.Billsec != 0) {
			t.Errorf("%q: answered %v billsec %s, want answered %v", tt.in, r.Answered(), r.Billsec, tt.answered)
		}
	}
}

// TestSkipMessagesHoldNoValues: a skipped line is reported on stderr by
// line and column; the value at fault may be a phone number in the wrong
// column, so it is never quoted.
func TestSkipMessagesHoldNoValues(t *testing.T) {
	const num = "+5511987654334"
	generic := "account,to,start,end,billsec,direction,source_ip\n" +
		"1001,+44163296012," + num + ",,30,out,\n" +
		"1001,+44163296012,2026-03-02T09:00:00Z,," + num + ",out,\n" +
		"1001,+44163296012,2026-03-02T09:00:00Z,,30," + num + ",\n" +
		"1001,+44163296012,2026-03-02T09:00:00Z,,30,out," + num + "\n" +
		"1001,+44163296012,2026-03-02T09:00:00Z," + num + ",30,out,\n"
	ast := `"","1001","0044163296012","from-internal","","SIP/1001-1","","Dial","","2026-03-02 09:15:02","","` + num + `",7,0,"NO ANSWER","DOCUMENTATION","u1",""` + "\n" +
		`"","1001","0044163296012","from-internal","","SIP/1001-1","","Dial","","2026-03-02 09:15:02","","2026-03-02 09:15:09","` + num + `",0,"NO ANSWER","DOCUMENTATION","u2",""` + "\n"
	for _, tt := range []struct {
		in   string
		o    Options
		want int
	}{{generic, Options{}, 5}, {ast, Options{Format: Asterisk}, 2}} {
		res := readAll(t, strings.NewReader(tt.in), tt.o)
		if len(res.skipped) != tt.want {
			t.Fatalf("skipped %q, want %d lines", res.skipped, tt.want)
		}
		for _, m := range res.skipped {
			if strings.Contains(m, "987654") || !strings.Contains(m, "column ") {
				t.Errorf("skip message %q quotes the value or names no column", m)
			}
		}
	}
	// A headerless file read as a generic CSV: its first call is not
	// repeated as "the header".
	_, err := NewReader(strings.NewReader(num+",0044163296012,2026-03-02T09:00:00Z\n"), Options{Format: Generic})
	if err == nil || strings.Contains(err.Error(), "987654") {
		t.Errorf("headerless generic CSV: %v", err)
	}
}

// TestTimeRange: a start before 2000 or more than a day after the reader's
// now is a damaged record. One far in the future would stall replay's
// reordering and, past 2262, be stored where it can never be read back.
func TestTimeRange(t *testing.T) {
	now := time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		start string
		ok    bool
	}{
		{"2026-03-02T09:00:00Z", true},
		{"2026-03-03T11:00:00Z", true}, // within a day: clocks and zones differ
		{"2000-01-01T00:00:00Z", true},
		{"1999-12-31T23:59:59Z", false},
		{"1970-01-01T00:00:00Z", false},
		{"2026-03-04T12:00:00Z", false},
		{"2099-01-01T00:00:00Z", false},
		{"2286-11-20T17:46:40Z", false},
		{"9999-12-31T23:59:59Z", false},
	} {
		in := "account,to,start,billsec\n1001,+441632960123," + tt.start + ",30\n"
		res := readAll(t, strings.NewReader(in), Options{Now: func() time.Time { return now }})
		if got := len(res.records) == 1; got != tt.ok {
			t.Errorf("start %s: accepted %v, want %v (skipped %q)", tt.start, got, tt.ok, res.skipped)
		}
		if !tt.ok && (len(res.skipped) != 1 || !strings.Contains(res.skipped[0], "column start: start is")) {
			t.Errorf("start %s: skipped %q, want the start named", tt.start, res.skipped)
		}
	}
	ast := `"","1001","0044163296012","from-internal","","SIP/1001-1","","Dial","","9999-03-02 09:15:02","","9999-03-02 09:15:09",7,0,"NO ANSWER","DOCUMENTATION","u1",""` + "\n"
	if res := readAll(t, strings.NewReader(ast), Options{Format: Asterisk}); len(res.records) != 0 || len(res.skipped) != 1 {
		t.Errorf("Asterisk year 9999: %d records, skipped %q", len(res.records), res.skipped)
	}
}

// TestAnswerClampedToCall: switches round to the second, so an answer a
// second past the end (or before the start) is accepted, but clamped: a
// replay must never see a call end before it is answered.
func TestAnswerClampedToCall(t *testing.T) {
	in := "account,to,start,answer,end\n" +
		"1001,+441632960123,2026-03-02T09:00:00Z,2026-03-02T09:01:01Z,2026-03-02T09:01:00Z\n" +
		"1001,+441632960124,2026-03-02T09:00:00Z,2026-03-02T08:59:59Z,2026-03-02T09:01:00Z\n"
	res := readAll(t, strings.NewReader(in), Options{Strict: true})
	if res.err != nil || len(res.records) != 2 {
		t.Fatalf("%v, %d records", res.err, len(res.records))
	}
	if r := res.records[0]; !r.Answer.Equal(r.End) {
		t.Errorf("answer %s after the end %s", r.Answer, r.End)
	}
	if r := res.records[1]; !r.Answer.Equal(r.Start) {
		t.Errorf("answer %s before the start %s", r.Answer, r.Start)
	}
}

// TestOptionsTheFormatLacks: an account source the format cannot honour is
// refused, not silently read as auto.
func TestOptionsTheFormatLacks(t *testing.T) {
	ast := `"","1001","0044163296012","from-internal","","SIP/1001-1","","Dial","","2026-03-02 09:15:02","","2026-03-02 09:15:09",7,0,"NO ANSWER","DOCUMENTATION","u1",""` + "\n"
	fs := `"Alice","1001","0044163296012","default","2026-03-02 09:15:02","","2026-03-02 09:15:09","7","0","NO_ANSWER","uuid-1","","1001","PCMA","PCMA"` + "\n"
	csv := "account,to,start,billsec\n1001,+441632960123,2026-03-02T09:00:00Z,30\n"
	for _, tt := range []struct {
		in   string
		o    Options
		want error
	}{
		{ast, Options{Account: AccountCallerIDNum}, ErrBadOption},
		{ast, Options{Account: AccountChannel}, nil},
		{fs, Options{Account: AccountChannel}, ErrBadOption},
		{fs, Options{Account: AccountCallerIDNum}, nil},
		{"", Options{Format: FreeSWITCH, Account: AccountChannel}, ErrBadOption},
		{csv, Options{Account: AccountSource}, ErrBadOption},
		{csv, Options{InboundContexts: []string{"from-trunk"}}, ErrBadOption},
		{csv, Options{}, nil},
	} {
		_, err := NewReader(strings.NewReader(tt.in), tt.o)
		if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
			t.Errorf("NewReader(%.30q, %+v) = %v, want %v", tt.in, tt.o, err, tt.want)
		}
	}
}

// TestDetectionPastABadFirstLine: a Master.csv whose first record has a
// damaged start is still an Asterisk file; detection tries the next
// lines and the bad one is skipped like any other.
func TestDetectionPastABadFirstLine(t *testing.T) {
	bad := `"","1001","0044163296012","from-internal","","SIP/1001-1","","Dial","","2026-03-02 9:15","","2026-03-02 09:15:09",7,0,"NO ANSWER","DOCUMENTATION","u1",""` + "\n"
	good := `"","1001","0044163296012","from-internal","","SIP/1001-1","","Dial","","2026-03-02 09:16:02","","2026-03-02 09:16:09",7,0,"NO ANSWER","DOCUMENTATION","u2",""` + "\n"
	res := readAll(t, strings.NewReader(bad+bad+good), Options{})
	if res.err != nil || len(res.records) != 1 || res.stats.Format != Asterisk || res.stats.Skipped != 2 {
		t.Fatalf("%v: %d records, stats %+v, skipped %q", res.err, len(res.records), res.stats, res.skipped)
	}
	// Ten undetectable lines are a file of no known format, named by its
	// first line.
	_, err := NewReader(strings.NewReader(strings.Repeat(bad, 12)+good), Options{})
	if !errors.Is(err, ErrUnknownFormat) || !strings.Contains(err.Error(), "line 1 ") {
		t.Fatalf("12 bad lines: %v, want ErrUnknownFormat naming line 1", err)
	}
}

// TestGenericDST: a generic CSV with zone-less times and a duration is
// placed by the duration across a DST change, like a switch's file.
func TestGenericDST(t *testing.T) {
	in := "account,to,start,answer,end,duration\n" +
		"1001,+441632960123,2026-10-25 02:50:00,2026-10-25 02:50:10,2026-10-25 02:10:00,1200\n" +
		"1001,+441632960123,2026-10-25 01:50:00,2026-10-25 02:05:00,2026-10-25 02:10:00,1200\n"
	res := readAll(t, strings.NewReader(in), Options{Location: berlin, Strict: true})
	if res.err != nil || len(res.records) != 2 {
		t.Fatalf("%v, %d records", res.err, len(res.records))
	}
	for i, want := range [][3]time.Time{
		{time.Date(2026, 10, 25, 0, 50, 0, 0, time.UTC), time.Date(2026, 10, 25, 0, 50, 10, 0, time.UTC), time.Date(2026, 10, 25, 1, 10, 0, 0, time.UTC)},
		{time.Date(2026, 10, 24, 23, 50, 0, 0, time.UTC), time.Date(2026, 10, 25, 0, 5, 0, 0, time.UTC), time.Date(2026, 10, 25, 0, 10, 0, 0, time.UTC)},
	} {
		r := res.records[i]
		if !r.Start.Equal(want[0]) || !r.Answer.Equal(want[1]) || !r.End.Equal(want[2]) || r.Billsec != r.End.Sub(r.Answer) {
			t.Errorf("record %d: start %s answer %s end %s billsec %s; want %s %s %s", i, r.Start.UTC(), r.Answer.UTC(), r.End.UTC(), r.Billsec, want[0], want[1], want[2])
		}
	}
}
