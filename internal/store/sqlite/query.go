package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
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

	err = queryEach(ctx, tx, `SELECT account, call_id, source_ip, e164, country, international, rate_per_minute, started, answered
		FROM calls WHERE tenant = ? ORDER BY call_id`, []any{tenant},
		func(r *sql.Rows) error {
			c := event.Call{Tenant: tenant}
			var started, answered sql.NullInt64
			if err := r.Scan(&c.Account, &c.CallID, &c.SourceIP, &c.E164, &c.Country, &c.International,
				&c.RatePerMinute, &started, &answered); err != nil {
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
		b     strings.Builder
		args  []any
		order = "d.id"
	)
	if q.Rule != "" {
		order = "r.decision_id"
		// Walk the rule index, which is already in id order; ordering by
		// its column (equal to d.id) tells SQLite so.
		b.WriteString(`SELECT d.id, d.body FROM decision_rules r JOIN decisions d ON d.id = r.decision_id
			WHERE r.tenant = ? AND r.rule = ? AND d.tenant = ?`)
		args = append(args, tenant, q.Rule, tenant)
		if after > 0 {
			b.WriteString(` AND r.decision_id < ?`)
			args = append(args, after)
		}
	} else {
		b.WriteString(`SELECT d.id, d.body FROM decisions d WHERE d.tenant = ?`)
		args = append(args, tenant)
		if after > 0 {
			b.WriteString(` AND d.id < ?`)
			args = append(args, after)
		}
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
	b.WriteString(` ORDER BY ` + order + ` DESC LIMIT ?`)
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
		n, err := db.deleteChunked(ctx,
			`DELETE FROM decisions WHERE id IN (SELECT id FROM decisions WHERE time < ? LIMIT ?)`, nanos(before))
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
