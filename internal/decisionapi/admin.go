package decisionapi

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/telguard/telguard/internal/event"
	"github.com/telguard/telguard/internal/store"
)

const maxCursorLen = 512

type decisionsBody struct {
	Decisions  []event.Decision `json:"decisions"`
	NextCursor string           `json:"next_cursor"`
}

var (
	bodyOK       = []byte(`{"status":"ok"}` + "\n")
	bodyReady    = []byte(`{"status":"ready"}` + "\n")
	bodyReloaded = []byte(`{"status":"reloaded"}` + "\n")
)

// decisions lists the tenant's decisions, newest first, a page at a time.
func (s *Server) decisions(x *exchange, r *http.Request) error {
	if s.log == nil {
		return errNotConfigured
	}
	q, err := parseDecisionQuery(r.URL.RawQuery)
	if err != nil {
		return err
	}
	list, next, err := s.log.Decisions(r.Context(), x.tenant, q)
	if err != nil {
		return fmt.Errorf("query decisions: %w", err)
	}
	if list == nil {
		list = []event.Decision{}
	}
	for i := range list {
		if list[i].Reasons == nil {
			list[i].Reasons = []event.Reason{}
		}
	}
	x.json(http.StatusOK, &decisionsBody{Decisions: list, NextCursor: next})
	return nil
}

// parseDecisionQuery reads the query string of GET /v1/decisions. Unknown
// and repeated parameters are refused, so that a typo ("acount=") does not
// silently widen the query.
func parseDecisionQuery(raw string) (store.DecisionQuery, error) {
	var q store.DecisionQuery
	vals, err := url.ParseQuery(raw)
	if err != nil {
		return q, badField("", "malformed query string")
	}
	for name, vs := range vals {
		if len(vs) > 1 {
			return q, badField(name, "given more than once")
		}
		v := vs[0]
		switch name {
		case "account":
			err = validText(name, v, maxAccountLen, false)
			q.Account = v
		case "verdict":
			if v != "" && !event.Verdict(v).Valid() {
				err = badField(name, "must be one of allow, challenge, throttle, deny, ban")
			}
			q.Verdict = v
		case "rule":
			err = validText(name, v, maxAccountLen, false)
			q.Rule = v
		case "call_id":
			if v != "" {
				err = validCallID(name, v)
			}
			q.CallID = v
		case "since":
			q.Since, err = queryTime(name, v)
		case "until":
			q.Until, err = queryTime(name, v)
		case "limit":
			if v != "" {
				q.Limit, err = strconv.Atoi(v)
				if err != nil || q.Limit < 1 || q.Limit > store.MaxLimit {
					err = badField(name, "must be a whole number from 1 to %d", store.MaxLimit)
				}
			}
		case "cursor":
			if len(v) > maxCursorLen {
				err = badField(name, "longer than %d bytes", maxCursorLen)
			}
			q.Cursor = v
		default:
			err = badField(name, "unknown query parameter")
		}
		if err != nil {
			return q, err
		}
	}
	if !q.Since.IsZero() && !q.Until.IsZero() && !q.Since.Before(q.Until) {
		return q, badField("until", "must be after since")
	}
	return q, nil
}

func queryTime(name, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, badField(name, "not an RFC 3339 time")
	}
	return t, nil
}

// reload reloads the policy; a refused policy is a 422 naming file:line, and
// the old policy stays in force.
func (s *Server) reload(x *exchange, r *http.Request) error {
	if s.rel == nil {
		return errNotConfigured
	}
	if err := s.rel.Reload(r.Context()); err != nil {
		s.logger.LogAttrs(r.Context(), slog.LevelWarn, "policy reload refused",
			slog.String("tenant", x.tenant), slog.String("key", x.keyID), slog.Any("error", err))
		return &policyError{err: err}
	}
	s.logger.LogAttrs(r.Context(), slog.LevelInfo, "policy reloaded",
		slog.String("tenant", x.tenant), slog.String("key", x.keyID))
	x.raw(http.StatusOK, bodyReloaded)
	return nil
}

// unsuspend lifts an account's suspension. The actor recorded is the key's
// fingerprint, never the key.
func (s *Server) unsuspend(x *exchange, r *http.Request) error {
	account := r.PathValue("id")
	if err := validText("id", account, maxAccountLen, true); err != nil {
		return err
	}
	actor := "api " + x.keyID
	if err := s.eng.Unsuspend(r.Context(), x.tenant, account, actor); err != nil {
		return fmt.Errorf("unsuspend account: %w", err)
	}
	s.logger.LogAttrs(r.Context(), slog.LevelInfo, "account unsuspended",
		slog.String("tenant", x.tenant), slog.String("account", account), slog.String("actor", actor))
	x.noContent()
	return nil
}

// healthz answers while the process serves at all.
func (s *Server) healthz(x *exchange, _ *http.Request) error {
	x.raw(http.StatusOK, bodyOK)
	return nil
}

// readyz asks the ReadyChecker. The reason for not being ready is logged
// (when it changes), not returned: the endpoint needs no key, and the
// reason may name internals.
func (s *Server) readyz(x *exchange, r *http.Request) error {
	if s.ready != nil {
		ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
		err := s.ready(ctx)
		cancel()
		if err != nil {
			if !s.notReady.Swap(true) {
				s.logger.LogAttrs(r.Context(), slog.LevelWarn, "not ready", slog.Any("error", err))
			}
			return errNotReady
		}
		if s.notReady.Swap(false) {
			s.logger.LogAttrs(r.Context(), slog.LevelInfo, "ready again")
		}
	}
	x.raw(http.StatusOK, bodyReady)
	return nil
}

// methods the catch-all tries when telling 405 from 404.
var methods = []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}

// unmatched answers requests no route takes: 405 with Allow when the path
// exists under other methods, 404 otherwise.
func (s *Server) unmatched(x *exchange, r *http.Request) error {
	var allow []string
	for _, m := range methods {
		probe := &http.Request{Method: m, URL: r.URL, Host: r.Host, Header: http.Header{}}
		if _, pattern := s.mux.Handler(probe); pattern != "/" && pattern != "" {
			allow = append(allow, m)
		}
	}
	if len(allow) == 0 {
		return errNotFound
	}
	x.w.Header().Set("Allow", strings.Join(allow, ", "))
	return errMethodNotAllowed
}
