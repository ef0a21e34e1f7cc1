package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/telguard/telguard/internal/event"
)

// ErrWriterStopped is returned by Flush when the Writer's Run has returned
// with changes still unwritten, and by Run when called again.
var ErrWriterStopped = errors.New("writer stopped")

// ErrDropped is returned by Flush when the Writer gave up on changes while
// the flush waited: a batch Apply kept failing after its retries.
var ErrDropped = errors.New("changes dropped")

// WriterOptions tune a Writer. Zero values take the defaults.
type WriterOptions struct {
	MaxBatch      int           // changes per Apply; 0 → 1024
	FlushInterval time.Duration // how long a partial batch waits for company; 0 → 25ms
	QueueSize     int           // changes queued before Submit blocks; 0 → 65536
	// ShedLogAbove, when > 0, is the queue length above which decision-log
	// and call-history records (OpDecision, OpPutHistory) are shed instead
	// of queued: both are records,
	// the calls are the business, so a store that falls behind must not slow
	// decisions down. Durable state changes are never shed, nor alerts
	// and ban records (see keptLog): each is raised once, not per call.
	ShedLogAbove int
}

// WriterStats counts what a Writer did.
type WriterStats struct {
	Batches int64 // batches applied
	Changes int64 // changes written
	Errors  int64 // failed Apply calls, retries included
	Dropped int64 // changes given up on: invalid, failing after retries, or submitted after Run returned
	Shed    int64 // decision-log and call-history records not written because the queue was above ShedLogAbove
	Queued  int   // changes waiting to be written
}

// The retry schedule of a failing batch: applyAttempts tries, sleeping
// firstBackoff, then twice as long each time, in between.
const (
	applyAttempts = 4
	firstBackoff  = 50 * time.Millisecond
)

// Writer batches state changes into a Store off the decision path: Submit
// only enqueues, and Run applies the queue in batches of up to MaxBatch
// changes, at least every FlushInterval. Changes are applied in the order
// they were submitted. A Writer is safe for concurrent use.
type Writer struct {
	store Store
	log   *slog.Logger
	opts  WriterOptions
	wake  chan struct{} // tells Run that the queue changed; capacity 1

	mu       sync.Mutex
	notFull  *sync.Cond // Submit waits on it while the queue is full
	queue    []event.Change
	accepted uint64        // changes ever queued
	finished uint64        // changes ever taken off the queue and written or dropped
	progress chan struct{} // closed (and replaced) when finished advances or Run stops
	flushing int           // Flush calls waiting; Run does not linger while > 0
	drops    int64         // batches dropped, for Flush to notice
	running  bool
	stopped  bool

	batches, changes, errors, dropped, shed atomic.Int64
}

// NewWriter returns a Writer applying to s. log may be nil.
func NewWriter(s Store, log *slog.Logger, o WriterOptions) *Writer {
	if o.MaxBatch <= 0 {
		o.MaxBatch = 1024
	}
	if o.FlushInterval <= 0 {
		o.FlushInterval = 25 * time.Millisecond
	}
	if o.QueueSize <= 0 {
		o.QueueSize = 65536
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	w := &Writer{
		store:    s,
		log:      log,
		opts:     o,
		wake:     make(chan struct{}, 1),
		progress: make(chan struct{}),
	}
	w.notFull = sync.NewCond(&w.mu)
	return w
}

// keptLog reports a decision-log record that is never shed: an alert or
// a ban's record (rules sip.flood, ban.lifted and webhook.*). Each is
// written once for an episode, not once per call, so a shed one would
// leave the episode off the record.
func keptLog(d *event.Decision) bool {
	if d == nil {
		return false
	}
	for _, r := range d.Reasons {
		if r.Rule == "sip.flood" || r.Rule == "ban.lifted" || strings.HasPrefix(r.Rule, "webhook.") {
			return true
		}
	}
	return false
}

// Submit enqueues changes for writing and returns without waiting for the
// store. It blocks only while the queue is full, so durable state is never
// dropped for lack of room. Submit copies the records, so the caller may
// reuse them; the Decision.ID the store assigns is therefore not visible in
// the caller's copy. A change that fails ValidateChange is logged, counted
// as dropped and skipped rather than failing the batch it would join.
func (w *Writer) Submit(changes ...event.Change) {
	var buf [4]event.Change
	valid := buf[:0]
	for _, c := range changes {
		if err := ValidateChange(c); err != nil {
			w.dropped.Add(1)
			w.log.Error("store writer: dropping invalid change", "op", string(c.Op), "tenant", c.Tenant(), "err", err)
			continue
		}
		valid = append(valid, snapshot(c))
	}
	if len(valid) == 0 {
		return
	}
	w.mu.Lock()
	if w.opts.ShedLogAbove > 0 && len(w.queue) > w.opts.ShedLogAbove {
		kept := valid[:0]
		for _, c := range valid {
			if c.Op == event.OpPutHistory || c.Op == event.OpDecision && !keptLog(c.Decision) {
				continue
			}
			kept = append(kept, c)
		}
		if n := len(valid) - len(kept); n > 0 {
			w.shed.Add(int64(n))
			valid = kept
			if len(valid) == 0 {
				w.mu.Unlock()
				return
			}
		}
	}
	for len(w.queue) >= w.opts.QueueSize && !w.stopped {
		w.notFull.Wait()
	}
	if w.stopped {
		w.mu.Unlock()
		w.dropped.Add(int64(len(valid)))
		w.log.Error("store writer: dropping changes submitted after the writer stopped", "changes", len(valid))
		return
	}
	before := len(w.queue)
	w.queue = append(w.queue, valid...)
	w.accepted += uint64(len(valid))
	poke := before == 0 || len(w.queue) >= w.batchTarget()
	w.mu.Unlock()
	if poke {
		w.poke()
	}
}

// Run applies queued changes until ctx is done, then drains what is queued
// (including changes submitted while it drains) and returns nil. Submit
// after Run has returned drops the changes with an error log.
func (w *Writer) Run(ctx context.Context) error {
	w.mu.Lock()
	if w.running || w.stopped {
		w.mu.Unlock()
		return fmt.Errorf("run writer: %w", ErrWriterStopped)
	}
	w.running = true
	w.mu.Unlock()

	// Apply outlives ctx: a batch that has been taken off the queue is
	// written (or retried) even while shutting down.
	applyCtx := context.WithoutCancel(ctx)
	linger := time.NewTimer(time.Hour)
	linger.Stop()
	for {
		if w.Stats().Queued == 0 {
			select {
			case <-ctx.Done():
				return w.drain(applyCtx)
			case <-w.wake:
				continue
			}
		}
		// Let a partial batch fill for up to FlushInterval, unless someone
		// is waiting in Flush.
		if !w.ready() {
			linger.Reset(w.opts.FlushInterval)
		wait:
			for !w.ready() {
				select {
				case <-ctx.Done():
					linger.Stop()
					return w.drain(applyCtx)
				case <-w.wake:
				case <-linger.C:
					break wait
				}
			}
			linger.Stop()
		}
		w.mu.Lock()
		batch := w.takeLocked()
		w.mu.Unlock()
		w.write(applyCtx, batch)
	}
}

// drain writes everything queued, then marks the writer stopped.
func (w *Writer) drain(ctx context.Context) error {
	for {
		w.mu.Lock()
		if len(w.queue) == 0 {
			w.stopped = true
			w.notFull.Broadcast()
			close(w.progress)
			w.progress = make(chan struct{})
			w.mu.Unlock()
			return nil
		}
		batch := w.takeLocked()
		w.mu.Unlock()
		w.write(ctx, batch)
	}
}

// Flush returns once every change submitted before the call has been
// written, or with ctx's error when ctx ends first. It returns an error
// wrapping ErrDropped if a batch was given up on while it waited, and
// ErrWriterStopped if Run returned before the changes were written.
func (w *Writer) Flush(ctx context.Context) error {
	w.mu.Lock()
	target := w.accepted
	drops := w.drops
	w.flushing++
	w.mu.Unlock()
	w.poke()
	defer func() {
		w.mu.Lock()
		w.flushing--
		w.mu.Unlock()
	}()
	for {
		w.mu.Lock()
		done, stopped, dropped, progress := w.finished >= target, w.stopped, w.drops-drops, w.progress
		w.mu.Unlock()
		switch {
		case done && dropped > 0:
			return fmt.Errorf("flush writer: %d batches: %w", dropped, ErrDropped)
		case done:
			return nil
		case stopped:
			return fmt.Errorf("flush writer: %w", ErrWriterStopped)
		}
		select {
		case <-progress:
		case <-ctx.Done():
			return fmt.Errorf("flush writer: %w", ctx.Err())
		}
	}
}

// Stats returns the Writer's counters.
func (w *Writer) Stats() WriterStats {
	w.mu.Lock()
	queued := len(w.queue)
	w.mu.Unlock()
	return WriterStats{
		Batches: w.batches.Load(),
		Changes: w.changes.Load(),
		Errors:  w.errors.Load(),
		Dropped: w.dropped.Load(),
		Shed:    w.shed.Load(),
		Queued:  queued,
	}
}

// write applies one batch, retrying with back-off, and records the outcome.
func (w *Writer) write(ctx context.Context, batch []event.Change) {
	backoff := firstBackoff
	var err error
	for attempt := 1; attempt <= applyAttempts; attempt++ {
		if err = w.store.Apply(ctx, batch); err == nil {
			break
		}
		w.errors.Add(1)
		if errors.Is(err, ErrInvalidChange) || attempt == applyAttempts {
			break
		}
		w.log.Warn("store writer: apply failed, retrying", "changes", len(batch), "attempt", attempt, "err", err)
		time.Sleep(backoff)
		backoff *= 2
	}
	if err == nil {
		w.batches.Add(1)
		w.changes.Add(int64(len(batch)))
	} else {
		w.dropped.Add(int64(len(batch)))
		w.log.Error("store writer: dropping batch after failed retries", "changes", len(batch), "err", err)
	}
	w.mu.Lock()
	w.finished += uint64(len(batch))
	if err != nil {
		w.drops++
	}
	close(w.progress)
	w.progress = make(chan struct{})
	w.mu.Unlock()
	clear(batch) // release the records; this part of the array is no longer queued
}

// takeLocked removes and returns the next batch. w.mu must be held.
func (w *Writer) takeLocked() []event.Change {
	n := min(len(w.queue), w.opts.MaxBatch)
	batch := w.queue[:n:n] // capped so that appends to the queue never touch it
	w.queue = w.queue[n:]
	if len(w.queue) == 0 {
		w.queue = nil // start the next array afresh rather than creeping along this one
	}
	w.notFull.Broadcast()
	return batch
}

// ready reports whether Run should write now rather than wait for a fuller
// batch.
func (w *Writer) ready() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.queue) >= w.batchTarget() || (w.flushing > 0 && len(w.queue) > 0)
}

// batchTarget is the queue length at which a batch is full.
func (w *Writer) batchTarget() int { return min(w.opts.MaxBatch, w.opts.QueueSize) }

func (w *Writer) poke() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// snapshot returns c with its record copied, so that the caller's later
// changes to the record (or the store's setting of Decision.ID) do not race.
func snapshot(c event.Change) event.Change {
	switch {
	case c.Call != nil:
		v := *c.Call
		c.Call = &v
	case c.Quota != nil:
		v := *c.Quota
		c.Quota = &v
	case c.Ban != nil:
		v := *c.Ban
		c.Ban = &v
	case c.Suspension != nil:
		v := *c.Suspension
		c.Suspension = &v
	case c.Decision != nil:
		v := *c.Decision
		v.Reasons = slices.Clone(v.Reasons)
		c.Decision = &v
	case c.History != nil:
		v := *c.History
		c.History = &v
	}
	return c
}
