package decisionapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"
)

// DeadLetter is a webhook delivery that ran out of retries. It carries no
// payload: the spool keeps that, and replay sends it again.
type DeadLetter struct {
	ID          string    `json:"id"`
	Destination string    `json:"destination"`
	Type        string    `json:"type"`
	Attempts    int       `json:"attempts"`
	LastError   string    `json:"last_error"`
	Created     time.Time `json:"created"`
	Failed      time.Time `json:"failed"`
}

// DeadLetters is the outbound webhook delivery's dead-letter spool, scoped
// by tenant: a key sees and replays only its tenant's destinations.
type DeadLetters interface {
	DeadLetters(ctx context.Context, tenant string, limit int) ([]DeadLetter, error)
	// ReplayDeadLetter sends a dead letter again; ErrNoDeadLetter when the
	// tenant has none with that id.
	ReplayDeadLetter(ctx context.Context, tenant, id string) error
}

// ErrNoDeadLetter is returned by a DeadLetters for an id the tenant does
// not have.
var ErrNoDeadLetter = errors.New("no such dead letter")

// SetDeadLetters enables the /v1/webhooks/dlq routes; without it they
// answer 501. Call it before Run.
func (s *Server) SetDeadLetters(dl DeadLetters) { s.dlq = dl }

type deadLetterPage struct {
	DeadLetters []DeadLetter `json:"dead_letters"`
}

func (s *Server) listDeadLetters(x *exchange, r *http.Request) error {
	if s.dlq == nil {
		return errNotConfigured
	}
	limit := 100
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return badField("limit", "want a whole number from 1 to 1000")
		}
		limit = n
	}
	out, err := s.dlq.DeadLetters(r.Context(), x.tenant, limit)
	if err != nil {
		return fmt.Errorf("list dead letters: %w", err)
	}
	if out == nil {
		out = []DeadLetter{}
	}
	x.json(http.StatusOK, deadLetterPage{DeadLetters: out})
	return nil
}

func (s *Server) replayDeadLetter(x *exchange, r *http.Request) error {
	if s.dlq == nil {
		return errNotConfigured
	}
	id := r.PathValue("id")
	if err := validText("id", id, 128, true); err != nil {
		return err
	}
	if err := s.dlq.ReplayDeadLetter(r.Context(), x.tenant, id); err != nil {
		if errors.Is(err, ErrNoDeadLetter) {
			return &requestError{code: http.StatusNotFound, field: "id", msg: "no such dead letter"}
		}
		return fmt.Errorf("replay dead letter: %w", err)
	}
	s.logger.LogAttrs(r.Context(), slog.LevelInfo, "dead letter replayed",
		slog.String("tenant", x.tenant), slog.String("id", id), slog.String("key", x.keyID))
	x.noContent()
	return nil
}
