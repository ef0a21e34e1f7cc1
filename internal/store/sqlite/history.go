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
	started, answered, ended, billsec, disposition)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
	ON CONFLICT (tenant, call_id) DO NOTHING`

// PutHistory stores calls; see store.CallHistory.
func (db *DB) PutHistory(ctx context.Context, tenant string, recs []event.CallRecord) (int, error) {
	for i := range recs {
		if err := store.ValidateRecord(tenant, &recs[i]); err != nil {
			return 0, fmt.Errorf("put history: record %d: %w", i, err)
		}
	}
	if len(recs) == 0 {
		return 0, nil
	}
	tx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("put history: begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	st, err := tx.PrepareContext(ctx, insertHistorySQL)
	if err != nil {
		return 0, fmt.Errorf("put history: %w", err)
	}
	defer st.Close()
	added := 0
	for i := range recs {
		r := &recs[i]
		ip := ""
		if r.SourceIP.IsValid() {
			ip = r.SourceIP.String()
		}
		res, err := st.ExecContext(ctx, tenant, r.CallID, r.Account, r.From, r.To, string(r.Direction), ip,
			nanos(r.Start), nullTime(r.Answer), nanos(r.End), int64(r.Billsec), r.Disposition)
		if err != nil {
			return 0, fmt.Errorf("put history: call %q: %w", r.CallID, err)
		}
		if n, err := res.RowsAffected(); err == nil {
			added += int(n)
		}
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("put history: commit: %w", err)
	}
	return added, nil
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
			started, answered, ended, billsec, disposition
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
					&started, &answered, &ended, &bill, &rec.Disposition); err != nil {
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
