package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/telguard/telguard/internal/engine"
	"github.com/telguard/telguard/internal/engine/policy"
	"github.com/telguard/telguard/internal/event"
)

const checkHelp = `
Usage: telguard check --policy FILE --tenant T --account A --to NUMBER [flags]

Decides one call attempt against a policy file, with fresh counters, and
prints the decision as one JSON object — the same object the decision API
answers. Use it to try a policy out before loading it.

Exit status: 0 when a decision was printed (whatever the verdict); 2 on bad
input (unreadable policy, bad flag) with a message on stderr.

Example:
  telguard check --policy examples/policy.yaml --tenant demo --account 1001 --to +449098790000
`

func (e *env) check(args []string) error {
	fs := e.flags("check", checkHelp)
	policyFile := fs.String("policy", "examples/policy.yaml", "policy `file`")
	tenant := fs.String("tenant", "", "tenant id (required)")
	account := fs.String("account", "", "calling account (required)")
	to := fs.String("to", "", "dialled number, as the PBX sends it (required)")
	from := fs.String("from", "", "calling number")
	ip := fs.String("ip", "", "source IP `address`")
	ua := fs.String("user-agent", "", "caller's User-Agent")
	at := fs.String("at", "", "event time, RFC 3339 (default now)")
	callID := fs.String("call-id", "check-1", "call id")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("check: unexpected argument %q", fs.Arg(0))
	}
	var missing []string
	for name, v := range map[string]string{"--tenant": *tenant, "--account": *account, "--to": *to} {
		if v == "" {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return usagef("check: missing %s (see telguard check --help)", strings.Join(sorted(missing), ", "))
	}
	ev := event.Event{Kind: event.CallAttempt, Tenant: *tenant, Account: *account, To: *to, From: *from, UserAgent: *ua, CallID: *callID, Sensor: "cli"}
	if *ip != "" {
		a, err := netip.ParseAddr(*ip)
		if err != nil {
			return usagef("check: --ip: %q is not an IP address", *ip)
		}
		ev.SourceIP = a
	}
	ev.Time = time.Now()
	if *at != "" {
		t, err := time.Parse(time.RFC3339, *at)
		if err != nil {
			return usagef("check: --at: want RFC 3339 like 2026-03-02T10:00:00-03:00, got %q", *at)
		}
		ev.Time = t
	}
	pol, err := policy.Load(*policyFile)
	if err != nil {
		return usageError{err.Error()}
	}
	if pol.Tenants[*tenant] == nil {
		return usagef("check: tenant %q is not in %s", *tenant, *policyFile)
	}
	d := engine.New(pol, engine.Options{}).Decide(context.Background(), ev)
	out, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("encode decision: %w", err)
	}
	_, err = fmt.Fprintf(e.stdout, "%s\n", out)
	return err
}

const policyHelp = `
Usage: telguard policy validate FILE

Parses and compiles a policy file, including the rate decks it names.
Prints a summary and exits 0 when it is valid; prints the first problem as
FILE:LINE: field: what is wrong, and exits 1, when it is not.
`

func (e *env) policy(args []string) error {
	if len(args) == 0 || args[0] == "--help" || args[0] == "-h" || args[0] == "help" {
		fmt.Fprint(e.stdout, strings.TrimLeft(policyHelp, "\n"))
		if len(args) == 0 {
			return usagef("policy: missing subcommand")
		}
		return nil
	}
	if args[0] != "validate" {
		return usagef("policy: unknown subcommand %q (want validate)", args[0])
	}
	if len(args) != 2 {
		return usagef("policy validate: want exactly one FILE")
	}
	pol, err := policy.Load(args[1])
	if err != nil {
		var pe *policy.Error
		if errors.As(err, &pe) {
			return err
		}
		return usageError{err.Error()}
	}
	ids := make([]string, 0, len(pol.Tenants))
	for id, t := range pol.Tenants {
		ids = append(ids, fmt.Sprintf("%s (%d groups, %d limits)", id, len(t.Groups), len(t.Limits)))
	}
	fmt.Fprintf(e.stdout, "%s: ok: %d tenant(s): %s\n", args[1], len(ids), strings.Join(sorted(ids), ", "))
	return nil
}

func sorted(s []string) []string {
	slices.Sort(s)
	return s
}
