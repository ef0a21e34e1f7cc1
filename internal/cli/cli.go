// Package cli holds telguard's subcommands: argument parsing, help texts and
// exit codes. The work itself is done by the packages it calls; the daemon
// is wired in internal/daemon.
package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime/debug"
	"strings"
)

// Exit codes.
const (
	exitOK    = 0
	exitError = 1 // the command ran and failed (e.g. an invalid policy)
	exitUsage = 2 // bad arguments or input
)

// Version is set at build time with -ldflags "-X github.com/telguard/telguard/internal/cli.Version=v1.2.3".
var Version = "dev"

const usage = `telguard — real-time toll-fraud and SIP abuse protection for voice platforms

Usage:
  telguard <command> [flags]

Commands:
  serve               run the daemon (decision API on 127.0.0.1:8080 by default)
  check               decide one call against a policy file and print the decision
  policy validate     check a policy file; errors name file:line
  accounts unsuspend  lift an account's international-calling suspension
  webhooks secret|dlq rotate or list a source's signing secrets; list or replay dead deliveries
  bench               load-test the decision API and report decisions/s and latency
  bench-sip           benchmark the SIP edge with SIPp: calls/s, added latency, banned-source flood
  bench-webhooks      benchmark the webhook ingress against a bare handler, and delivery to a local receiver
  cdr import          check a CDR file (Asterisk, FreeSWITCH, generic CSV) and load it as call history
  replay              run a CDR file (or --stored history) through a policy in event time: what would have been blocked, money saved
  anomaly train       train the anomaly model from stored calls or a CDR file
  sim                 replay simulated traffic with attacks through a policy: interception, losses, false positives
  version             print the version

Run 'telguard <command> --help' for a command's flags.
Docs: README.md, docs/policy.md (every policy field), docs/api.md (every route).
`

type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
}

// errUsage marks errors that are the caller's fault (exit 2).
var errUsage = errors.New("usage")

type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }
func (e usageError) Unwrap() error { return errUsage }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// Main runs the command line and returns the exit code.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	e := &env{stdin: stdin, stdout: stdout, stderr: stderr}
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	var err error
	switch cmd, rest := args[0], args[1:]; cmd {
	case "serve":
		err = e.serve(rest)
	case "check":
		err = e.check(rest)
	case "policy":
		err = e.policy(rest)
	case "accounts":
		err = e.accounts(rest)
	case "webhooks":
		err = e.webhooks(rest)
	case "bench":
		err = e.bench(rest)
	case "bench-sip":
		err = e.benchSIP(rest)
	case "bench-webhooks":
		err = e.benchWebhooks(rest)
	case "sim":
		err = e.sim(rest)
	case "cdr":
		err = e.cdr(rest)
	case "replay":
		err = e.replay(rest)
	case "anomaly":
		err = e.anomaly(rest)
	case "version", "--version", "-v":
		fmt.Fprintln(stdout, "telguard", versionString())
		return exitOK
	case "help", "--help", "-h":
		fmt.Fprint(stdout, usage)
		return exitOK
	default:
		fmt.Fprintf(stderr, "telguard: unknown command %q\n\n%s", cmd, usage)
		return exitUsage
	}
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.Is(err, errUsage):
		fmt.Fprintln(stderr, "telguard:", err)
		return exitUsage
	default:
		fmt.Fprintln(stderr, "telguard:", err)
		return exitError
	}
}

func versionString() string {
	v := Version
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				v += " (" + s.Value[:12] + ")"
			}
		}
		v += " " + bi.GoVersion
	}
	return v
}

// flags returns a FlagSet whose --help prints text then the flags to stdout.
func (e *env) flags(name, text string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fs.SetOutput(e.stdout)
		fmt.Fprint(e.stdout, strings.TrimLeft(text, "\n"))
		fmt.Fprintln(e.stdout, "\nFlags:")
		fs.PrintDefaults()
		fs.SetOutput(e.stderr)
	}
	return fs
}

// parse parses flags, turning flag errors into usage errors.
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err.Error()}
	}
	return nil
}
