package engine

import (
	"context"
	"fmt"

	"github.com/telguard/telguard/internal/event"
)

// Observe takes a lifecycle event of a call the engine allowed: answered or
// ended. Concurrency, minutes and money are counted from these. An event
// for a call the engine does not know is ErrUnknownCall.
func (e *Engine) Observe(_ context.Context, ev event.Event) error {
	if ev.Kind != event.CallAnswered && ev.Kind != event.CallEnded {
		return fmt.Errorf("%w: observe takes call_answered or call_ended, not %q", ErrBadEvent, ev.Kind)
	}
	if ev.CallID == "" {
		return fmt.Errorf("%w: call_id is required", ErrBadEvent)
	}
	if ev.Duration < 0 {
		return fmt.Errorf("%w: duration must not be negative", ErrBadEvent)
	}
	t := e.pol.Load().Tenants[ev.Tenant]
	if t == nil {
		return ErrUnknownTenant
	}
	if ev.Time.IsZero() {
		ev.Time = e.clock.Now()
	}
	s := e.state(ev.Tenant)
	s.mu.Lock()
	changes := s.expire(t, ev.Time, nil)
	f := s.calls[ev.CallID]
	if f == nil && s.observeInbound(t, ev, &changes) {
		s.mu.Unlock()
		if len(changes) > 0 {
			e.sink.Emit(changes...)
		}
		return nil
	}
	if f == nil {
		s.mu.Unlock()
		if len(changes) > 0 {
			e.sink.Emit(changes...)
		}
		return ErrUnknownCall
	}
	switch ev.Kind {
	case event.CallAnswered:
		if f.Answered.IsZero() {
			f.Answered = ev.Time
			if f.Answered.Before(f.Started) {
				f.Answered = f.Started
			}
			c := f.Call
			changes = append(changes, event.Change{Op: event.OpPutCall, Call: &c})
			if rc := s.recent[f.Account]; rc != nil {
				rc.r.Answer(f.CallID)
			}
		}
	case event.CallEnded:
		billed := ev.Duration
		if billed == 0 && !f.Answered.IsZero() {
			billed = ev.Time.Sub(f.Answered)
		}
		// A reported duration longer than the call could have lasted is
		// believed: the money was spent either way.
		changes = s.endCall(f, t, ev.Time, billed, changes)
	}
	s.mu.Unlock()
	e.sink.Emit(changes...)
	return nil
}
