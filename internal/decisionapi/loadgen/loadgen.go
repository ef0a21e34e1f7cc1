// Package loadgen drives POST /v1/calls/check of a running decision API with
// a realistic mix of call attempts and reports throughput, latency
// percentiles and the verdicts it got back. It connects only to the URL it
// is given; the numbers and addresses in the bodies are data (documentation
// and loopback ranges), never dialled or contacted.
package loadgen

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Options configure a run. Requests and Duration both bound it, whichever
// comes first; with neither set the run lasts defaultDuration.
type Options struct {
	// URL is the API's base URL ("http://127.0.0.1:8470") or the full
	// check URL; a bare base gets /v1/calls/check appended.
	URL string
	// Key is the API key sent as "Authorization: Bearer Key".
	Key string
	// Concurrency is the number of requests in flight. 0 → 32.
	Concurrency int
	// Requests stops the run after this many requests (0: no limit).
	Requests int
	// Duration stops the run after this long (0: no limit).
	Duration time.Duration
	// Accounts is how many accounts (acct-0 …) calls spread over. 0 → 10000.
	Accounts int
	// Seed makes the request mix repeatable.
	Seed int64
}

const (
	defaultConcurrency = 32
	defaultAccounts    = 10000
	defaultDuration    = 10 * time.Second
	requestTimeout     = 10 * time.Second
	checkPath          = "/v1/calls/check"
)

// Report is the outcome of a run. Latencies are measured per request, from
// sending to having read the whole response; failed requests count in
// Errors, and in the latencies when a response arrived.
type Report struct {
	Requests, Errors   int
	Elapsed            time.Duration
	PerSecond          float64
	P50, P90, P99, Max time.Duration
	Verdicts           map[string]int
}

// String is a one-paragraph summary.
func (r Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d requests in %v (%.0f/s), %d errors; latency p50 %v, p90 %v, p99 %v, max %v",
		r.Requests, r.Elapsed.Round(time.Millisecond), r.PerSecond, r.Errors,
		roundLatency(r.P50), roundLatency(r.P90), roundLatency(r.P99), roundLatency(r.Max))
	if len(r.Verdicts) > 0 {
		names := make([]string, 0, len(r.Verdicts))
		for v := range r.Verdicts {
			names = append(names, v)
		}
		sort.Strings(names)
		b.WriteString("; verdicts")
		for _, v := range names {
			fmt.Fprintf(&b, " %s=%d", v, r.Verdicts[v])
		}
	}
	return b.String()
}

func roundLatency(d time.Duration) time.Duration {
	if d >= time.Millisecond {
		return d.Round(10 * time.Microsecond)
	}
	return d.Round(time.Microsecond)
}

// Run sends call attempts until a bound is reached or ctx is done, writing a
// progress line to progress every second (io.Discard for none). It returns
// an error only when it cannot start; request failures are counted in the
// Report.
func Run(ctx context.Context, o Options, progress io.Writer) (Report, error) {
	target, err := checkURL(o.URL)
	if err != nil {
		return Report{}, err
	}
	if o.Concurrency < 0 || o.Requests < 0 || o.Duration < 0 || o.Accounts < 0 {
		return Report{}, errors.New("run load: negative option")
	}
	if o.Concurrency == 0 {
		o.Concurrency = defaultConcurrency
	}
	if o.Accounts == 0 {
		o.Accounts = defaultAccounts
	}
	if o.Requests == 0 && o.Duration == 0 {
		o.Duration = defaultDuration
	}
	if progress == nil {
		progress = io.Discard
	}

	transport := &http.Transport{
		MaxIdleConns:        o.Concurrency,
		MaxIdleConnsPerHost: o.Concurrency,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport, Timeout: requestTimeout}

	if o.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.Duration)
		defer cancel()
	}

	var (
		issued, done, failed atomic.Int64
		wg                   sync.WaitGroup
		workers              = make([]*worker, o.Concurrency)
	)
	start := time.Now()
	for i := range workers {
		w := &worker{
			client:   client,
			url:      target,
			auth:     "Bearer " + o.Key,
			gen:      newGenerator(o.Seed, i, o.Accounts),
			verdicts: map[string]*int{},
		}
		workers[i] = w
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				if o.Requests > 0 && issued.Add(1) > int64(o.Requests) {
					return
				}
				ok := w.do(ctx)
				if ctx.Err() != nil && !ok {
					return // cut off by the deadline: not the server's failure
				}
				done.Add(1)
				if !ok {
					failed.Add(1)
				}
			}
		}()
	}

	stop := make(chan struct{})
	progressDone := make(chan struct{})
	go func() {
		defer close(progressDone)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		var last int64
		for {
			select {
			case <-stop:
				return
			case t := <-tick.C:
				n := done.Load()
				fmt.Fprintf(progress, "%5.0fs  %9d requests  %7d/s  %d errors\n",
					t.Sub(start).Seconds(), n, n-last, failed.Load())
				last = n
			}
		}
	}()
	wg.Wait()
	elapsed := time.Since(start)
	close(stop)
	<-progressDone

	rep := Report{Elapsed: elapsed, Verdicts: map[string]int{}}
	var all histogram
	for _, w := range workers {
		rep.Requests += w.requests
		rep.Errors += w.errors
		all.merge(&w.latency)
		for v, n := range w.verdicts {
			rep.Verdicts[v] += *n
		}
	}
	if elapsed > 0 {
		rep.PerSecond = float64(rep.Requests) / elapsed.Seconds()
	}
	rep.P50, rep.P90, rep.P99 = all.quantile(0.50), all.quantile(0.90), all.quantile(0.99)
	rep.Max = all.max
	return rep, nil
}

func checkURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("run load: bad URL %q: want http(s)://host:port", raw)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = checkPath
	}
	return u.String(), nil
}

// worker is one request loop. Its counters are its own until Run merges
// them after the loops stop.
type worker struct {
	client   *http.Client
	url      string
	auth     string
	gen      *generator
	body     bytes.Buffer
	resp     bytes.Buffer
	requests int
	errors   int
	latency  histogram
	verdicts map[string]*int
}

// do sends one call attempt and reports whether it got a 200 decision.
func (w *worker) do(ctx context.Context) bool {
	w.body.Reset()
	w.gen.next(&w.body)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(w.body.Bytes()))
	if err != nil {
		w.errors++
		return false
	}
	req.Header.Set("Authorization", w.auth)
	req.Header.Set("Content-Type", "application/json")
	start := time.Now()
	resp, err := w.client.Do(req)
	if err != nil {
		if ctx.Err() == nil {
			w.requests++
			w.errors++
		}
		return false
	}
	w.resp.Reset()
	_, err = w.resp.ReadFrom(resp.Body) // read to the end so the connection is reused
	resp.Body.Close()
	if err != nil && ctx.Err() != nil {
		return false
	}
	w.latency.record(time.Since(start))
	w.requests++
	if err != nil || resp.StatusCode != http.StatusOK {
		w.errors++
		return false
	}
	v := verdictOf(w.resp.Bytes())
	if v == nil {
		w.errors++
		return false
	}
	n := w.verdicts[string(v)] // a lookup by string(v) does not allocate
	if n == nil {
		n = new(int)
		w.verdicts[string(v)] = n
	}
	*n++
	return true
}

var verdictKey = []byte(`"verdict":"`)

// verdictOf finds the verdict in a decision without decoding all of it: the
// generator must cost the machine it shares with the server far less than
// the server does. The API writes compact JSON with the decision's verdict
// before its reasons' ones, and verdicts need no escapes.
func verdictOf(body []byte) []byte {
	i := bytes.Index(body, verdictKey)
	if i < 0 {
		return nil
	}
	rest := body[i+len(verdictKey):]
	j := bytes.IndexByte(rest, '"')
	if j <= 0 || j > 16 {
		return nil
	}
	return rest[:j]
}

// generator makes call attempts: most to Brazilian numbers (the accounts
// are Brazilian), some abroad, a few to premium and high-risk ranges. Each
// account keeps its own caller number and usual source address.
type generator struct {
	rng      *rand.Rand
	prefix   string // call id prefix, unique per worker
	seq      int
	accounts int
}

func newGenerator(seed int64, worker, accounts int) *generator {
	return &generator{
		rng:      rand.New(rand.NewPCG(uint64(seed), uint64(worker)+1)),
		prefix:   fmt.Sprintf("lg%d-%d-", seed, worker),
		accounts: accounts,
	}
}

var (
	brAreas     = []string{"11", "21", "31", "41", "47", "51", "61", "71", "81", "85"}
	foreign     = []string{"+1212555", "+1305555", "+4930", "+33142", "+351213", "+5411", "+34911", "+8613"}
	premium     = []string{"+44909", "+44908", "+4490"}
	highRisk    = []string{"+882", "+881", "+53", "+239", "+370"}
	userAgents  = []string{"Asterisk PBX 20.5.0", "FreeSWITCH-mod_sofia/1.10.11", "Kamailio (5.7.2)", "Zoiper rv2.10.20", "Grandstream GXP1625 1.0.11.23"}
	scannerUA   = "friendly-scanner"
	docPrefixes = []string{"192.0.2.", "198.51.100.", "203.0.113."}
)

// next appends one check request body to b.
func (g *generator) next(b *bytes.Buffer) {
	r := g.rng
	acct := r.IntN(g.accounts)
	g.seq++

	b.WriteString(`{"call_id":"`)
	b.WriteString(g.prefix)
	b.WriteString(strconv.Itoa(g.seq))
	b.WriteString(`@loadgen","account":"acct-`)
	b.WriteString(strconv.Itoa(acct))
	// The account's own number: a São Paulo landline derived from its id.
	b.WriteString(`","from":"+551130`)
	writeDigits(b, uint64(acct), 6)

	b.WriteString(`","to":"`)
	switch p := r.IntN(1000); {
	case p < 700: // domestic mobile, sometimes formatted as dialled on a handset
		area := brAreas[r.IntN(len(brAreas))]
		if r.IntN(4) == 0 {
			b.WriteString("+55 " + area + " 9")
			writeDigits(b, r.Uint64N(10000), 4)
			b.WriteByte('-')
			writeDigits(b, r.Uint64N(10000), 4)
		} else {
			b.WriteString("+55" + area + "9")
			writeDigits(b, r.Uint64N(100000000), 8)
		}
	case p < 800: // domestic landline
		b.WriteString("+55" + brAreas[r.IntN(len(brAreas))] + "3")
		writeDigits(b, r.Uint64N(10000000), 7)
	case p < 950: // abroad
		b.WriteString(foreign[r.IntN(len(foreign))])
		writeDigits(b, r.Uint64N(10000), 4)
	case p < 980: // premium rate
		b.WriteString(premium[r.IntN(len(premium))])
		writeDigits(b, r.Uint64N(10000000), 7)
	default: // high-risk (IRSF) ranges
		b.WriteString(highRisk[r.IntN(len(highRisk))])
		writeDigits(b, r.Uint64N(100000000), 8)
	}

	b.WriteString(`","source_ip":"`)
	switch p := r.IntN(100); {
	case p < 90: // the account's usual PBX
		b.WriteString("127.")
		b.WriteString(strconv.Itoa(acct >> 16 & 0xff))
		b.WriteByte('.')
		b.WriteString(strconv.Itoa(acct >> 8 & 0xff))
		b.WriteByte('.')
		b.WriteString(strconv.Itoa(acct&0xff | 1))
	case p < 97:
		b.WriteString(docPrefixes[r.IntN(len(docPrefixes))])
		b.WriteString(strconv.Itoa(1 + r.IntN(254)))
	default:
		b.WriteString("2001:db8::")
		b.WriteString(strconv.FormatUint(uint64(r.IntN(0xffff)), 16))
	}

	b.WriteString(`","user_agent":"`)
	if r.IntN(200) == 0 {
		b.WriteString(scannerUA)
	} else {
		b.WriteString(userAgents[acct%len(userAgents)])
	}
	b.WriteString(`"}`)
}

// writeDigits writes v zero-padded to n digits.
func writeDigits(b *bytes.Buffer, v uint64, n int) {
	var buf [20]byte
	for i := n - 1; i >= 0; i-- {
		buf[i] = byte('0' + v%10)
		v /= 10
	}
	b.Write(buf[:n])
}
