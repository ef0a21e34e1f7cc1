package queue

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// publisher publishes to the stream with one reply subscription for all
// acknowledgements, each publish waiting for its own, like the client's
// PublishMsgAsync but without what the ingress does not use: no per-call
// options, no retries (a publish that finds no stream fails at once and
// the sender retries the webhook), and the acknowledgement read without
// a JSON decode unless it carries an error.
type publisher struct {
	nc      *nats.Conn
	subject string
	prefix  string // reply subjects: prefix + token
	sub     *nats.Subscription

	mu      sync.Mutex
	next    uint64
	pending map[uint64]chan pubResult
}

type pubResult struct {
	dup bool
	err error
}

func newPublisher(nc *nats.Conn, subject string) (*publisher, error) {
	p := &publisher{nc: nc, subject: subject, prefix: nc.NewRespInbox() + ".", pending: make(map[uint64]chan pubResult)}
	sub, err := nc.Subscribe(p.prefix+"*", p.onAck)
	if err != nil {
		return nil, fmt.Errorf("subscribe to publish acks: %w", err)
	}
	// Every entry has a waiter, and the waiters are bounded by the
	// callers; the client's default pending limits would only drop acks.
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		return nil, fmt.Errorf("subscribe to publish acks: %w", err)
	}
	p.sub = sub
	return p, nil
}

var resultChans = sync.Pool{New: func() any { return make(chan pubResult, 1) }}

// publish stores data under id and waits for the stream's ack, ctx, the
// timeout (0: none) or done, whichever comes first.
func (p *publisher) publish(ctx context.Context, timeout time.Duration, id string, data []byte, done <-chan struct{}) (bool, error) {
	ch := resultChans.Get().(chan pubResult)
	p.mu.Lock()
	p.next++
	token := p.next
	p.pending[token] = ch
	p.mu.Unlock()
	var reply [64]byte
	msg := &nats.Msg{
		Subject: p.subject,
		Reply:   string(strconv.AppendUint(append(reply[:0], p.prefix...), token, 10)),
		Header:  nats.Header{jetstream.MsgIDHeader: []string{id}},
		Data:    data,
	}
	if err := p.nc.PublishMsg(msg); err != nil {
		if p.forget(token) {
			resultChans.Put(ch)
		}
		return false, err
	}
	var expired <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		expired = t.C
	}
	var err error
	select {
	case r := <-ch:
		resultChans.Put(ch)
		return r.dup, r.err
	case <-ctx.Done():
		err = ctx.Err()
	case <-expired:
		err = context.DeadlineExceeded
	case <-done:
		err = ErrClosed
	}
	if p.forget(token) {
		resultChans.Put(ch) // no ack will come for it now
	}
	// else the ack is on its way into ch, which is dropped: the message
	// may be stored, and the sender's retry is then a duplicate.
	return false, err
}

// forget removes a pending publish; false when its ack already took it.
func (p *publisher) forget(token uint64) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.pending[token]; !ok {
		return false
	}
	delete(p.pending, token)
	return true
}

func (p *publisher) onAck(m *nats.Msg) {
	token, err := strconv.ParseUint(m.Subject[min(len(p.prefix), len(m.Subject)):], 10, 64)
	if err != nil {
		return
	}
	p.mu.Lock()
	ch := p.pending[token]
	delete(p.pending, token)
	p.mu.Unlock()
	if ch != nil {
		ch <- parseAck(m)
	}
}

// parseAck reads a JetStream publish acknowledgement:
// {"stream":"S","seq":1[,"duplicate": true]}, or {"error":{...}}, or an
// empty message with a 503 status when no stream listens on the subject.
func parseAck(m *nats.Msg) pubResult {
	d := m.Data
	if len(d) == 0 {
		if m.Header.Get("Status") == "503" {
			return pubResult{err: jetstream.ErrNoStreamResponse}
		}
		return pubResult{err: jetstream.ErrInvalidJSAck}
	}
	if !bytes.Contains(d, []byte(`"error"`)) && bytes.HasPrefix(d, []byte(`{"stream":"`)) && bytes.Contains(d, []byte(`"seq":`)) {
		return pubResult{dup: isDuplicate(d)}
	}
	var resp struct {
		Error  *jetstream.APIError `json:"error"`
		Stream string              `json:"stream"`
		Dup    bool                `json:"duplicate"`
	}
	switch err := json.Unmarshal(d, &resp); {
	case err != nil:
		return pubResult{err: jetstream.ErrInvalidJSAck}
	case resp.Error != nil:
		return pubResult{err: resp.Error}
	case resp.Stream == "":
		return pubResult{err: jetstream.ErrInvalidJSAck}
	}
	return pubResult{dup: resp.Dup}
}

// isDuplicate reports whether an ack says "duplicate": true (the server
// writes a space after the colon; json would allow any).
func isDuplicate(d []byte) bool {
	_, rest, ok := bytes.Cut(d, []byte(`"duplicate":`))
	return ok && bytes.HasPrefix(bytes.TrimLeft(rest, " \t\r\n"), []byte("true"))
}
