package replay

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

const textTime = "2006-01-02 15:04:05"

// WriteText writes the report for people: totals, then blocks by rule, the
// first block per account, the top accounts and destinations, and with
// list the blocked and would-block calls. Times are in the tenant's zone.
func (rep *Report) WriteText(w io.Writer, list bool) error {
	loc, err := time.LoadLocation(rep.Timezone)
	if err != nil {
		loc = time.UTC
	}
	tm := func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return t.In(loc).Format(textTime)
	}
	cur := rep.Currency
	pct := func(n, of int) string {
		if of == 0 {
			return "0%"
		}
		return fmt.Sprintf("%.1f%%", 100*float64(n)/float64(of))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Replay of tenant %s (times in %s, money in %s)\n\n", rep.Tenant, rep.Timezone, cur)
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "calls\t%d\tfrom %s to %s\n", rep.Calls.Calls, tm(rep.From), tm(rep.To))
	fmt.Fprintf(tw, "answered\t%d\t%.1f min, %s %.2f\n", rep.Calls.Answered, rep.Calls.Minutes, cur, rep.Calls.Money)
	fmt.Fprintf(tw, "blocked (enforce)\t%d\t%s of calls; %.1f min, %s %.2f would have been saved\n",
		rep.Blocked.Calls, pct(rep.Blocked.Calls, rep.Calls.Calls), rep.Blocked.Minutes, cur, rep.Blocked.Money)
	fmt.Fprintf(tw, "would block (monitor)\t%d\t%s of calls; %.1f min, %s %.2f\n",
		rep.Would.Calls, pct(rep.Would.Calls, rep.Calls.Calls), rep.Would.Minutes, cur, rep.Would.Money)
	fmt.Fprintf(tw, "let through\t%d\t%.1f min, %s %.2f (%d challenged)\n",
		rep.Allowed.Calls, rep.Allowed.Minutes, cur, rep.Allowed.Money, rep.Challenged)
	if rep.Late > 0 || rep.Duplicates > 0 || rep.ObserveErrors > 0 {
		fmt.Fprintf(tw, "not replayed\t%d\t%d late records (out of start order past the window), %d duplicate call ids; %d answers/ends refused\n",
			rep.Late+rep.Duplicates, rep.Late, rep.Duplicates, rep.ObserveErrors)
	}
	if rep.AccountsForgotten > 0 || rep.AccountsUntracked > 0 {
		fmt.Fprintf(tw, "accounts\t\ttoo many to track: %d never blocked forgotten, %d blocked calls in no account's line\n",
			rep.AccountsForgotten, rep.AccountsUntracked)
	}
	tw.Flush()

	rules := func(title string, rs []RuleCount) {
		if len(rs) == 0 {
			return
		}
		fmt.Fprintf(&b, "\n%s\n", title)
		tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		fmt.Fprintf(tw, "  rule\tcalls\tmin\t%s\n", cur)
		for _, r := range rs {
			fmt.Fprintf(tw, "  %s\t%d\t%.1f\t%.2f\n", r.Rule, r.Calls, r.Minutes, r.Money)
		}
		tw.Flush()
	}
	rules("Blocked by rule (enforce)", rep.BlockedByRule)
	rules("Would block by rule (monitor)", rep.WouldByRule)

	if len(rep.FirstBlocks) > 0 {
		fmt.Fprintf(&b, "\nFirst block per account, and the calls let through before and after it\n")
		tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		fmt.Fprintf(tw, "  account\tfirst block\trule\tto\tbefore\t%s\tafter\t%s\n", cur, cur)
		for _, f := range rep.FirstBlocks {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%d\t%.2f\t%d\t%.2f\n", f.Account, tm(f.Time), f.Rule, f.To,
				f.Before.Calls, f.Before.Money, f.After.Calls, f.After.Money)
		}
		tw.Flush()
	}
	tops := func(title, key string, ts []Top) {
		if len(ts) == 0 {
			return
		}
		fmt.Fprintf(&b, "\n%s\n", title)
		tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		fmt.Fprintf(tw, "  %s\tblocked\tmin\t%s saved\n", key, cur)
		for _, t := range ts {
			fmt.Fprintf(tw, "  %s\t%d\t%.1f\t%.2f\n", t.Key, t.Blocked, t.Minutes, t.Money)
		}
		tw.Flush()
	}
	tops("Top accounts blocked", "account", rep.TopAccounts)
	tops("Top destinations blocked", "country", rep.TopDestinations)

	if list && len(rep.Listed) > 0 {
		fmt.Fprintf(&b, "\nBlocked and would-block calls\n")
		tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		fmt.Fprintf(tw, "  time\taccount\tto\tcountry\ttype\tmode\tverdict\trule\tbillsec\t%s\n", cur)
		for _, l := range rep.Listed {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%.2f\n", tm(l.Time), l.Account, l.To, dash(l.Country), dash(l.Type),
				l.Mode, l.Verdict, l.Rule, int64(l.Billsec.Seconds()), l.Money)
		}
		tw.Flush()
		if rep.Truncated {
			fmt.Fprintf(&b, "  (list truncated at %d calls)\n", len(rep.Listed))
		}
	}
	_, err = io.WriteString(w, b.String())
	return err
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
