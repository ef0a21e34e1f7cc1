package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/telguard/telguard/internal/event"
	"github.com/telguard/telguard/internal/store"
)

// The write statements, indexed by the stmt* constants.
const (
	stmtPutCall = iota
	stmtDeleteCall
	stmtPutQuota
	stmtPutBan
	stmtDeleteBan
	stmtPutSuspension
	stmtDeleteSuspension
	stmtInsertDecision
	stmtPutHistory
	numStmts
)

var statementSQL = [numStmts]string{
	stmtPutCall: `INSERT INTO calls (tenant, call_id, account, source_ip, e164, country, international, rate_per_minute, started, answered,
	   from_number, to_number, flagged, new_network)
	 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
	 ON CONFLICT (tenant, call_id) DO UPDATE SET
	   account = excluded.account, source_ip = excluded.source_ip, e164 = excluded.e164,
	   country = excluded.country, international = excluded.international,
	   rate_per_minute = excluded.rate_per_minute, started = excluded.started, answered = excluded.answered,
	   from_number = excluded.from_number, to_number = excluded.to_number, flagged = excluded.flagged,
	   new_network = excluded.new_network`,
	stmtDeleteCall: `DELETE FROM calls WHERE tenant = ? AND call_id = ?`,
	stmtPutQuota: `INSERT INTO quota_usage (tenant, account, day, seconds, money) VALUES (?, ?, ?, ?, ?)
	 ON CONFLICT (tenant, account, day) DO UPDATE SET seconds = excluded.seconds, money = excluded.money`,
	stmtPutBan: `INSERT INTO ip_bans (tenant, subject, until, rule, reason, created) VALUES (?, ?, ?, ?, ?, ?)
	 ON CONFLICT (tenant, subject) DO UPDATE SET
	   until = excluded.until, rule = excluded.rule, reason = excluded.reason, created = excluded.created`,
	stmtDeleteBan: `DELETE FROM ip_bans WHERE tenant = ? AND subject = ?`,
	stmtPutSuspension: `INSERT INTO suspensions (tenant, account, rule, reason, created) VALUES (?, ?, ?, ?, ?)
	 ON CONFLICT (tenant, account) DO UPDATE SET
	   rule = excluded.rule, reason = excluded.reason, created = excluded.created`,
	stmtDeleteSuspension: `DELETE FROM suspensions WHERE tenant = ? AND account = ?`,
	stmtInsertDecision:   `INSERT INTO decisions (tenant, time, account, call_id, verdict, body) VALUES (?, ?, ?, ?, ?, ?)`,
	// A call id already in the history (an imported CDR, or a caller
	// reusing a Call-ID) keeps its first record.
	stmtPutHistory: insertHistorySQL,
}

// statements are the write statements, prepared once on the write
// connection, which every write transaction then reuses.
type statements [numStmts]*sql.Stmt

func (s *statements) prepare(ctx context.Context, db *sql.DB) error {
	for i, q := range statementSQL {
		st, err := db.PrepareContext(ctx, q)
		if err != nil {
			return fmt.Errorf("prepare statement: %w", err)
		}
		s[i] = st
	}
	return nil
}

func (s *statements) close() error {
	var errs []error
	for i, st := range s {
		if st != nil {
			errs = append(errs, st.Close())
			s[i] = nil
		}
	}
	return errors.Join(errs...)
}

// txn is one Apply's transaction with its statements bound to it.
type txn struct {
	ctx   context.Context
	tx    *sql.Tx
	db    *DB
	bound statements
}

func (t *txn) exec(i int, args ...any) (sql.Result, error) {
	if t.bound[i] == nil {
		t.bound[i] = t.tx.StmtContext(t.ctx, t.db.stmts[i])
	}
	return t.bound[i].ExecContext(t.ctx, args...)
}

// Apply writes changes in one transaction; see store.Store.
func (db *DB) Apply(ctx context.Context, changes []event.Change) error {
	if len(changes) == 0 {
		return nil
	}
	// Validate everything first: a bad change then costs no transaction.
	for i, c := range changes {
		if err := store.ValidateChange(c); err != nil {
			return fmt.Errorf("apply change %d: %w", i, err)
		}
	}
	ids := make([]int64, 0, 8)
	tx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("apply changes: begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	t := &txn{ctx: ctx, tx: tx, db: db}
	for i, c := range changes {
		id, err := t.apply(c)
		if err != nil {
			return fmt.Errorf("apply change %d (%s): %w", i, c.Op, err)
		}
		if c.Op == event.OpDecision {
			ids = append(ids, id)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("apply changes: commit: %w", err)
	}
	// Only a committed decision has an id.
	for _, c := range changes {
		if c.Op == event.OpDecision {
			c.Decision.ID, ids = ids[0], ids[1:]
		}
	}
	return nil
}

// apply writes one validated change and returns the new decision id for a
// decision.
func (t *txn) apply(c event.Change) (int64, error) {
	var err error
	switch c.Op {
	case event.OpPutCall:
		v := c.Call
		_, err = t.exec(stmtPutCall, v.Tenant, v.CallID, v.Account, v.SourceIP, v.E164, v.Country,
			v.International, v.RatePerMinute, nullTime(v.Started), nullTime(v.Answered), v.From, v.To, v.Flagged, v.NewNetwork)
	case event.OpDeleteCall:
		_, err = t.exec(stmtDeleteCall, c.Call.Tenant, c.Call.CallID)
	case event.OpPutQuota:
		v := c.Quota
		_, err = t.exec(stmtPutQuota, v.Tenant, v.Account, v.Day, v.Seconds, v.Money)
	case event.OpPutBan:
		v := c.Ban
		_, err = t.exec(stmtPutBan, v.Tenant, v.Subject, nullTime(v.Until), v.Rule, v.Reason, nullTime(v.Created))
	case event.OpDeleteBan:
		_, err = t.exec(stmtDeleteBan, c.Ban.Tenant, c.Ban.Subject)
	case event.OpPutSuspension:
		v := c.Suspension
		_, err = t.exec(stmtPutSuspension, v.Tenant, v.Account, v.Rule, v.Reason, nullTime(v.Created))
	case event.OpDeleteSuspension:
		_, err = t.exec(stmtDeleteSuspension, c.Suspension.Tenant, c.Suspension.Account)
	case event.OpDecision:
		return t.insertDecision(c.Decision)
	case event.OpPutHistory:
		r := c.History
		ip := ""
		if r.SourceIP.IsValid() {
			ip = r.SourceIP.String()
		}
		_, err = t.exec(stmtPutHistory, r.Tenant, r.CallID, r.Account, r.From, r.To, string(r.Direction), ip,
			nanos(r.Start), nullTime(r.Answer), nanos(r.End), int64(r.Billsec), r.Disposition, r.Flagged)
	default:
		// ValidateChange let through an op this backend does not know.
		err = fmt.Errorf("op %q: %w", c.Op, store.ErrInvalidChange)
	}
	return 0, err
}

func (t *txn) insertDecision(d *event.Decision) (int64, error) {
	// The body is stored without the id; the id column is the truth.
	v := *d
	v.ID = 0
	body, err := json.Marshal(&v)
	if err != nil {
		return 0, fmt.Errorf("encode decision: %w", err)
	}
	res, err := t.exec(stmtInsertDecision, d.Tenant, nanos(d.Time), d.Account, d.CallID, string(d.Verdict), string(body))
	if err != nil {
		return 0, err
	}
	return res.LastInsertId()
}
