package sipedge

import (
	"container/list"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/telguard/telguard/internal/event"
)

// fifoCache is a bounded map whose entries all live for the same ttl. Entries
// are kept in insertion order, so expiry and eviction both take from the
// front: every operation is O(1) and memory never exceeds max entries,
// whatever a flood sends.
type fifoCache[K comparable, V any] struct {
	mu    sync.Mutex
	ttl   time.Duration
	max   int
	items map[K]*list.Element
	order list.List // of *fifoItem[K, V], oldest first
}

type fifoItem[K comparable, V any] struct {
	key     K
	val     V
	expires time.Time
}

func newFIFOCache[K comparable, V any](max int, ttl time.Duration) *fifoCache[K, V] {
	return &fifoCache[K, V]{ttl: ttl, max: max, items: make(map[K]*list.Element)}
}

// expire drops entries past their time and, if the cache is full, the
// oldest. Called with mu held.
func (c *fifoCache[K, V]) expire(now time.Time, room int) {
	for e := c.order.Front(); e != nil; e = c.order.Front() {
		it := e.Value.(*fifoItem[K, V])
		if now.Before(it.expires) && c.order.Len()+room <= c.max {
			return
		}
		c.order.Remove(e)
		delete(c.items, it.key)
	}
}

// get returns the entry for k, if it is there and alive.
func (c *fifoCache[K, V]) get(k K, now time.Time) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.expire(now, 0)
	if e, ok := c.items[k]; ok {
		return e.Value.(*fifoItem[K, V]).val, true
	}
	var zero V
	return zero, false
}

// put stores v under k, replacing (and renewing) any entry there.
func (c *fifoCache[K, V]) put(k K, v V, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[k]; ok {
		c.order.Remove(e)
		delete(c.items, k)
	}
	c.expire(now, 1)
	c.items[k] = c.order.PushBack(&fifoItem[K, V]{key: k, val: v, expires: now.Add(c.ttl)})
}

// add stores v under k unless a live entry is there, and reports whether
// it stored it.
func (c *fifoCache[K, V]) add(k K, v V, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.expire(now, 0)
	if _, ok := c.items[k]; ok {
		return false
	}
	c.expire(now, 1)
	c.items[k] = c.order.PushBack(&fifoItem[K, V]{key: k, val: v, expires: now.Add(c.ttl)})
	return true
}

// update runs f on the entry for k under the lock, if it is there.
func (c *fifoCache[K, V]) update(k K, now time.Time, f func(v *V)) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.expire(now, 0)
	e, ok := c.items[k]
	if !ok {
		return false
	}
	f(&e.Value.(*fifoItem[K, V]).val)
	return true
}

// removeIf deletes k if it is there, alive, and keep(v) is false. It
// reports whether it deleted it and whether k was there at all.
func (c *fifoCache[K, V]) removeIf(k K, now time.Time, keep func(v V) bool) (removed, present bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.expire(now, 0)
	e, ok := c.items[k]
	if !ok {
		return false, false
	}
	if keep(e.Value.(*fifoItem[K, V]).val) {
		return false, true
	}
	c.order.Remove(e)
	delete(c.items, k)
	return true, true
}

// remove deletes k and reports whether it was there.
func (c *fifoCache[K, V]) remove(k K) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.items[k]
	if ok {
		c.order.Remove(e)
		delete(c.items, k)
	}
	return ok
}

// len returns the number of entries, live or not yet swept.
func (c *fifoCache[K, V]) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}

// txTTL is how long a transaction is remembered. An INVITE may ring for
// minutes before its final response; Timer C is at least 3 minutes.
const txTTL = 4 * time.Minute

// endedTTL is how long an ended call is remembered, so that retransmitted
// BYEs and late failures are not reported twice: 64*T1.
const endedTTL = 32 * time.Second

// byeTTL is how long a BYE from the caller's side waits for the
// upstream's 2xx: a non-INVITE transaction's life, 64*T1.
const byeTTL = 32 * time.Second

// byeState is a BYE from the caller's side (a caller's or a carrier's)
// forwarded to the upstream: the upstream's 2xx to it ends the call.
// Kept apart from txState: it is small and short-lived, and the BYEs of a
// busy edge must not push ringing INVITEs out of the transaction table.
type byeState struct {
	callID  string    // the bounded Call-ID (the call's key)
	at      time.Time // the BYE's event time: the call ended then
	stamped bool      // it carried the stamp of a call the engine allowed
	tags    dialogTags
}

// txState is what the guard remembers about one forwarded or answered
// request, keyed by the branch the guard put (or would have put) on it.
type txState struct {
	method   sip.RequestMethod
	ev       event.Event   // the request as the engine saw it
	screened bool          // the engine allowed it: its outcome is reported
	cancelAt time.Time     // an INVITE: the event time of the CANCEL forwarded for it (under the cache lock)
	opened   bool          // an INVITE that opened its call (see callState.branch)
	hadAuth  bool          // it carried credentials
	final    bool          // a final response has been seen
	relayed  bool          // a final response has been relayed (under Server.order)
	local    *sip.Response // the guard's own final answer, nil when forwarded
	silent   bool          // the guard dropped it without a reply
	decision sip.Header    // simulation mode: the X-Telguard-Decision the forwarded INVITE carries
}

// callState is a call the engine allowed and has not yet seen end.
type callState struct {
	// branch is the guard's branch of the INVITE that opened the call:
	// only that transaction's answer and failure are the call's. Another
	// INVITE reusing the Call-ID (a loop, a carrier sending back a call
	// the PBX placed through it, a caller's trick) neither replaces the
	// call nor ends it.
	branch   string
	answered bool
	// callerTag is the From tag of the INVITE that opened the call, and
	// pbxTag the To tag of the first 2xx that answered it: the dialog. A
	// BYE ends the call only when its tags are the dialog's, so a stale
	// BYE of an earlier call with the same Call-ID, one of a forked
	// dialog, or one forged with made-up tags ends nothing.
	callerTag, pbxTag string
}

// dialogTags are the tags of a BYE: its From tag (the side hanging up)
// and its To tag.
type dialogTags struct{ from, to string }

// ends reports whether a BYE with tags t, sent by the PBX (fromPBX) or by
// the caller's side, belongs to c's dialog. A call not yet answered has
// no PBX tag to check.
func (c *callState) ends(t dialogTags, fromPBX bool) bool {
	caller, pbx := t.from, t.to
	if fromPBX {
		caller, pbx = t.to, t.from
	}
	return caller == c.callerTag && (c.pbxTag == "" || pbx == c.pbxTag)
}

// callTable holds the calls up, by Call-ID, in two bounded tables: the
// calls callers place and the inbound calls carriers deliver. Each is
// bounded on its own, so however many calls a carrier sends, they cannot
// push a caller's call out (its answer would then go unreported, and the
// call unbilled), nor the other way round. A Call-ID is in one of them at
// most.
type callTable struct {
	mu       sync.Mutex // makes add's look at both tables and its insert one step
	outbound *fifoCache[string, callState]
	inbound  *fifoCache[string, callState]
}

func newCallTable(maxOutbound, maxInbound int, ttl time.Duration) *callTable {
	return &callTable{
		outbound: newFIFOCache[string, callState](maxOutbound, ttl),
		inbound:  newFIFOCache[string, callState](maxInbound, ttl),
	}
}

// add stores c under id, in the inbound table or the outbound one,
// unless a live call has id in either; it reports whether it stored it.
func (t *callTable) add(id string, c callState, inbound bool, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	own, other := t.outbound, t.inbound
	if inbound {
		own, other = other, own
	}
	if _, ok := other.get(id, now); ok {
		return false
	}
	return own.add(id, c, now)
}

// update runs f on the call id, if it is there.
func (t *callTable) update(id string, now time.Time, f func(c *callState)) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.outbound.update(id, now, f) || t.inbound.update(id, now, f)
}

// removeIf deletes the call id unless keep says otherwise; see
// fifoCache.removeIf.
func (t *callTable) removeIf(id string, now time.Time, keep func(c callState) bool) (removed, present bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if removed, present = t.outbound.removeIf(id, now, keep); present {
		return removed, present
	}
	return t.inbound.removeIf(id, now, keep)
}
