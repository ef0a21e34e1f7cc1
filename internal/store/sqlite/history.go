package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"net/netip"
	"time"

	"github.com/telguard/telguard/internal/event"
	"github.com/telguard/telguard/internal/store"
)

// historyPage is how many calls History reads per query: it holds no
// connection while fn runs, so fn may use the store.
const historyPage = 1000

const insertHistorySQL = `INSERT INTO call_history (tenant, call_id, account, from_number, to_number, direction, source_ip,
	started, answered, ended, billsec, disposition, flagged)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
	ON CONFLICT (tenant, call_id) DO NOTHING`

// sameHistorySQL tells whether the stored call under an id holds exactly
// the fields of a record that was not inserted because of it.
const sameHistorySQL = `SELECT account = ? AND from_number = ? AND to_number = ? AND direction = ? AND source_ip = ?
	AND started = ? AND answered IS ? AND ended = ? AND billsec = ? AND disposition = ?
	FROM call_history WHERE tenant = ? AND call_id = ?`

// PutHistory stores calls; see store.CallHistory.
func (db *DB) PutHistory(ctx context.Context, tenant string, recs []event.CallRecord) (store.PutResult, error) {
	var res store.PutResult
	for i := range recs {
		if err := store.ValidateRecord(tenant, &recs[i]); err != nil {
			return res, fmt.Errorf("put history: record %d: %w", i, err)
		}
	}
	if len(recs) == 0 {
		return res, nil
	}
	tx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return res, fmt.Errorf("put history: begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	st, err := tx.PrepareContext(ctx, insertHistorySQL)
	if err != nil {
		return res, fmt.Errorf("put history: %w", err)
	}
	defer st.Close()
	var same *sql.Stmt // prepared at the first call already stored
	for i := range recs {
		r := &recs[i]
		ip := ""
		if r.SourceIP.IsValid() {
			ip = r.SourceIP.String()
		}
		args := []any{r.Account, r.From, r.To, string(r.Direction), ip,
			nanos(r.Start), nullTime(r.Answer), nanos(r.End), int64(r.Billsec), r.Disposition}
		out, err := st.ExecContext(ctx, append(append([]any{tenant, r.CallID}, args...), r.Flagged)...)
		if err != nil {
			return store.PutResult{}, fmt.Errorf("put history: call %q: %w", r.CallID, err)
		}
		if n, err := out.RowsAffected(); err == nil && n > 0 {
			res.New += int(n)
			continue
		}
		if same == nil {
			if same, err = tx.PrepareContext(ctx, sameHistorySQL); err != nil {
				return store.PutResult{}, fmt.Errorf("put history: %w", err)
			}
			defer same.Close()
		}
		var eq bool
		if err := same.QueryRowContext(ctx, append(args, tenant, r.CallID)...).Scan(&eq); err != nil {
			return store.PutResult{}, fmt.Errorf("put history: compare call %q: %w", r.CallID, err)
		}
		if !eq {
			res.Changed++
		}
	}
	if err := tx.Commit(); err != nil {
		return store.PutResult{}, fmt.Errorf("put history: commit: %w", err)
	}
	return res, nil
}

// History reads a tenant's calls in start order; see store.CallHistory.
// It pages by (started, call_id), so a call stored meanwhile behind the
// page being read is not seen, and none is seen twice.
func (db *DB) History(ctx context.Context, tenant string, from, to time.Time, fn func(event.CallRecord) error) error {
	lo, hi := int64(math.MinInt64), int64(math.MaxInt64)
	if !from.IsZero() {
		lo = nanos(from)
	}
	if !to.IsZero() {
		hi = nanos(to)
	}
	afterStart, afterID := lo, ""
	first := true
	page := make([]event.CallRecord, 0, historyPage)
	for {
		page = page[:0]
		// The first page includes calls starting at from itself.
		// A row value, which SQLite walks on the index; the equivalent OR
		// made it scan the tenant's history for every page.
		cond := `(started, call_id) > (?, ?)`
		args := []any{tenant, afterStart, afterID, hi, historyPage}
		if first {
			cond = `started >= ?`
			args = []any{tenant, afterStart, hi, historyPage}
		}
		err := queryEach(ctx, db.read, `SELECT call_id, account, from_number, to_number, direction, source_ip,
			started, answered, ended, billsec, disposition, flagged
			FROM call_history WHERE tenant = ? AND (`+cond+`) AND started < ?
			ORDER BY started, call_id LIMIT ?`, args,
			func(r *sql.Rows) error {
				rec := event.CallRecord{Tenant: tenant}
				var (
					dir, ip              string
					started, ended, bill int64
					answered             sql.NullInt64
				)
				if err := r.Scan(&rec.CallID, &rec.Account, &rec.From, &rec.To, &dir, &ip,
					&started, &answered, &ended, &bill, &rec.Disposition, &rec.Flagged); err != nil {
					return err
				}
				rec.Direction = event.Direction(dir)
				if ip != "" {
					rec.SourceIP, _ = netip.ParseAddr(ip)
				}
				rec.Start, rec.End = time.Unix(0, started).UTC(), time.Unix(0, ended).UTC()
				rec.Answer = fromNullTime(answered)
				rec.Billsec = time.Duration(bill)
				page = append(page, rec)
				return nil
			})
		if err != nil {
			return fmt.Errorf("read history: %w", err)
		}
		for _, rec := range page {
			if err := fn(rec); err != nil {
				return err
			}
		}
		if len(page) < historyPage {
			return nil
		}
		last := page[len(page)-1]
		afterStart, afterID, first = nanos(last.Start), last.CallID, false
	}
}

// DeleteHistory deletes a tenant's calls; see store.CallHistory.
func (db *DB) DeleteHistory(ctx context.Context, tenant string, before time.Time) (int64, error) {
	if tenant == "" {
		return 0, fmt.Errorf("delete history: empty tenant: %w", store.ErrInvalidRecord)
	}
	hi := int64(math.MaxInt64)
	if !before.IsZero() {
		hi = nanos(before)
	}
	// In chunks, like Prune, so a daemon writing meanwhile is not held up.
	n, err := db.deleteHistoryChunked(ctx, `DELETE FROM call_history WHERE (tenant, call_id) IN
		(SELECT tenant, call_id FROM call_history WHERE tenant = ? AND started < ? LIMIT ?)`, tenant, hi)
	if err != nil {
		return n, fmt.Errorf("delete history: %w", err)
	}
	return n, nil
}

// PruneHistory deletes every tenant's old calls; see store.CallHistory.
func (db *DB) PruneHistory(ctx context.Context, before time.Time) (int64, error) {
	if before.IsZero() {
		return 0, nil
	}
	n, err := db.deleteHistoryChunked(ctx, `DELETE FROM call_history WHERE (tenant, call_id) IN
		(SELECT tenant, call_id FROM call_history WHERE started < ? LIMIT ?)`, nanos(before))
	if err != nil {
		return n, fmt.Errorf("prune history: %w", err)
	}
	return n, nil
}

// deleteHistoryChunked runs a DELETE whose last parameter is a row limit
// until it deletes fewer than pruneChunk rows.
func (db *DB) deleteHistoryChunked(ctx context.Context, query string, args ...any) (int64, error) {
	var total int64
	for {
		res, err := db.write.ExecContext(ctx, query, append(args, pruneChunk)...)
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
