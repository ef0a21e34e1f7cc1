package sim

import (
	"cmp"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is what a run measured. Everything but Latency is a function of
// the calls and the decisions, so it is the same for the same seed and
// policy.
type Report struct {
	Seed   uint64    `json:"seed"`
	Policy string    `json:"policy,omitempty"`
	Start  time.Time `json:"start"`
	Days   int       `json:"days"`
	// WarmUpDays of honest traffic ran through the engine before the
	// measured days (WarmUpCalls calls); they are in no figure below.
	WarmUpDays  int `json:"warm_up_days"`
	WarmUpCalls int `json:"warm_up_calls"`
	// Inbound calls (rings the engine was told of) are in no figure below
	// but latency.
	Inbound int `json:"inbound_calls,omitempty"`
	// Model says whether an anomaly model scored the measured days, and
	// what it was trained on.
	Model string `json:"anomaly_model,omitempty"`
	// Target is the daemon driven over its decision API (http://…) or
	// through its SIP edge (udp:host:port); empty when the engine ran in
	// process. Latency is then each check's HTTP round trip, or each
	// INVITE's round trip to the ring or the rejection.
	Target string `json:"target,omitempty"`
	// Scores are the anomaly scores of the measured attempts that were
	// scored (allowed by every other rule), honest and fraud apart: how
	// well the model separates them, whatever anomaly.score's mode.
	Scores        *ScoreStats   `json:"anomaly_scores,omitempty"`
	Tenants       int           `json:"tenants"`
	Accounts      int           `json:"accounts_per_tenant"`
	Honest        HonestStats   `json:"honest"`
	Attacks       []AttackStats `json:"attacks"`
	Overall       AttackStats   `json:"overall"`
	NeverBlocked  int           `json:"attacks_never_blocked"`
	Latency       LatencyStats  `json:"decision_latency"`
	ObserveErrors int           `json:"observe_errors"`
}

// HonestStats counts what happened to honest calls.
type HonestStats struct {
	Attempts   int `json:"attempts"`
	Blocked    int `json:"blocked"`
	Challenged int `json:"challenged"`
	// FalsePositiveRate is Blocked / Attempts.
	FalsePositiveRate float64        `json:"false_positive_rate"`
	BlockedBy         map[string]int `json:"blocked_by,omitempty"` // rule id → honest calls it blocked
	Minutes           float64        `json:"minutes"`              // talk time of the allowed ones
	Money             float64        `json:"money"`
}

// AttackStats measures one attack scenario, or all of them (Overall).
type AttackStats struct {
	Scenario string `json:"scenario"`
	Attempts int    `json:"attempts"`
	Blocked  int    `json:"blocked"`
	// Interception is Blocked / Attempts.
	Interception float64 `json:"interception"`
	// Completed fraud calls were allowed and answered; Minutes is their
	// billed talk time.
	Completed int     `json:"completed"`
	Minutes   float64 `json:"minutes"`
	// BeforeFirstBlock counts the completed calls attempted before the
	// scenario's first blocked attempt (all of them when none was blocked).
	BeforeFirstBlock        int     `json:"completed_before_first_block"`
	MinutesBeforeFirstBlock float64 `json:"minutes_before_first_block"`
	// TimeToFirstBlock is from the first attempt to the first blocked one,
	// in seconds; nil when nothing was blocked. In Overall it is the worst
	// of the attacks that were blocked.
	TimeToFirstBlock *float64       `json:"time_to_first_block_s"`
	FirstBlockRule   string         `json:"first_block_rule,omitempty"`
	MoneyLost        float64        `json:"money_lost"`
	MoneyAtRisk      float64        `json:"money_at_risk"` // what every fraud call would have cost had none been blocked
	BlockedBy        map[string]int `json:"blocked_by,omitempty"`
}

// LostShare is MoneyLost / MoneyAtRisk (0 when nothing was at risk).
func (a AttackStats) LostShare() float64 { return ratio(a.MoneyLost, a.MoneyAtRisk) }

// ScoreStats compare the anomaly scores of honest and fraud attempts.
type ScoreStats struct {
	Honest ScoreDist `json:"honest"`
	Fraud  ScoreDist `json:"fraud"`
}

// ScoreDist is the distribution of one side's scores.
type ScoreDist struct {
	Scored int     `json:"scored"`
	P50    float64 `json:"p50"`
	P99    float64 `json:"p99"`
	Max    float64 `json:"max"`
	Over07 int     `json:"at_least_0_7"` // attempts scored 0.7 or more (the default warning)
	Over08 int     `json:"at_least_0_8"` // and 0.8 or more (the default critical)
}

func scoreDist(v []float64) ScoreDist {
	if len(v) == 0 {
		return ScoreDist{}
	}
	slices.Sort(v)
	q := func(p float64) float64 { return math.Round(v[min(len(v)-1, int(p*float64(len(v))))]*1000) / 1000 }
	d := ScoreDist{Scored: len(v), P50: q(0.5), P99: q(0.99), Max: math.Round(v[len(v)-1]*1000) / 1000}
	for _, x := range v {
		if x >= 0.7 {
			d.Over07++
		}
		if x >= 0.8 {
			d.Over08++
		}
	}
	return d
}

// LatencyStats are wall-clock Decide times, in microseconds.
type LatencyStats struct {
	Decisions int     `json:"decisions"`
	P50       float64 `json:"p50_us"`
	P99       float64 `json:"p99_us"`
	Max       float64 `json:"max_us"`
}

// Summarise builds the report of a run; the caller fills in the run's
// parameters (seed, policy, days…).
func Summarise(res Result) Report {
	var rep Report
	rep.ObserveErrors = res.ObserveErrors
	rep.Honest.BlockedBy = map[string]int{}
	byName := map[string]*AttackStats{}
	var order []string
	first := map[string]time.Time{}
	firstBlock := map[string]time.Time{}
	lat := make([]time.Duration, 0, len(res.Outcomes))
	var honestScores, fraudScores []float64
	for i := range res.Outcomes {
		c, o := &res.Calls[i], res.Outcomes[i]
		if c.WarmUp {
			rep.WarmUpCalls++
			continue
		}
		lat = append(lat, o.Latency)
		if c.Inbound {
			rep.Inbound++
			continue
		}
		if o.Score > 0 {
			if c.Fraud {
				fraudScores = append(fraudScores, o.Score)
			} else {
				honestScores = append(honestScores, o.Score)
			}
		}
		if !c.Fraud {
			h := &rep.Honest
			h.Attempts++
			switch {
			case o.Blocked():
				h.Blocked++
				h.BlockedBy[ruleName(o.Rule)]++
			default:
				if o.Verdict == "challenge" {
					h.Challenged++
				}
				if c.Answered {
					h.Minutes += c.Duration.Minutes()
					h.Money += c.Cost()
				}
			}
			continue
		}
		a := byName[c.Scenario]
		if a == nil {
			a = &AttackStats{Scenario: c.Scenario, BlockedBy: map[string]int{}}
			byName[c.Scenario] = a
			order = append(order, c.Scenario)
			first[c.Scenario] = c.Attempt
		}
		a.Attempts++
		a.MoneyAtRisk += c.Cost()
		_, blockedYet := firstBlock[c.Scenario]
		if o.Blocked() {
			a.Blocked++
			a.BlockedBy[ruleName(o.Rule)]++
			if !blockedYet {
				firstBlock[c.Scenario] = c.Attempt
				s := c.Attempt.Sub(first[c.Scenario]).Seconds()
				a.TimeToFirstBlock = &s
				a.FirstBlockRule = o.Rule
			}
			continue
		}
		if c.Answered {
			a.Completed++
			a.Minutes += c.Duration.Minutes()
			a.MoneyLost += c.Cost()
			if !blockedYet {
				a.BeforeFirstBlock++
				a.MinutesBeforeFirstBlock += c.Duration.Minutes()
			}
		}
	}
	rep.Honest.FalsePositiveRate = ratio(float64(rep.Honest.Blocked), float64(rep.Honest.Attempts))
	// Scenarios in their built-in order, whatever order they began in.
	slices.SortStableFunc(order, func(a, b string) int { return cmp.Compare(scenarioIndex(a), scenarioIndex(b)) })
	all := AttackStats{Scenario: "all attacks", BlockedBy: map[string]int{}}
	for _, name := range order {
		a := byName[name]
		a.Interception = ratio(float64(a.Blocked), float64(a.Attempts))
		rep.Attacks = append(rep.Attacks, *a)
		all.Attempts += a.Attempts
		all.Blocked += a.Blocked
		all.Completed += a.Completed
		all.Minutes += a.Minutes
		all.BeforeFirstBlock += a.BeforeFirstBlock
		all.MinutesBeforeFirstBlock += a.MinutesBeforeFirstBlock
		all.MoneyLost += a.MoneyLost
		all.MoneyAtRisk += a.MoneyAtRisk
		for r, n := range a.BlockedBy {
			all.BlockedBy[r] += n
		}
		switch {
		case a.TimeToFirstBlock == nil:
			rep.NeverBlocked++
		case all.TimeToFirstBlock == nil || *a.TimeToFirstBlock > *all.TimeToFirstBlock:
			s := *a.TimeToFirstBlock
			all.TimeToFirstBlock = &s
		}
	}
	all.Interception = ratio(float64(all.Blocked), float64(all.Attempts))
	rep.Overall = all
	rep.Latency = latencyStats(lat)
	if len(honestScores)+len(fraudScores) > 0 {
		rep.Scores = &ScoreStats{Honest: scoreDist(honestScores), Fraud: scoreDist(fraudScores)}
	}
	return rep
}

func scenarioIndex(name string) int {
	for i, s := range scenarios {
		if s.Name == name {
			return i
		}
	}
	return len(scenarios)
}

func ruleName(r string) string {
	if r == "" {
		return "(none)"
	}
	return r
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

func latencyStats(lat []time.Duration) LatencyStats {
	if len(lat) == 0 {
		return LatencyStats{}
	}
	slices.Sort(lat)
	us := func(d time.Duration) float64 { return math.Round(float64(d)/float64(time.Microsecond)*100) / 100 }
	q := func(p float64) time.Duration { return lat[min(len(lat)-1, int(math.Ceil(p*float64(len(lat))))-1)] }
	return LatencyStats{Decisions: len(lat), P50: us(q(0.50)), P99: us(q(0.99)), Max: us(lat[len(lat)-1])}
}

// ColumnHelp explains the report's columns, for `telguard sim --help`.
const ColumnHelp = `Report columns (one row per attack scenario, then all attacks together):
  attempts      fraud call attempts the scenario made
  blocked       attempts the policy blocked (throttle, deny or ban; a challenge does not block)
  intercept     blocked / attempts: the interception rate
  through       fraud calls completed (allowed and answered) before the scenario's first
                block, and their minutes: what got through before the policy reacted
  first block   event time from the scenario's first attempt to its first blocked attempt
                (the rule that blocked it is listed under the table); "never" if nothing
                was blocked. On the "all attacks" row: the slowest attack that was blocked
  lost          money spent on fraud calls that were allowed (rate deck × billed minutes)
  at risk       what all of the scenario's calls would have cost had none been blocked
  lost%         lost / at risk
Honest traffic: attempts, blocked, false-positive rate (blocked / attempts), challenged
calls, and which rules blocked honest calls. Decision latency: wall time of each
in-process Decide (with --target: each check's HTTP round trip; with --sip-target:
each INVITE's round trip to the ring or the rejection), p50 and p99 (the one figure
that varies between runs of a seed).
`

// WriteText writes the report as aligned tables.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "telguard sim: seed %d, %d day(s) from %s, %d tenant(s) × %d account(s), policy %s\n",
		r.Seed, r.Days, r.Start.Format(time.DateOnly), r.Tenants, r.Accounts, cmp.Or(r.Policy, "(built in)"))
	if r.WarmUpDays > 0 {
		fmt.Fprintf(&b, "after %d warm-up day(s) of honest traffic only (%d calls, not counted below) that taught the baselines\n",
			r.WarmUpDays, r.WarmUpCalls)
	}
	if r.Model != "" {
		fmt.Fprintf(&b, "anomaly model: %s\n", r.Model)
	}
	b.WriteString("\n")
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\tattempts\tblocked\tintercept\tthrough (calls/min)\tfirst block\tlost\tat risk\tlost%\t")
	row := func(a AttackStats) {
		fb := "never"
		if a.TimeToFirstBlock != nil {
			fb = fmtSeconds(*a.TimeToFirstBlock)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%d / %.1f\t%s\t%.2f\t%.2f\t%s\t\n", a.Scenario, a.Attempts, a.Blocked,
			pct(a.Interception), a.BeforeFirstBlock, a.MinutesBeforeFirstBlock, fb, a.MoneyLost, a.MoneyAtRisk, pct(a.LostShare()))
	}
	for _, a := range r.Attacks {
		row(a)
	}
	if len(r.Attacks) > 0 {
		row(r.Overall)
	}
	tw.Flush()
	if len(r.Attacks) > 0 {
		b.WriteString("\nfirst blocking rule per scenario:\n")
		for _, a := range r.Attacks {
			fmt.Fprintf(&b, "  %-22s %s\n", a.Scenario, cmp.Or(a.FirstBlockRule, "-"))
		}
		if r.NeverBlocked > 0 {
			fmt.Fprintf(&b, "  (%d scenario(s) never blocked)\n", r.NeverBlocked)
		}
	}
	h := r.Honest
	fmt.Fprintf(&b, "\nhonest traffic: %d attempts, %d blocked (false positives %s), %d challenged, %.0f minutes, %.2f spent\n",
		h.Attempts, h.Blocked, pct4(h.FalsePositiveRate), h.Challenged, h.Minutes, h.Money)
	for _, rule := range slices.Sorted(maps.Keys(h.BlockedBy)) {
		fmt.Fprintf(&b, "  blocked by %-34s %d\n", rule, h.BlockedBy[rule])
	}
	if sc := r.Scores; sc != nil {
		b.WriteString("\nanomaly scores of attempts no other rule blocked (scored / p50 / p99 / max / ≥ 0.7 / ≥ 0.8):\n")
		for _, side := range []struct {
			name string
			d    ScoreDist
		}{{"honest", sc.Honest}, {"fraud", sc.Fraud}} {
			fmt.Fprintf(&b, "  %-7s %6d / %.3f / %.3f / %.3f / %d / %d\n", side.name, side.d.Scored, side.d.P50, side.d.P99, side.d.Max, side.d.Over07, side.d.Over08)
		}
	}
	l := r.Latency
	what := "in-process Decide"
	switch {
	case strings.HasPrefix(r.Target, "udp:"):
		what = "SIP round trip of each INVITE to the ring or the rejection, through the edge at " + r.Target
	case r.Target != "":
		what = "HTTP round trip of each check to " + r.Target
	}
	fmt.Fprintf(&b, "\ndecision latency (%s, %d decisions): p50 %.1f µs, p99 %.1f µs, max %.1f µs\n",
		what, l.Decisions, l.P50, l.P99, l.Max)
	if r.ObserveErrors > 0 {
		fmt.Fprintf(&b, "observe errors: %d\n", r.ObserveErrors)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func pct(f float64) string  { return fmt.Sprintf("%.1f%%", 100*f) }
func pct4(f float64) string { return fmt.Sprintf("%.3f%%", 100*f) }

func fmtSeconds(s float64) string {
	if s < 120 {
		return fmt.Sprintf("%.1fs", s)
	}
	return (time.Duration(s * float64(time.Second))).Round(time.Second).String()
}
