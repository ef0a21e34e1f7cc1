package decisionapi

import (
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
)

// discardWriter is a minimal ResponseWriter, so the benchmark measures the
// handler rather than httptest's recorder.
type discardWriter struct {
	h    http.Header
	code int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *discardWriter) WriteHeader(code int)        { w.code = code }

// BenchmarkCheck measures POST /v1/calls/check end to end through the
// handler (auth, decode, validate, fake engine, metrics, encode), in
// parallel as a softswitch would call it.
func BenchmarkCheck(b *testing.B) {
	h := newHarnessAt(b, slog.LevelInfo) // production level: no per-call log line
	h.eng.record = false
	handler := h.srv.Handler()
	body := checkBody("+5511987654321")
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	b.RunParallel(func(pb *testing.PB) {
		rd := strings.NewReader(body)
		req, _ := http.NewRequest("POST", "/v1/calls/check", nil)
		req.Header.Set("Authorization", "Bearer "+keyA)
		w := &discardWriter{h: http.Header{}}
		for pb.Next() {
			rd.Reset(body)
			r := req.Clone(req.Context())
			r.Body = io.NopCloser(rd)
			clear(w.h)
			handler.ServeHTTP(w, r)
			if w.code != http.StatusOK {
				b.Fatalf("status %d", w.code)
			}
		}
	})
}
