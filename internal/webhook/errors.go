package webhook

import (
	"context"
	"errors"
	"math"
	"net/http"
	"strconv"
	"time"
)

// This file is the one place where errors become HTTP statuses. The
// bodies say little on purpose: a sender learns that it failed, not which
// check to work around.

var (
	errUnknownSource = errors.New("unknown source")
	errForbidden     = errors.New("source address or client certificate not allowed")
	errOverloaded    = errors.New("too many requests in flight")
	errBadEventID    = errors.New("missing or invalid event id")
)

type rateLimitedError struct{ wait time.Duration }

func (e *rateLimitedError) Error() string { return "rate limited" }

// enqueueError is a verified event the queue did not take.
type enqueueError struct{ err error }

func (e *enqueueError) Error() string { return "enqueue: " + e.err.Error() }
func (e *enqueueError) Unwrap() error { return e.err }

// retryAfterUnavailable is what a 503 asks the sender to wait, in seconds.
const retryAfterUnavailable = "5"

func status(err error) (code int, msg string, retryAfter string) {
	var (
		rl  *rateLimitedError
		mbe *http.MaxBytesError
		ee  *enqueueError
	)
	switch {
	case errors.Is(err, errUnknownSource):
		return http.StatusNotFound, "unknown source", ""
	case errors.Is(err, errForbidden):
		return http.StatusForbidden, "forbidden", ""
	case errors.As(err, &rl):
		return http.StatusTooManyRequests, "rate limited", strconv.Itoa(max(1, int(math.Ceil(rl.wait.Seconds()))))
	case errors.As(err, &mbe):
		return http.StatusRequestEntityTooLarge, "body too large", ""
	case errors.Is(err, ErrMissingHeader), errors.Is(err, ErrMalformed),
		errors.Is(err, ErrBadSignature), errors.Is(err, ErrStale):
		return http.StatusUnauthorized, "invalid signature", ""
	case errors.Is(err, errBadEventID):
		return http.StatusBadRequest, "missing or invalid event id", ""
	case errors.Is(err, errOverloaded), errors.As(err, &ee):
		return http.StatusServiceUnavailable, "temporarily unavailable", retryAfterUnavailable
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable, "temporarily unavailable", retryAfterUnavailable
	}
	return http.StatusBadRequest, "bad request", "" // a body that could not be read
}

func (s *Server) fail(w http.ResponseWriter, r *http.Request, source string, err error) {
	code, msg, retry := status(err)
	s.logRefusal(r, source, code, err)
	if retry != "" {
		w.Header().Set("Retry-After", retry)
	}
	writeError(w, code, msg)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write([]byte(`{"error":"` + msg + `"}` + "\n"))
}
