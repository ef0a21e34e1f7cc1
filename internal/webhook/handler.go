package webhook

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
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
	if e, ok := decodeOwnEnvelope(data); ok {
		return e, nil
	}
	var e Envelope
	if err := json.Unmarshal(data, &e); err != nil {
		return Envelope{}, errors.New("decode envelope: not a webhook envelope")
	}
	return e, nil
}

// decodeOwnEnvelope reads an envelope exactly as appendEnvelope writes it
// (strings without escapes, the time in UTC as RFC 3339 with nanoseconds)
// without reflection; ok is false for anything else, which
// DecodeEnvelope then leaves to encoding/json. Whatever it accepts,
// json.Unmarshal reads the same (FuzzDecodeOwnEnvelope).
func decodeOwnEnvelope(d []byte) (e Envelope, ok bool) {
	var raw [4][]byte
	for i, key := range [...]string{`{"source":"`, `","tenant":"`, `","id":"`, `","received":"`} {
		if !bytes.HasPrefix(d, []byte(key)) {
			return e, false
		}
		d = d[len(key):]
		end := bytes.IndexByte(d, '"')
		if end < 0 {
			return e, false
		}
		raw[i], d = d[:end], d[end:]
		for _, c := range raw[i] {
			if c < ' ' || c == '\\' {
				return e, false
			}
		}
		if !utf8.Valid(raw[i]) {
			return e, false
		}
	}
	rest, ok := bytes.CutPrefix(d, []byte(`","body":"`))
	if !ok || !bytes.HasSuffix(rest, []byte(`"}`)) {
		return e, false
	}
	b64 := rest[:len(rest)-2]
	if bytes.IndexByte(b64, '"') >= 0 || bytes.ContainsAny(b64, "\r\n\\") {
		return e, false
	}
	t, err := time.Parse(time.RFC3339Nano, string(raw[3]))
	if err != nil || t.Location() != time.UTC || !bytes.Equal(t.AppendFormat(nil, time.RFC3339Nano), raw[3]) {
		return e, false
	}
	body := make([]byte, base64.StdEncoding.DecodedLen(len(b64)))
	n, err := base64.StdEncoding.Decode(body, b64)
	if err != nil {
		return e, false
	}
	return Envelope{Source: string(raw[0]), Tenant: string(raw[1]), ID: string(raw[2]), Received: t, Body: body[:n]}, true
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
		src.m.received.Inc()
	} else {
		s.metrics.receivedUnknown.Inc()
	}
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

// bufPool holds the buffers a request's body and its queued envelope are
// built in. Buffers that grew past maxPooledBuf are left to the GC so one
// large body does not pin memory.
var bufPool = sync.Pool{New: func() any { return new(buffer) }}

type buffer struct{ b []byte }

const maxPooledBuf = 64 << 10

func getBuf() *buffer { return bufPool.Get().(*buffer) }

func putBuf(b *buffer) {
	if cap(b.b) > maxPooledBuf {
		return
	}
	b.b = b.b[:0]
	bufPool.Put(b)
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
	if len(src.cfg.ClientCertNames) > 0 && !certNamed(r.TLS, src.cfg.ClientCertNames) {
		return errForbidden
	}
	if ok, wait := s.ipLimit.allow(ipKey(ip), now); !ok {
		s.metrics.rateLimitedIP.Inc()
		return &rateLimitedError{wait}
	}
	if ok, wait := src.limit.allow(src.name, now); !ok {
		s.metrics.rateLimitedSource.Inc()
		return &rateLimitedError{wait}
	}
	if r.ContentLength > src.cfg.MaxBodyBytes {
		return &http.MaxBytesError{Limit: src.cfg.MaxBodyBytes}
	}
	bodyBuf := getBuf()
	defer putBuf(bodyBuf)
	if r.ContentLength > 0 {
		bodyBuf.b = slices.Grow(bodyBuf.b, int(r.ContentLength)+1) // +1 to see EOF without growing
	}
	var err error
	bodyBuf.b, err = readAll(bodyBuf.b, http.MaxBytesReader(w, r.Body, src.cfg.MaxBodyBytes))
	if err != nil {
		return err
	}
	body := bodyBuf.b
	v, err := src.verifier.Verify(r.Header, body, now)
	if errors.Is(err, ErrBadSignature) && s.reloadSecrets(false) {
		// A secret rotated a moment ago is good at once, not at the next poll.
		v, err = src.verifier.Verify(r.Header, body, now)
	}
	switch {
	case errors.Is(err, ErrStale):
		src.m.stale.Inc()
		s.alert(src, RuleSignatureFailures, src.sigSpike, ip, now)
		return err
	case err != nil:
		src.m.signatureFailures.Inc()
		s.alert(src, RuleSignatureFailures, src.sigSpike, ip, now)
		return err
	}
	src.m.verified.Inc()
	id := v.ID
	if src.pointer != nil {
		if id, err = pointerID(body, src.pointer); err != nil {
			return err
		}
	}
	if !ValidID(id) {
		return errBadEventID
	}
	dkey := src.dedupePrefix + id
	key := keyOf(dkey)
	dup := s.dedupe.seen(key)
	if !dup {
		env := getBuf()
		env.b = src.appendEnvelope(env.b, id, now, body)
		start := time.Now()
		dup, err = s.publish(r.Context(), dkey, env.b)
		s.metrics.enqueueSeconds.Observe(time.Since(start).Seconds())
		if err != nil {
			// env is not reused: a publish that did not finish may still
			// read it.
			src.m.enqueueFailures.Inc()
			return &enqueueError{err}
		}
		putBuf(env)
		s.dedupe.add(key, now)
	}
	if dup {
		src.m.duplicates.Inc()
		s.alert(src, RuleDuplicates, src.dupSpike, ip, now)
		writeStatus(w, http.StatusOK, statusDuplicate)
		return nil
	}
	writeStatus(w, http.StatusAccepted, statusAccepted)
	return nil
}

// TimedQueue is a Queue that bounds a Publish by a timeout of its own,
// more cheaply than a context per request. *queue.Queue implements it.
type TimedQueue interface {
	PublishWithin(ctx context.Context, timeout time.Duration, id string, data []byte) (dup bool, err error)
}

// publish stores data under id within Config.EnqueueTimeout.
func (s *Server) publish(ctx context.Context, id string, data []byte) (bool, error) {
	if tq, ok := s.queue.(TimedQueue); ok {
		return tq.PublishWithin(ctx, s.cfg.EnqueueTimeout, id, data)
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.EnqueueTimeout)
	defer cancel()
	return s.queue.Publish(ctx, id, data)
}

// readAll is io.ReadAll into buf.
func readAll(buf []byte, r io.Reader) ([]byte, error) {
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// envelopePrefix is the start of a source's envelopes, up to the id:
// what json.Marshal(Envelope) writes for the source and its tenant.
func envelopePrefix(source, tenant string) string {
	name, _ := json.Marshal(source)
	ten, _ := json.Marshal(tenant)
	return `{"source":` + string(name) + `,"tenant":` + string(ten) + `,"id":"`
}

// appendEnvelope appends the JSON of Envelope{src, tenant, id, now, body}
// to dst as json.Marshal would write it (DecodeEnvelope reads either),
// without reflection: id is printable ASCII (ValidID), so only " and \
// need escaping; Received is RFC 3339 with nanoseconds in UTC; Body is
// base64.
func (src *source) appendEnvelope(dst []byte, id string, now time.Time, body []byte) []byte {
	dst = slices.Grow(dst, len(src.envPrefix)+2*len(id)+64+base64.StdEncoding.EncodedLen(len(body)))
	dst = append(dst, src.envPrefix...)
	for i := 0; i < len(id); i++ {
		if c := id[i]; c == '"' || c == '\\' {
			dst = append(dst, '\\', c)
		} else {
			dst = append(dst, c)
		}
	}
	dst = append(dst, `","received":"`...)
	dst = now.UTC().AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, `","body":"`...)
	dst = base64.StdEncoding.AppendEncode(dst, body)
	return append(dst, `"}`...)
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

var (
	statusAccepted  = []byte(`{"status":"accepted"}` + "\n")
	statusDuplicate = []byte(`{"status":"duplicate"}` + "\n")
	contentTypeJSON = []string{"application/json"} // shared: net/http only reads it
)

func writeStatus(w http.ResponseWriter, code int, body []byte) {
	w.Header()["Content-Type"] = contentTypeJSON
	w.WriteHeader(code)
	_, _ = w.Write(body)
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

// certNamed reports whether the connection's verified client certificate
// bears one of names: a DNS subject alternative name or, for a
// certificate without any, its common name. Names compare without regard
// to case; wildcards in the certificate are not expanded (a provider's
// client certificate names itself).
func certNamed(cs *tls.ConnectionState, names []string) bool {
	if cs == nil || len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		return false
	}
	leaf := cs.VerifiedChains[0][0]
	have := leaf.DNSNames
	if len(have) == 0 && leaf.Subject.CommonName != "" {
		have = []string{leaf.Subject.CommonName}
	}
	for _, h := range have {
		for _, n := range names {
			if strings.EqualFold(h, n) {
				return true
			}
		}
	}
	return false
}
