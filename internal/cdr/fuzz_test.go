package cdr

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"
)

// fuzzRead reads in as format and checks what every record must satisfy,
// whatever the input: the limits hold, times are in order, and an
// unanswered call bills nothing.
func fuzzRead(t *testing.T, in []byte, o Options) {
	o.MaxLineBytes = 4096
	o.MaxBadLines = -1
	rd, err := NewReader(bytes.NewReader(in), o)
	if err != nil {
		return
	}
	for {
		r, err := rd.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			var le *LineError
			if !errors.As(err, &le) && !strings.HasPrefix(err.Error(), "read CDR") {
				t.Fatalf("Next: unexpected error %v", err)
			}
			break
		}
		switch {
		case r.Account == "" || r.To == "" || r.CallID == "":
			t.Fatalf("record without account, destination or call id: %+v", r)
		case len(r.Account) > maxAccountLen || len(r.To) > maxNumberLen || len(r.From) > maxNumberLen || len(r.CallID) > maxCallIDLen:
			t.Fatalf("record past the field limits: %+v", r)
		case r.Start.Before(EarliestStart) || r.Start.After(time.Now().Add(FutureSlack+time.Hour)):
			t.Fatalf("record outside the accepted years: %+v", r)
		case r.End.Before(r.Start) || r.End.Sub(r.Start) > maxCallLength:
			t.Fatalf("record with bad times: %+v", r)
		case r.Billsec < 0 || (!r.Answered() && r.Billsec != 0):
			t.Fatalf("record with bad billsec: %+v", r)
		case r.Answered() && (r.Answer.Before(r.Start) || r.Answer.After(r.End)):
			t.Fatalf("answer outside the call: %+v", r)
		}
	}
	st := rd.Stats()
	if st.Records+st.Skipped > st.Lines+1 {
		t.Fatalf("stats %+v: more records and skips than lines", st)
	}
}

func addSeeds(f *testing.F, file string, extra ...string) {
	b, err := os.ReadFile("testdata/" + file)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	for _, line := range bytes.Split(b, []byte("\n")) {
		f.Add(line)
	}
	for _, s := range extra {
		f.Add([]byte(s))
	}
}

func FuzzAsterisk(f *testing.F) {
	addSeeds(f, "asterisk_master.csv", `"a""b",`+"\"\n\"", ",,,,,,,,,,,,,,,,,")
	f.Fuzz(func(t *testing.T, in []byte) { fuzzRead(t, in, Options{Format: Asterisk}) })
}

func FuzzFreeSWITCH(f *testing.F) {
	addSeeds(f, "freeswitch_master.csv", `"","","","","2026-03-02 09:00:00","","2026-03-02 09:00:00","0","0","","","",""`)
	f.Fuzz(func(t *testing.T, in []byte) { fuzzRead(t, in, Options{Format: FreeSWITCH}) })
}

func FuzzGeneric(f *testing.F) {
	addSeeds(f, "generic_calls.csv", "account,to,start,duration\n1,2,1772453702,5\n", "account,to,start,end,answer\n1,2,0,0,0\n")
	f.Fuzz(func(t *testing.T, in []byte) { fuzzRead(t, in, Options{Location: saoPaulo}) })
}

// benchFile is n Asterisk records as Master.csv writes them.
func benchFile(n int) []byte {
	var b bytes.Buffer
	start := time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)
	for i := range n {
		s := start.Add(time.Duration(i) * 7 * time.Second)
		fmt.Fprintf(&b, `"","10%02d","00441632960%03d","from-internal","""Ext %d"" <10%02d>","SIP/10%02d-%08x","SIP/trunk-%08x","Dial","SIP/trunk/00441632960%03d,60,tT","%s","%s","%s",%d,%d,"ANSWERED","DOCUMENTATION","%d.%d",""`+"\n",
			i%100, i%1000, i%100, i%100, i%100, i, i+1, i%1000,
			s.Format(switchLayout), s.Add(5*time.Second).Format(switchLayout), s.Add(95*time.Second).Format(switchLayout),
			95, 90, s.Unix(), i)
	}
	return b.Bytes()
}

// BenchmarkAsteriskRecords measures parsing throughput; records/s is the
// figure docs/BENCHMARKS.md quotes.
func BenchmarkAsteriskRecords(b *testing.B) {
	const n = 10000
	data := benchFile(n)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	records := 0
	for b.Loop() {
		rd, err := NewReader(bytes.NewReader(data), Options{Format: Asterisk})
		if err != nil {
			b.Fatal(err)
		}
		for {
			_, err := rd.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			records++
		}
	}
	b.ReportMetric(float64(records)/b.Elapsed().Seconds(), "records/s")
}

// FuzzSwitchTime: the hand-written reader of "2006-01-02 15:04:05" agrees
// with time.ParseInLocation on every input, and wallInstants finds every
// instant a reading names: each reads back as the reading, two an hour
// apart in Berlin's repeated autumn hour. (ParseInLocation picks one of
// those two, so agreeing with it alone says nothing of DST.)
func FuzzSwitchTime(f *testing.F) {
	for _, s := range []string{"2026-03-02 14:05:09", "2026-04-31 10:00:00", "0000-01-01 00:00:00", "2026-03-02 24:00:00", "2026-10-25 02:30:00", "2026-03-29 02:30:00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, loc := range []*time.Location{saoPaulo, berlin} {
			want, wantErr := time.ParseInLocation(switchLayout, s, loc)
			got, err := parseSwitchTime(s, loc)
			if (err != nil) != (wantErr != nil) || !got.Equal(want) {
				t.Fatalf("parseSwitchTime(%q) = %v, %v; time.ParseInLocation says %v, %v", s, got, err, want, wantErr)
			}
			if err != nil || got.Format(switchLayout) != s {
				continue // not a reading, or one skipped when clocks went forward
			}
			arr, n := wallInstants(got)
			ins := arr[:n]
			for _, in := range ins {
				if in.In(loc).Format(switchLayout) != s {
					t.Fatalf("wallInstants(%q) gives %v, which reads %s", s, in, in.In(loc).Format(switchLayout))
				}
			}
			if len(ins) == 2 && ins[1].Sub(ins[0]) != time.Hour {
				t.Fatalf("wallInstants(%q) = %v: not an hour apart", s, ins)
			}
			if loc == berlin && strings.HasPrefix(s, "2026-10-25 02:") && len(ins) != 2 {
				t.Fatalf("wallInstants(%q) = %v: the repeated hour names two instants", s, ins)
			}
		}
	})
}
