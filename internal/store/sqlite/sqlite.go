// Package sqlite is telguard's default store: one SQLite file in WAL mode
// (modernc.org/sqlite, no cgo). Writes go through a single connection, so
// they never contend with each other; reads use a pool of read-only
// connections that WAL lets run alongside the writer.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/telguard/telguard/internal/store"
)

// Memory is the path that opens a private in-memory database, for tests.
const Memory = ":memory:"

// busyTimeout is how long a connection waits for a lock held by another
// process (a backup tool, a second telguard by mistake) before failing.
const busyTimeout = 5 * time.Second

// DB is a Store in one SQLite database. It is safe for concurrent use.
type DB struct {
	path  string
	write *sql.DB // one connection: all writes are serialised here
	read  *sql.DB // read-only pool; the same as write for an in-memory database
	stmts statements
}

var _ store.Store = (*DB)(nil)

// Open opens the database at path (a file name, not a URI), creating it
// (mode 0600) and its directory (0750) if needed, and brings its schema up
// to date. Path Memory opens a private in-memory
// database. A database written by a newer telguard, with a migration this
// build does not know, is refused with an error wrapping ErrSchemaTooNew.
func Open(path string) (*DB, error) {
	if path == "" {
		return nil, errors.New("open database: empty path")
	}
	db := &DB{path: path}
	if err := db.open(); err != nil {
		db.closeAll()
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	return db, nil
}

func (db *DB) open() error {
	ms := busyTimeout.Milliseconds()
	if db.path == Memory {
		// Every connection to :memory: is a database of its own, so the one
		// connection serves reads and writes alike and must never be closed
		// while the DB is open.
		dsn := fmt.Sprintf(":memory:?_pragma=busy_timeout(%d)&_pragma=foreign_keys(1)&_txlock=immediate", ms)
		w, err := sql.Open("sqlite", dsn)
		if err != nil {
			return err
		}
		w.SetMaxOpenConns(1)
		w.SetMaxIdleConns(1)
		w.SetConnMaxLifetime(0)
		w.SetConnMaxIdleTime(0)
		db.write, db.read = w, w
	} else {
		if err := os.MkdirAll(filepath.Dir(db.path), 0o750); err != nil {
			return fmt.Errorf("create directory: %w", err)
		}
		// The decisions log holds phone numbers: create the file private.
		// SQLite gives its -wal and -shm files the same mode.
		f, err := os.OpenFile(db.path, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return fmt.Errorf("create file: %w", err)
		}
		f.Close()
		uri := "file:" + escapePath(db.path)
		// BEGIN IMMEDIATE takes the write lock up front, so a transaction
		// never fails half-way on lock upgrade.
		w, err := sql.Open("sqlite", fmt.Sprintf(
			"%s?_pragma=busy_timeout(%d)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=foreign_keys(1)&_txlock=immediate", uri, ms))
		if err != nil {
			return err
		}
		w.SetMaxOpenConns(1)
		w.SetMaxIdleConns(1)
		w.SetConnMaxLifetime(0)
		db.write = w
		// Create the file and switch it to WAL before any reader opens it.
		if err := w.Ping(); err != nil {
			return err
		}
		r, err := sql.Open("sqlite", fmt.Sprintf(
			"%s?_pragma=busy_timeout(%d)&_pragma=query_only(1)&_pragma=foreign_keys(1)", uri, ms))
		if err != nil {
			return err
		}
		n := max(4, runtime.GOMAXPROCS(0))
		r.SetMaxOpenConns(n)
		r.SetMaxIdleConns(n)
		db.read = r
	}
	ctx := context.Background()
	if err := migrate(ctx, db.write, migrations); err != nil {
		return err
	}
	return db.stmts.prepare(ctx, db.write)
}

// Close closes the database. Calls in progress may fail.
func (db *DB) Close() error {
	// Keep the planner's statistics fresh; cheap, and best effort.
	_, _ = db.write.Exec(`PRAGMA optimize`)
	if err := db.closeAll(); err != nil {
		return fmt.Errorf("close database %s: %w", db.path, err)
	}
	return nil
}

func (db *DB) closeAll() error {
	errs := []error{db.stmts.close()}
	if db.read != nil && db.read != db.write {
		errs = append(errs, db.read.Close())
	}
	if db.write != nil {
		errs = append(errs, db.write.Close())
	}
	return errors.Join(errs...)
}

// escapePath makes a file name safe inside a file: URI, where %, ? and #
// have meaning.
func escapePath(p string) string {
	return strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(p)
}

// Times are stored as Unix nanoseconds in UTC. NULL stands for the zero
// time; times outside what int64 nanoseconds reach (before 1678, after
// 2262) are clamped to its ends, so a "forever" ban still sorts last.

var (
	minNanos = time.Unix(0, math.MinInt64)
	maxNanos = time.Unix(0, math.MaxInt64)
)

func nanos(t time.Time) int64 {
	switch {
	case t.Before(minNanos):
		return math.MinInt64
	case t.After(maxNanos):
		return math.MaxInt64
	}
	return t.UnixNano()
}

// nullTime encodes t for a nullable time column.
func nullTime(t time.Time) sql.NullInt64 {
	if t.IsZero() {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: nanos(t), Valid: true}
}

// fromNullTime decodes a nullable time column.
func fromNullTime(n sql.NullInt64) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return time.Unix(0, n.Int64).UTC()
}
