package decisionapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/telguard/telguard/internal/engine"
	"github.com/telguard/telguard/internal/store"
)

// This file is the one place where errors become HTTP statuses. Handlers
// return errors; fail maps them.

// requestError is a mistake in the request: a 4xx with a message and, when
// one field, path value or query parameter is to blame, its name.
type requestError struct {
	code  int
	field string
	msg   string
}

func (e *requestError) Error() string {
	if e.field == "" {
		return e.msg
	}
	return e.field + ": " + e.msg
}

// badField is a 400 blaming field ("" when the request as a whole is bad).
func badField(field, format string, args ...any) error {
	return &requestError{code: http.StatusBadRequest, field: field, msg: fmt.Sprintf(format, args...)}
}

var (
	errUnauthorized     = &requestError{code: http.StatusUnauthorized, msg: "missing or invalid API key"}
	errNotFound         = &requestError{code: http.StatusNotFound, msg: "no such route"}
	errMethodNotAllowed = &requestError{code: http.StatusMethodNotAllowed, msg: "method not allowed"}
	errNotConfigured    = &requestError{code: http.StatusNotImplemented, msg: "not available on this server"}
	errNotReady         = &requestError{code: http.StatusServiceUnavailable, msg: "not ready"}
)

// policyError is a refused policy reload: 422 with the reloader's message,
// which names file:line.
type policyError struct{ err error }

func (e *policyError) Error() string { return e.err.Error() }
func (e *policyError) Unwrap() error { return e.err }

type errorBody struct {
	Error string `json:"error"`
	Field string `json:"field,omitempty"`
}

// status maps err to the HTTP status and body the client gets. Unknown
// errors are 500 with a generic message: their text may hold internals.
func (s *Server) status(err error) (int, errorBody) {
	var (
		re  *requestError
		pe  *policyError
		mbe *http.MaxBytesError
	)
	switch {
	case errors.As(err, &re):
		return re.code, errorBody{Error: re.Error(), Field: re.field}
	case errors.As(err, &mbe):
		return http.StatusRequestEntityTooLarge, errorBody{Error: fmt.Sprintf("request body larger than %d bytes", mbe.Limit)}
	case errors.As(err, &pe):
		return http.StatusUnprocessableEntity, errorBody{Error: pe.Error()}
	case errors.Is(err, engine.ErrUnknownCall):
		return http.StatusNotFound, errorBody{Error: "unknown call", Field: "call_id"}
	case errors.Is(err, engine.ErrNotSuspended):
		return http.StatusNotFound, errorBody{Error: "account not suspended", Field: "id"}
	case errors.Is(err, engine.ErrUnknownTenant):
		return http.StatusNotFound, errorBody{Error: "unknown tenant"}
	case errors.Is(err, engine.ErrBadEvent):
		return http.StatusBadRequest, errorBody{Error: err.Error()}
	case errors.Is(err, store.ErrBadCursor):
		return http.StatusBadRequest, errorBody{Error: "bad cursor", Field: "cursor"}
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable, errorBody{Error: "request cancelled or timed out"}
	}
	return http.StatusInternalServerError, errorBody{Error: "internal error"}
}

// fail answers a request whose handler returned err.
func (s *Server) fail(x *exchange, r *http.Request, route string, err error) {
	code, body := s.status(err)
	level := slog.LevelDebug
	if code >= 500 && code != http.StatusNotImplemented && code != http.StatusServiceUnavailable {
		level = slog.LevelError
	}
	s.logger.LogAttrs(r.Context(), level, "request failed",
		slog.String("route", route), slog.Int("code", code), slog.String("tenant", x.tenant), slog.Any("error", err))
	if x.code != 0 {
		return // the response has started; nothing more to say
	}
	if code == http.StatusUnauthorized {
		x.w.Header().Set("WWW-Authenticate", `Bearer realm="telguard"`)
	}
	x.json(code, &body)
}
