package cli

import (
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/telguard/telguard/internal/event"
)

type countSource struct{ n int }

func (c *countSource) Next() (event.CallRecord, error) {
	if c.n == 0 {
		return event.CallRecord{}, io.EOF
	}
	c.n--
	return event.CallRecord{}, nil
}

// TestProgress: cdr import and replay share one progress reporter; a long
// run says how far it got every progressEvery, with import's detail.
func TestProgress(t *testing.T) {
	var out strings.Builder
	clock := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	p := &progressSource{src: &countSource{n: 3 * 4096}, w: &out, what: "cdr import: x.csv",
		detail: func() string { return "9 lines" },
		now: func() time.Time {
			clock = clock.Add(progressEvery)
			return clock
		}}
	for {
		if _, err := p.Next(); errors.Is(err, io.EOF) {
			break
		}
	}
	want := "cdr import: x.csv: 8192 calls read, 9 lines\ncdr import: x.csv: 12288 calls read, 9 lines\n"
	if out.String() != want {
		t.Fatalf("progress:\n%q\nwant\n%q", out.String(), want)
	}
}
