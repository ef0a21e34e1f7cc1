// Package queue owns telguard's durable queue: a NATS JetStream stream that
// the webhook ingress publishes to and workers consume from. The same code
// runs against a JetStream server embedded in the process (file storage
// under the data directory, no TCP port) or against an external NATS
// cluster reached by URL; queuetest holds the suite both must pass.
//
// # Durability
//
// Publish returns only after JetStream acknowledged the message, i.e. after
// the stream stored it. What that survives:
//
//   - a crash of the telguard process: yes. The embedded server writes each
//     message to its file store before it acknowledges, so the data is in
//     the operating system's page cache when Publish returns.
//   - a crash or power loss of the machine: only with Options.Sync (the
//     embedded server then fsyncs every write, "sync: always"), or with an
//     external cluster whose stream has replicas on other machines.
//     Without Sync the server fsyncs every two minutes, and up to that much
//     acknowledged data can be lost with the machine.
//
// # Dedupe
//
// Every message carries its id in the Nats-Msg-Id header, and JetStream's
// own duplicate window (Options.DuplicateWindow, default 24 h) refuses a
// second Publish of the same id within the window: it is not stored again
// and reports dup = true. Its limits: the window is kept in the server's
// memory, about 120 bytes an id (BenchmarkDedupeMemory), and a restarted
// server rebuilds it only from the messages still in the stream. The
// webhook ingress therefore keeps a compact index of its own for the long
// window and opens the queue with a window of two minutes. The stream uses work-queue retention (a
// message is deleted once a consumer acknowledges it), so after a restart
// the ids of messages already consumed are forgotten and a redelivery of
// one of them is accepted again. Consumers must therefore be idempotent
// by id; delivery is at least once.
package queue

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Sentinel errors. Publish errors wrap one of them when the cause is known;
// an HTTP front-end answers all publish errors with 503 so the sender retries.
var (
	// ErrFull means the stream reached MaxBytes (or its message limit) and
	// refuses new messages until consumers catch up.
	ErrFull = errors.New("queue full")
	// ErrClosed means the Queue was closed.
	ErrClosed = errors.New("queue closed")
	// ErrNoID means Publish was called without a message id; the id is the
	// dedupe key and cannot be empty.
	ErrNoID = errors.New("message id required")
)

// Options configure Open. Zero values take the defaults noted.
type Options struct {
	// Embedded runs a JetStream server inside the process with file storage
	// under DataDir. It listens on no TCP port unless ListenAddr is set.
	Embedded bool
	// DataDir is where the embedded server keeps its files. Required when
	// Embedded.
	DataDir string
	// ListenAddr, when set ("127.0.0.1:4222"), makes the embedded server
	// also accept NATS clients on that address (for the nats CLI).
	ListenAddr string
	// URL of an external NATS cluster, used when !Embedded.
	URL string
	// Stream and Subject name the JetStream stream and the subject messages
	// are published on. → "TELGUARD_WEBHOOKS", "telguard.webhooks".
	Stream, Subject string
	// DuplicateWindow is how long a message id is remembered. → 24 h.
	DuplicateWindow time.Duration
	// MaxBytes caps the stream; when it is reached Publish fails with
	// ErrFull. → 1 GiB.
	MaxBytes int64
	// Replicas of the stream on an external cluster. → 1.
	Replicas int
	// Sync makes the embedded server fsync every write ("sync: always").
	// For an external cluster this is the server's own setting.
	Sync bool
	// PublishTimeout bounds Publish when its context has no deadline. → 5 s.
	PublishTimeout time.Duration
	// AckWait is how long a consumer may hold a message before it is
	// redelivered. → 30 s.
	AckWait time.Duration
	// NakDelay is how long a message waits before it is redelivered after
	// its handler failed; it doubles with each delivery up to 64×. → 1 s.
	NakDelay time.Duration
	// MaxAckPending bounds the messages a consumer holds unacknowledged. → 256.
	MaxAckPending int
	// Logger receives the embedded server's log at warning level and above.
	// nil discards.
	Logger *slog.Logger
}

const (
	defaultStream          = "TELGUARD_WEBHOOKS"
	defaultSubject         = "telguard.webhooks"
	defaultDuplicateWindow = 24 * time.Hour
	defaultMaxBytes        = 1 << 30
	defaultPublishTimeout  = 5 * time.Second
	defaultAckWait         = 30 * time.Second
	defaultNakDelay        = time.Second
	defaultMaxAckPending   = 256
	startTimeout           = 10 * time.Second
	// streamStoreFailed is JetStream's error code for a message the stream
	// refused to store; with discard-new that is a full stream.
	streamStoreFailed = 10077
)

// Queue is a durable queue on one JetStream stream. It is safe for
// concurrent use.
type Queue struct {
	opts   Options
	srv    *server.Server // nil for an external cluster
	nc     *nats.Conn
	js     jetstream.JetStream
	stream jetstream.Stream
	pub    *publisher

	closeOnce sync.Once
	done      chan struct{}
}

// Msg is one message handed to a consumer.
type Msg struct {
	ID        string // the id it was published with
	Data      []byte
	Seq       uint64    // stream sequence: publish order
	Delivered int       // 1 on the first delivery
	Time      time.Time // when it was stored
}

// Open starts (or connects to) JetStream and creates or updates the stream.
func Open(ctx context.Context, o Options) (*Queue, error) {
	if err := o.defaults(); err != nil {
		return nil, fmt.Errorf("open queue: %w", err)
	}
	q := &Queue{opts: o, done: make(chan struct{})}
	var err error
	if o.Embedded {
		err = q.startEmbedded()
	} else {
		// No reconnect buffer: a publish made while disconnected fails
		// at once (the sender gets 503 and retries) instead of being sent
		// later, after its sender was told it failed, when the ingress's
		// dedupe no longer expects it.
		q.nc, err = nats.Connect(o.URL, nats.Name("telguard"), nats.MaxReconnects(-1), nats.ReconnectBufSize(-1))
	}
	if err != nil {
		q.shutdown()
		return nil, fmt.Errorf("open queue: %w", err)
	}
	if q.js, err = jetstream.New(q.nc); err != nil {
		q.shutdown()
		return nil, fmt.Errorf("open queue: %w", err)
	}
	q.stream, err = q.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        o.Stream,
		Description: "telguard durable queue",
		Subjects:    []string{o.Subject},
		Retention:   jetstream.WorkQueuePolicy,
		Discard:     jetstream.DiscardNew,
		MaxBytes:    o.MaxBytes,
		Storage:     jetstream.FileStorage,
		Replicas:    o.Replicas,
		Duplicates:  o.DuplicateWindow,
	})
	if err != nil {
		q.shutdown()
		return nil, fmt.Errorf("open queue: create stream %s: %w", o.Stream, err)
	}
	if q.pub, err = newPublisher(q.nc, o.Subject); err != nil {
		q.shutdown()
		return nil, fmt.Errorf("open queue: %w", err)
	}
	return q, nil
}

func (o *Options) defaults() error {
	if o.Embedded && o.DataDir == "" {
		return errors.New("embedded queue needs a data directory")
	}
	if !o.Embedded && o.URL == "" {
		return errors.New("no NATS URL and not embedded")
	}
	if o.MaxBytes < 0 || o.DuplicateWindow < 0 || o.MaxAckPending < 0 || o.Replicas < 0 {
		return errors.New("negative limit")
	}
	def(&o.Stream, defaultStream)
	def(&o.Subject, defaultSubject)
	def(&o.DuplicateWindow, defaultDuplicateWindow)
	def(&o.MaxBytes, defaultMaxBytes)
	def(&o.Replicas, 1)
	def(&o.PublishTimeout, defaultPublishTimeout)
	def(&o.AckWait, defaultAckWait)
	def(&o.NakDelay, defaultNakDelay)
	def(&o.MaxAckPending, defaultMaxAckPending)
	if strings.ContainsAny(o.Subject, "*> \t") {
		return fmt.Errorf("subject %q must be literal", o.Subject)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

func def[T comparable](v *T, d T) {
	var zero T
	if *v == zero {
		*v = d
	}
}

func (q *Queue) startEmbedded() error {
	so := &server.Options{
		ServerName: "telguard",
		JetStream:  true,
		StoreDir:   q.opts.DataDir,
		SyncAlways: q.opts.Sync,
		DontListen: true,
		NoSigs:     true, // signals belong to the daemon
	}
	if q.opts.ListenAddr != "" {
		host, port, err := net.SplitHostPort(q.opts.ListenAddr)
		if err != nil {
			return fmt.Errorf("listen address: %w", err)
		}
		p, err := strconv.Atoi(port)
		if err != nil {
			return fmt.Errorf("listen address %q: bad port", q.opts.ListenAddr)
		}
		so.DontListen, so.Host, so.Port = false, host, p
	}
	srv, err := server.NewServer(so)
	if err != nil {
		return fmt.Errorf("start embedded nats: %w", err)
	}
	srv.SetLoggerV2(serverLogger{q.opts.Logger}, false, false, false)
	srv.Start()
	q.srv = srv
	if !srv.ReadyForConnections(startTimeout) {
		return errors.New("start embedded nats: not ready in time")
	}
	q.nc, err = nats.Connect("", nats.InProcessServer(srv), nats.Name("telguard"))
	if err != nil {
		return fmt.Errorf("connect to embedded nats: %w", err)
	}
	return nil
}

// Publish stores data under id and returns once JetStream acknowledged it.
// dup reports that a message with the same id was already stored within
// the duplicate window; it is then not stored again. When ctx has no
// deadline, Options.PublishTimeout applies. data may be reused once
// Publish returned without an error.
func (q *Queue) Publish(ctx context.Context, id string, data []byte) (dup bool, err error) {
	timeout := q.opts.PublishTimeout
	if _, ok := ctx.Deadline(); ok {
		timeout = 0
	}
	return q.PublishWithin(ctx, timeout, id, data)
}

// PublishWithin is Publish bounded by timeout (0: by ctx only) instead of
// a deadline on ctx, which costs a context and its registration with the
// parent per message.
func (q *Queue) PublishWithin(ctx context.Context, timeout time.Duration, id string, data []byte) (dup bool, err error) {
	if id == "" {
		return false, ErrNoID
	}
	select {
	case <-q.done:
		return false, ErrClosed
	default:
	}
	// One reply subscription for all publishes lets the client write the
	// messages of concurrent callers together and match their acks as
	// they come, where a request per message waits on a reply inbox of
	// its own; each caller still returns only once its own message is
	// stored.
	dup, err = q.pub.publish(ctx, timeout, id, data, q.done)
	switch {
	case err == nil:
		return dup, nil
	case errors.Is(err, ErrClosed):
		return false, ErrClosed
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return false, fmt.Errorf("publish: %w", err)
	}
	return false, q.publishError(err)
}

func (q *Queue) publishError(err error) error {
	var apiErr *jetstream.APIError
	switch {
	case errors.As(err, &apiErr) && apiErr.ErrorCode == streamStoreFailed &&
		(strings.Contains(apiErr.Description, "maximum bytes") || strings.Contains(apiErr.Description, "maximum messages")):
		return fmt.Errorf("publish: %w", ErrFull)
	case errors.Is(err, nats.ErrConnectionClosed):
		select {
		case <-q.done:
			return ErrClosed
		default:
		}
	}
	return fmt.Errorf("publish: %w", err)
}

// Depth returns how many messages wait in the stream: published and not
// yet acknowledged by a consumer.
func (q *Queue) Depth(ctx context.Context) (uint64, error) {
	info, err := q.stream.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("queue depth: %w", err)
	}
	return info.State.Msgs, nil
}

// Consume delivers messages to handler through the durable consumer named
// durable until ctx is done or the queue is closed, and then returns nil
// after the handler call in progress has finished. A nil error from the
// handler acknowledges the message (it leaves the queue); an error makes
// it redelivered after NakDelay, doubling per delivery; a handler that
// outlives AckWait gets its message redelivered too.
//
// The handler is called for one message at a time, in publish order
// (redeliveries aside). For parallelism call Consume several times with the
// same durable name: the messages are then shared between the calls, at
// most MaxAckPending unacknowledged in all.
func (q *Queue) Consume(ctx context.Context, durable string, handler func(context.Context, Msg) error) error {
	if durable == "" || strings.ContainsAny(durable, ".*> \t") {
		return fmt.Errorf("consume: bad durable name %q", durable)
	}
	cons, err := q.stream.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable:       durable,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       q.opts.AckWait,
		MaxDeliver:    -1, // dead-lettering is the worker's decision
		MaxAckPending: q.opts.MaxAckPending,
		FilterSubject: q.opts.Subject,
	})
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("consume: create consumer %s: %w", durable, err)
	}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		q.deliver(ctx, m, handler)
	}, jetstream.PullMaxMessages(min(q.opts.MaxAckPending, 64)),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			if ctx.Err() == nil && !errors.Is(err, nats.ErrConnectionClosed) {
				q.opts.Logger.Debug("queue consumer", "durable", durable, "err", err)
			}
		}))
	if err != nil {
		return fmt.Errorf("consume: %w", err)
	}
	select {
	case <-ctx.Done():
	case <-q.done:
	}
	cc.Stop()
	select {
	case <-cc.Closed():
	case <-q.done:
	}
	return nil
}

func (q *Queue) deliver(ctx context.Context, m jetstream.Msg, handler func(context.Context, Msg) error) {
	if ctx.Err() != nil {
		return // left unacknowledged: redelivered after AckWait
	}
	msg := Msg{Data: m.Data(), ID: m.Headers().Get(jetstream.MsgIDHeader), Delivered: 1}
	if md, err := m.Metadata(); err == nil {
		msg.Seq, msg.Delivered, msg.Time = md.Sequence.Stream, int(md.NumDelivered), md.Timestamp
	}
	if err := handler(ctx, msg); err != nil {
		_ = m.NakWithDelay(q.nakDelay(msg.Delivered))
		return
	}
	_ = m.Ack() // a lost ack means one redelivery, which consumers tolerate
}

func (q *Queue) nakDelay(delivered int) time.Duration {
	shift := min(max(delivered-1, 0), 6)
	return q.opts.NakDelay << shift
}

// Close disconnects and, when embedded, shuts the server down and waits
// until its files are closed, so a new Queue may open the same DataDir.
// Close is idempotent.
func (q *Queue) Close() error {
	q.shutdown()
	return nil
}

func (q *Queue) shutdown() {
	q.closeOnce.Do(func() {
		close(q.done)
		if q.nc != nil {
			q.nc.Close()
		}
		if q.srv != nil {
			q.srv.Shutdown()
			q.srv.WaitForShutdown()
		}
	})
}

// serverLogger passes the embedded server's warnings and errors to slog.
type serverLogger struct{ l *slog.Logger }

func (s serverLogger) Noticef(string, ...any) {}
func (s serverLogger) Debugf(string, ...any)  {}
func (s serverLogger) Tracef(string, ...any)  {}
func (s serverLogger) Warnf(format string, v ...any) {
	s.l.Warn("nats: " + fmt.Sprintf(format, v...))
}
func (s serverLogger) Errorf(format string, v ...any) {
	s.l.Error("nats: " + fmt.Sprintf(format, v...))
}
func (s serverLogger) Fatalf(format string, v ...any) {
	s.l.Error("nats fatal: " + fmt.Sprintf(format, v...))
}
