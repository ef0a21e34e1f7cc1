package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/telguard/telguard/internal/event"
	"github.com/telguard/telguard/internal/store"
)

// Load returns a tenant's durable state; see store.Store. The four tables
// are read in one transaction, so they agree with each other.
func (db *DB) Load(ctx context.Context, tenant string, now time.Time) (event.State, error) {
	var st event.State
	tx, err := db.read.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return st, fmt.Errorf("load state: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // read-only

	err = queryEach(ctx, tx, `SELECT account, call_id, source_ip, e164, country, international, rate_per_minute, started, answered,
		from_number, to_number, flagged, new_network
		FROM calls WHERE tenant = ? ORDER BY call_id`, []any{tenant},
		func(r *sql.Rows) error {
			c := event.Call{Tenant: tenant}
			var started, answered sql.NullInt64
			if err := r.Scan(&c.Account, &c.CallID, &c.SourceIP, &c.E164, &c.Country, &c.International,
				&c.RatePerMinute, &started, &answered, &c.From, &c.To, &c.Flagged, &c.NewNetwork); err != nil {
				return err
			}
			c.Started, c.Answered = fromNullTime(started), fromNullTime(answered)
			st.Calls = append(st.Calls, c)
			return nil
		})
	if err != nil {
		return event.State{}, fmt.Errorf("load calls: %w", err)
	}

	err = queryEach(ctx, tx, `SELECT account, day, seconds, money
		FROM quota_usage WHERE tenant = ? ORDER BY account, day`, []any{tenant},
		func(r *sql.Rows) error {
			q := event.QuotaUsage{Tenant: tenant}
			if err := r.Scan(&q.Account, &q.Day, &q.Seconds, &q.Money); err != nil {
				return err
			}
			st.Quotas = append(st.Quotas, q)
			return nil
		})
	if err != nil {
		return event.State{}, fmt.Errorf("load quota usage: %w", err)
	}

	// A NULL until (the zero time) has long passed, so it never matches.
	err = queryEach(ctx, tx, `SELECT subject, until, rule, reason, created
		FROM ip_bans WHERE tenant = ? AND until > ? ORDER BY subject`, []any{tenant, nanos(now)},
		func(r *sql.Rows) error {
			b := event.IPBan{Tenant: tenant}
			var until, created sql.NullInt64
			if err := r.Scan(&b.Subject, &until, &b.Rule, &b.Reason, &created); err != nil {
				return err
			}
			b.Until, b.Created = fromNullTime(until), fromNullTime(created)
			st.Bans = append(st.Bans, b)
			return nil
		})
	if err != nil {
		return event.State{}, fmt.Errorf("load bans: %w", err)
	}

	err = queryEach(ctx, tx, `SELECT account, rule, reason, created
		FROM suspensions WHERE tenant = ? ORDER BY account`, []any{tenant},
		func(r *sql.Rows) error {
			s := event.Suspension{Tenant: tenant}
			var created sql.NullInt64
			if err := r.Scan(&s.Account, &s.Rule, &s.Reason, &created); err != nil {
				return err
			}
			s.Created = fromNullTime(created)
			st.Suspensions = append(st.Suspensions, s)
			return nil
		})
	if err != nil {
		return event.State{}, fmt.Errorf("load suspensions: %w", err)
	}
	return st, nil
}

// Decisions lists a tenant's decisions, newest first; see store.Store.
func (db *DB) Decisions(ctx context.Context, tenant string, q store.DecisionQuery) ([]event.Decision, string, error) {
	after, err := store.DecodeCursor(tenant, q.Cursor)
	if err != nil {
		return nil, "", fmt.Errorf("list decisions: %w", err)
	}
	limit := q.PageSize()

	var (
		b    strings.Builder
		args []any
	)
	b.WriteString(`SELECT d.id, d.body FROM decisions d WHERE d.tenant = ?`)
	args = append(args, tenant)
	if after > 0 {
		b.WriteString(` AND d.id < ?`)
		args = append(args, after)
	}
	if q.Rule != "" {
		// The body holds each reason as "rule":"ID"; match that exactly,
		// with LIKE's wildcards in the id escaped.
		enc, err := json.Marshal(q.Rule)
		if err != nil {
			return nil, "", fmt.Errorf("list decisions: %w", err)
		}
		b.WriteString(` AND d.body LIKE ? ESCAPE '\'`)
		args = append(args, `%"rule":`+likeEscape.Replace(string(enc))+`%`)
	}
	for _, f := range []struct{ col, val string }{{"account", q.Account}, {"verdict", q.Verdict}, {"call_id", q.CallID}} {
		if f.val != "" {
			b.WriteString(` AND d.` + f.col + ` = ?`)
			args = append(args, f.val)
		}
	}
	if !q.Since.IsZero() {
		b.WriteString(` AND d.time >= ?`)
		args = append(args, nanos(q.Since))
	}
	if !q.Until.IsZero() {
		b.WriteString(` AND d.time < ?`)
		args = append(args, nanos(q.Until))
	}
	b.WriteString(` ORDER BY d.id DESC LIMIT ?`)
	args = append(args, limit+1) // one more tells whether another page exists

	out := make([]event.Decision, 0, min(limit, 64))
	err = queryEach(ctx, db.read, b.String(), args, func(r *sql.Rows) error {
		var (
			id   int64
			body string
			d    event.Decision
		)
		if err := r.Scan(&id, &body); err != nil {
			return err
		}
		if err := json.Unmarshal([]byte(body), &d); err != nil {
			return fmt.Errorf("decode decision %d: %w", id, err)
		}
		d.ID = id
		out = append(out, d)
		return nil
	})
	if err != nil {
		return nil, "", fmt.Errorf("list decisions: %w", err)
	}
	next := ""
	if len(out) > limit {
		out = out[:limit]
		next = store.EncodeCursor(tenant, out[limit-1].ID)
	}
	return out, next, nil
}

// pruneChunk bounds how many rows one Prune transaction deletes, so that
// the writer is never held up for long behind a large prune.
const pruneChunk = 5000

// Prune deletes old decisions and quota days for all tenants; see
// store.Store.
func (db *DB) Prune(ctx context.Context, before time.Time, beforeDay string) (int64, error) {
	var total int64
	if !before.IsZero() {
		// Decisions are pruned in recording (id) order: everything
		// recorded before the first decision at or after before goes.
		// That reads only the rows it deletes, with no index on time.
		var boundary sql.NullInt64
		err := db.write.QueryRowContext(ctx,
			`SELECT id FROM decisions WHERE time >= ? ORDER BY id LIMIT 1`, nanos(before)).Scan(&boundary)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			boundary = sql.NullInt64{Int64: math.MaxInt64, Valid: true}
		case err != nil:
			return total, fmt.Errorf("prune decisions: %w", err)
		}
		n, err := db.deleteChunked(ctx,
			`DELETE FROM decisions WHERE id IN (SELECT id FROM decisions WHERE id < ? ORDER BY id LIMIT ?)`, boundary.Int64)
		total += n
		if err != nil {
			return total, fmt.Errorf("prune decisions: %w", err)
		}
	}
	if beforeDay != "" {
		n, err := db.deleteChunked(ctx,
			`DELETE FROM quota_usage WHERE (tenant, account, day) IN
			   (SELECT tenant, account, day FROM quota_usage WHERE day < ? LIMIT ?)`, beforeDay)
		total += n
		if err != nil {
			return total, fmt.Errorf("prune quota usage: %w", err)
		}
	}
	return total, nil
}

// deleteChunked runs query (whose last parameter is a LIMIT) until it
// deletes fewer than pruneChunk rows, each run its own transaction.
func (db *DB) deleteChunked(ctx context.Context, query string, arg any) (int64, error) {
	var total int64
	for {
		res, err := db.write.ExecContext(ctx, query, arg, pruneChunk)
		if err != nil {
			return total, err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return total, err
		}
		total += n
		if n < pruneChunk {
			return total, nil
		}
	}
}

// querier is what *sql.DB and *sql.Tx share.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// queryEach runs query and calls fn for each row.
func queryEach(ctx context.Context, q querier, query string, args []any, fn func(*sql.Rows) error) error {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := fn(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

// likeEscape escapes LIKE's wildcards for ESCAPE '\'.
var likeEscape = strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
