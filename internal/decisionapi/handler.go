package decisionapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/telguard/telguard/internal/event"
)

// handlerFunc handles one request. It writes its success response through x
// and returns errors for fail to map; it never writes an error itself.
type handlerFunc func(x *exchange, r *http.Request) error

// exchange is the per-request state, pooled so that the hot path allocates
// little: the response writer and the status written, the tenant of the
// key, a reusable output buffer and encoder, and scratch request structs.
type exchange struct {
	w        http.ResponseWriter
	code     int // status written; 0 until then
	tenant   string
	keyID    string
	buf      bytes.Buffer
	enc      *json.Encoder
	check    checkRequest
	answered answeredRequest
	ended    endedRequest
	decision event.Decision
}

const maxPooledBuffer = 64 << 10 // bigger buffers (long decision pages) are left to the GC

var (
	contentTypeJSON = []string{"application/json"}
	noSniff         = []string{"nosniff"}
)

func newExchange() *exchange {
	x := &exchange{}
	x.enc = json.NewEncoder(&x.buf)
	x.enc.SetEscapeHTML(false)
	return x
}

// json writes v as the response with the given status.
func (x *exchange) json(code int, v any) {
	x.buf.Reset()
	if err := x.enc.Encode(v); err != nil {
		// Our response types always encode; this is a bug, and the client
		// still gets JSON.
		x.buf.Reset()
		x.buf.WriteString(`{"error":"internal error"}` + "\n")
		code = http.StatusInternalServerError
	}
	x.raw(code, x.buf.Bytes())
}

// raw writes body, which must be JSON, as the response.
func (x *exchange) raw(code int, body []byte) {
	h := x.w.Header()
	h["Content-Type"] = contentTypeJSON
	h["X-Content-Type-Options"] = noSniff
	x.w.WriteHeader(code)
	x.code = code
	x.w.Write(body) // an error here means the client is gone; nothing to do
}

func (x *exchange) noContent() {
	x.w.WriteHeader(http.StatusNoContent)
	x.code = http.StatusNoContent
}

// handle registers h under pattern, wrapped with what every route shares:
// authentication (when auth), error mapping, panic recovery and metrics.
// success is the route's usual status, counted without a label lookup.
func (s *Server) handle(pattern string, auth bool, success int, h handlerFunc) {
	route := pattern
	if pattern == "/" {
		route = "unmatched"
	}
	rm := s.metrics.route(route, success)
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		x := s.pool.Get().(*exchange)
		x.w = w
		defer s.finish(x, r, rm, start)
		var err error
		if auth {
			err = s.authenticate(x, r)
		}
		if err == nil {
			err = h(x, r)
		}
		if err != nil {
			s.fail(x, r, route, err)
		}
	})
}

// finish runs deferred after every handler: it turns a panic into a 500 (one
// log line with the stack; the connection and the server live on), records
// the request's metrics, and returns x to the pool.
func (s *Server) finish(x *exchange, r *http.Request, rm *routeMetrics, start time.Time) {
	if v := recover(); v != nil {
		if v == http.ErrAbortHandler { //nolint:errorlint // net/http's own sentinel, compared as it does
			rm.observe(0, time.Since(start))
			panic(v) // a deliberate abort: let net/http drop the connection
		}
		s.logger.LogAttrs(r.Context(), slog.LevelError, "handler panicked",
			slog.String("route", rm.route), slog.Any("panic", v), slog.String("stack", string(debug.Stack())))
		if x.code == 0 {
			x.json(http.StatusInternalServerError, &errorBody{Error: "internal error"})
		}
	}
	if x.code == 0 {
		x.code = http.StatusOK // the handler wrote nothing; net/http sends an empty 200
	}
	rm.observe(x.code, time.Since(start))
	x.w, x.code, x.tenant, x.keyID = nil, 0, "", ""
	x.decision = event.Decision{} // drop the engine's Reasons
	if x.buf.Cap() > maxPooledBuffer {
		x.buf = bytes.Buffer{}
	}
	s.pool.Put(x)
}

// decodeBody decodes the request body, at most Config.MaxBodyBytes of it, as
// exactly one JSON object into v. Unknown fields, wrong types and trailing
// data are 400s naming what is wrong; an oversized body is 413. An empty body
// is fine when optional.
func (s *Server) decodeBody(x *exchange, r *http.Request, v any, optional bool) error {
	dec := json.NewDecoder(http.MaxBytesReader(x.w, r.Body, s.cfg.MaxBodyBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if err == io.EOF {
			if optional {
				return nil
			}
			return badField("", "empty request body; want a JSON object")
		}
		return decodeError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		if err == nil {
			return badField("", "unexpected data after the JSON object")
		}
		return decodeError(err)
	}
	return nil
}

// decodeError names what encoding/json found wrong.
func decodeError(err error) error {
	var (
		mbe *http.MaxBytesError
		se  *json.SyntaxError
		te  *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &mbe):
		return err
	case errors.As(err, &se):
		return badField("", "malformed JSON at byte %d: %s", se.Offset, strings.TrimPrefix(se.Error(), "json: "))
	case errors.Is(err, io.ErrUnexpectedEOF):
		return badField("", "malformed JSON: unexpected end of body")
	case errors.As(err, &te):
		if te.Field == "" {
			return badField("", "request body must be a JSON object")
		}
		return badField(te.Field, "must be %s, not %s", jsonType(te.Type.String()), te.Value)
	}
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		if n, uerr := strconv.Unquote(name); uerr == nil {
			name = n
		}
		return badField(name, "unknown field")
	}
	return badField("", "unreadable request body: %s", strings.TrimPrefix(err.Error(), "json: "))
}

func jsonType(goType string) string {
	switch goType {
	case "string":
		return "a string"
	case "float64", "int", "int64":
		return "a number"
	case "bool":
		return "a boolean"
	}
	return "a JSON " + goType
}

// statusWriter remembers the status a wrapped handler writes.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusWriter) status() int {
	if w.code == 0 {
		return http.StatusOK
	}
	return w.code
}
