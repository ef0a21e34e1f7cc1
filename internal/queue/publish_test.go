package queue

import (
	"errors"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// parseAck must read every acknowledgement the way the client's JSON
// decode would: a stored message, a duplicate, a refusal, nothing.
func TestParseAck(t *testing.T) {
	for _, c := range []struct {
		data     string
		status   string
		dup      bool
		wantCode jetstream.ErrorCode // 0: no API error
		err      error
	}{
		{data: `{"stream":"S","seq":7}`},
		{data: `{"stream":"S","seq":7,"duplicate": true}`, dup: true},
		{data: `{"stream":"S", "seq": 7, "duplicate":true}`, dup: true},
		{data: `{"stream":"S","seq":7,"duplicate":false}`},
		{data: `{"stream":"S","domain":"d","seq":7}`},
		{data: `{"error":{"code":503,"err_code":10077,"description":"maximum bytes exceeded"}}`, wantCode: 10077},
		{data: `{"stream":"S","seq":7,"error":{"code":400,"err_code":10001,"description":"x"}}`, wantCode: 10001},
		{data: `{"seq":7}`, err: jetstream.ErrInvalidJSAck},
		{data: `not json`, err: jetstream.ErrInvalidJSAck},
		{status: "503", err: jetstream.ErrNoStreamResponse},
		{err: jetstream.ErrInvalidJSAck},
	} {
		m := &nats.Msg{Data: []byte(c.data), Header: nats.Header{}}
		if c.status != "" {
			m.Header.Set("Status", c.status)
		}
		r := parseAck(m)
		var apiErr *jetstream.APIError
		switch {
		case c.wantCode != 0:
			if !errors.As(r.err, &apiErr) || apiErr.ErrorCode != c.wantCode {
				t.Errorf("%q: err %v, want API error %d", c.data, r.err, c.wantCode)
			}
		case c.err != nil:
			if !errors.Is(r.err, c.err) {
				t.Errorf("%q: err %v, want %v", c.data, r.err, c.err)
			}
		case r.err != nil || r.dup != c.dup:
			t.Errorf("%q: dup %v err %v, want dup %v", c.data, r.dup, r.err, c.dup)
		}
	}
}
