package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"time"
)

// Envelope is what the ingress stores in the queue for each event: the
// verified body as received, with where it came from. Workers decode it
// with DecodeEnvelope.
type Envelope struct {
	Source   string    `json:"source"`
	Tenant   string    `json:"tenant"`
	ID       string    `json:"id"`
	Received time.Time `json:"received"`
	Body     []byte    `json:"body"`
}

// DecodeEnvelope reads a queued message.
func DecodeEnvelope(data []byte) (Envelope, error) {
	var e Envelope
	if err := json.Unmarshal(data, &e); err != nil {
		return Envelope{}, errors.New("decode envelope: not a webhook envelope")
	}
	return e, nil
}

// DedupeKey is the queue id of an event: ids are only unique per sender,
// so the source name is part of it.
func DedupeKey(source, id string) string { return source + "/" + id }

// serveHook is the whole ingress: limits, verification, enqueue. It
// answers 202 only after the queue stored the event.
func (s *Server) serveHook(w http.ResponseWriter, r *http.Request) {
	src := s.sources[r.PathValue("source")]
	label := "unknown"
	if src != nil {
		label = src.name
	}
	s.metrics.received.WithLabelValues(label).Inc()
	select {
	case s.slots <- struct{}{}:
		defer func() { <-s.slots }()
	default:
		s.metrics.shed.Inc()
		s.fail(w, r, label, errOverloaded)
		return
	}
	if err := s.handle(w, r, src); err != nil {
		s.fail(w, r, label, err)
	}
}

func (s *Server) handle(w http.ResponseWriter, r *http.Request, src *source) error {
	if src == nil {
		return errUnknownSource
	}
	now := s.cfg.Clock()
	ip := remoteIP(r)
	if len(src.cfg.AllowedCIDRs) > 0 && !allowed(src.cfg.AllowedCIDRs, ip) {
		return errForbidden
	}
	if ok, wait := s.ipLimit.allow(ipKey(ip), now); !ok {
		s.metrics.rateLimited.WithLabelValues("ip").Inc()
		return &rateLimitedError{wait}
	}
	if ok, wait := src.limit.allow(src.name, now); !ok {
		s.metrics.rateLimited.WithLabelValues("source").Inc()
		return &rateLimitedError{wait}
	}
	if r.ContentLength > src.cfg.MaxBodyBytes {
		return &http.MaxBytesError{Limit: src.cfg.MaxBodyBytes}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, src.cfg.MaxBodyBytes))
	if err != nil {
		return err
	}
	v, err := src.verifier.Verify(r.Header, body, now)
	if errors.Is(err, ErrBadSignature) && s.reloadSecrets() {
		// A secret rotated a moment ago is good at once, not at the next poll.
		v, err = src.verifier.Verify(r.Header, body, now)
	}
	switch {
	case errors.Is(err, ErrStale):
		s.metrics.stale.WithLabelValues(src.name).Inc()
		s.alert(src, RuleSignatureFailures, src.sigSpike, ip, now)
		return err
	case err != nil:
		s.metrics.signatureFailures.WithLabelValues(src.name).Inc()
		s.alert(src, RuleSignatureFailures, src.sigSpike, ip, now)
		return err
	}
	s.metrics.verified.WithLabelValues(src.name).Inc()
	id := v.ID
	if src.pointer != nil {
		if id, err = pointerID(body, src.pointer); err != nil {
			return err
		}
	}
	if !ValidID(id) {
		return errBadEventID
	}
	data, err := json.Marshal(Envelope{Source: src.name, Tenant: src.cfg.Tenant, ID: id, Received: now.UTC(), Body: body})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.EnqueueTimeout)
	defer cancel()
	start := time.Now()
	dup, err := s.queue.Publish(ctx, DedupeKey(src.name, id), data)
	s.metrics.enqueueSeconds.Observe(time.Since(start).Seconds())
	if err != nil {
		s.metrics.enqueueFailures.WithLabelValues(src.name).Inc()
		return &enqueueError{err}
	}
	if dup {
		s.metrics.duplicates.WithLabelValues(src.name).Inc()
		s.alert(src, RuleDuplicates, src.dupSpike, ip, now)
		writeStatus(w, http.StatusOK, "duplicate")
		return nil
	}
	writeStatus(w, http.StatusAccepted, "accepted")
	return nil
}

func remoteIP(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

func allowed(cidrs []netip.Prefix, ip netip.Addr) bool {
	for _, p := range cidrs {
		if ip.IsValid() && p.Contains(ip) {
			return true
		}
	}
	return false
}

func writeStatus(w http.ResponseWriter, code int, status string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = io.WriteString(w, `{"status":"`+status+`"}`+"\n")
}

// logRefusal logs a refused request without its body or headers.
func (s *Server) logRefusal(r *http.Request, source string, code int, err error) {
	level := slog.LevelDebug
	if code == http.StatusServiceUnavailable {
		level = slog.LevelWarn
	}
	s.logger.LogAttrs(r.Context(), level, "webhook refused",
		slog.String("source", source), slog.Int("code", code),
		slog.String("remote", r.RemoteAddr), slog.String("reason", err.Error()))
}
