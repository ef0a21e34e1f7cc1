package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"
)

const webhooksHelp = `
Usage:
  telguard webhooks dlq list   [--url URL] [--key KEY] [--limit N]
  telguard webhooks dlq replay [--url URL] [--key KEY] ID

Webhook deliveries to your destinations (a CRM) that ran out of retries go
to a dead-letter spool in the running daemon. 'list' shows the API key's
tenant's dead letters (no payloads); 'replay' sends one again under the
same webhook id, so a receiver that deduplicates by id is safe, and
re-enables a destination a 410 had disabled.

The key defaults to $TELGUARD_API_KEY, then to the key kept in
./data/api-key.
`

func (e *env) webhooks(args []string) error {
	if len(args) < 2 || args[0] != "dlq" || (args[1] != "list" && args[1] != "replay") {
		fmt.Fprint(e.stdout, strings.TrimLeft(webhooksHelp, "\n"))
		if len(args) > 0 && (args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
			return nil
		}
		return usagef("webhooks: want dlq list or dlq replay ID")
	}
	fs := e.flags("webhooks dlq "+args[1], webhooksHelp)
	base := fs.String("url", "http://127.0.0.1:8080", "decision API base `URL`")
	key := fs.String("key", "", "API `key` (default $TELGUARD_API_KEY or ./data/api-key)")
	limit := fs.Int("limit", 100, "dead letters to list (1–1000)")
	if err := parse(fs, args[2:]); err != nil {
		return err
	}
	k, err := apiKey(*key)
	if err != nil {
		return err
	}
	root := strings.TrimRight(*base, "/") + "/v1/webhooks/dlq"
	if args[1] == "replay" {
		if fs.NArg() != 1 {
			return usagef("webhooks dlq replay: want exactly one ID")
		}
		body, code, err := call(http.MethodPost, root+"/"+url.PathEscape(fs.Arg(0))+"/replay", k)
		if err != nil {
			return err
		}
		if code != http.StatusNoContent {
			return fmt.Errorf("replay %s: %d: %s", fs.Arg(0), code, body)
		}
		fmt.Fprintf(e.stdout, "dead letter %s queued for delivery again\n", fs.Arg(0))
		return nil
	}
	if fs.NArg() != 0 {
		return usagef("webhooks dlq list: unexpected argument %q", fs.Arg(0))
	}
	body, code, err := call(http.MethodGet, fmt.Sprintf("%s?limit=%d", root, *limit), k)
	if err != nil {
		return err
	}
	if code != http.StatusOK {
		return fmt.Errorf("list dead letters: %d: %s", code, body)
	}
	var page struct {
		DeadLetters []struct {
			ID, Destination, Type, LastError string `json:",omitempty"`
			Attempts                         int
			Failed                           time.Time
		} `json:"dead_letters"`
	}
	if err := json.Unmarshal(body, &page); err != nil {
		return fmt.Errorf("list dead letters: %w", err)
	}
	if len(page.DeadLetters) == 0 {
		fmt.Fprintln(e.stdout, "no dead letters")
		return nil
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tDESTINATION\tTYPE\tATTEMPTS\tFAILED\tLAST ERROR")
	for _, d := range page.DeadLetters {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", d.ID, d.Destination, d.Type, d.Attempts, d.Failed.Format(time.RFC3339), d.LastError)
	}
	return tw.Flush()
}

// call makes one authenticated request to the daemon and returns the body
// (at most 1 MiB) and status.
func call(method, u, key string) ([]byte, int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return nil, 0, usagef("%v", err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return body, resp.StatusCode, err
}
