package cli

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

const accountsHelp = `
Usage: telguard accounts unsuspend [--url URL] [--key KEY] ACCOUNT

Lifts an account's international-calling suspension (set by escalation
after repeated blocked calls) in a running daemon, through its API. The
tenant is the API key's. The key defaults to $TELGUARD_API_KEY, then to the
key kept in ./data/api-key.
`

func (e *env) accounts(args []string) error {
	if len(args) == 0 || args[0] != "unsuspend" {
		fmt.Fprint(e.stdout, strings.TrimLeft(accountsHelp, "\n"))
		if len(args) > 0 && (args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
			return nil
		}
		return usagef("accounts: want the subcommand unsuspend")
	}
	fs := e.flags("accounts unsuspend", accountsHelp)
	base := fs.String("url", "http://127.0.0.1:8080", "decision API base `URL`")
	key := fs.String("key", "", "API `key` (default $TELGUARD_API_KEY or ./data/api-key)")
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("accounts unsuspend: want exactly one ACCOUNT")
	}
	k, err := apiKey(*key)
	if err != nil {
		return err
	}
	u := strings.TrimRight(*base, "/") + "/v1/accounts/" + url.PathEscape(fs.Arg(0)) + "/unsuspend"
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, nil)
	if err != nil {
		return usagef("accounts unsuspend: %v", err)
	}
	req.Header.Set("Authorization", "Bearer "+k)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("unsuspend: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	switch resp.StatusCode {
	case http.StatusNoContent, http.StatusOK:
		fmt.Fprintf(e.stdout, "account %s: international calling restored\n", fs.Arg(0))
		return nil
	case http.StatusNotFound:
		return fmt.Errorf("account %s is not suspended (%s)", fs.Arg(0), strings.TrimSpace(string(body)))
	default:
		return fmt.Errorf("unsuspend: %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
}

// apiKey finds the key a client command uses.
func apiKey(flagValue string) (string, error) {
	if flagValue != "" {
		return flagValue, nil
	}
	if k := os.Getenv("TELGUARD_API_KEY"); k != "" {
		return k, nil
	}
	if b, err := os.ReadFile("data/api-key"); err == nil {
		return strings.TrimSpace(string(b)), nil
	}
	return "", usagef("no API key: pass --key, set TELGUARD_API_KEY, or run from the directory holding data/api-key")
}
