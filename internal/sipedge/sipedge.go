// Package sipedge is telguard's inline SIP guard: a proxy that stands in
// front of one upstream PBX or softswitch, turns what it sees into
// event.Events, asks the engine, and applies the decisions it gets back. It
// holds no fraud logic of its own.
//
// The proxy is stateless in the RFC 3261 §16.11 sense: it keeps no
// transaction state machines and never retransmits; the endpoints do. Its
// Via branch is derived from the incoming branch, so retransmissions,
// CANCELs and ACKs of non-2xx responses take the same path as the request
// they belong to. It does keep two small, bounded, self-expiring tables for
// what a stateless proxy cannot know: which transaction a response answers
// (to turn 200 OK, 401 or a failure into call_answered, auth and call_ended
// events) and which calls are up (so each is answered and ended once).
//
// Flow of an initial request from a caller:
//
//	INVITE            → call_attempt  → Decide → forward upstream, or reply
//	                                             decision.SIPCode (+Reason),
//	                                             or nothing when Silent
//	REGISTER, OPTIONS → sip_request   → Decide → the same
//
// and of what follows:
//
//	2xx to INVITE                → Observe call_answered
//	2xx to a caller's BYE, the upstream's BYE,
//	final failure (487 after CANCEL) → Observe call_ended (duration from the engine)
//	401/407/403 to REGISTER/INVITE → Decide sip_auth_failure
//	2xx to REGISTER with credentials → Decide sip_auth_success
//
// In-dialog requests (a To tag) are not screened again. From callers they
// must carry the guard's Record-Route stamp, an HMAC of the Call-ID, so a
// scanner cannot slip past screening by inventing a To tag. Callers'
// requests only ever go to the upstream; only the upstream (and trusted
// peers) may route requests elsewhere, so the guard is no open relay.
// Sources in Config.TrustedCIDRs bypass screening. So do carriers
// (Config.CarrierCIDRs), whose initial INVITEs are still reported to the
// engine as inbound calls, never blocked, so a ring from a premium number
// and the account calling it back (Wangiri) can be told apart from
// ordinary calls.
//
// Config.Simulation (simulation.go) lets `telguard sim` set each message's
// event time and read the engine's decisions back, on loopback only.
//
// Callers reach the guard over UDP, TCP or TLS (optionally with client
// certificates), IPv4 or IPv6; the upstream over UDP or TCP. An optional
// PacketFilter (the prefilter subpackage) sees every packet before the
// parser and receives the engine's bans.
package sipedge

import (
	"context"
	"crypto/tls"
	"net/netip"
	"time"

	"github.com/telguard/telguard/internal/event"
	"github.com/telguard/telguard/internal/sipedge/prefilter"
)

// Engine is the part of the decision engine the SIP edge drives.
type Engine interface {
	// Decide answers an event. It never fails: an engine in trouble
	// answers with a decision of its own choosing.
	Decide(ctx context.Context, ev event.Event) event.Decision
	// Observe takes the rest of a call's lifecycle (answered, ended).
	Observe(ctx context.Context, ev event.Event) error
}

// PacketFilter is the check every packet passes before it is parsed
// (*prefilter.Filter). The guard also hands it the bans the engine decides,
// so a banned source's next packets are dropped unparsed and unanswered.
type PacketFilter interface {
	Check(src netip.Addr, pkt []byte) prefilter.Verdict
	Banned(src netip.Addr) (until time.Time, reason string, ok bool)
	Ban(p netip.Prefix, until time.Time, reason string)
}

// Account sources for Config.AccountFrom.
const (
	AccountFromUser = "from_user" // the From URI's user part (default)
	AccountAuthUser = "auth_user" // the Authorization/Proxy-Authorization username, else the From user
	AccountPAI      = "pai"       // the P-Asserted-Identity URI's user part, else the From user
)

// Config configures a Server. Zero values take the defaults noted.
type Config struct {
	// Listen lists "network:host:port" addresses, e.g. "udp:127.0.0.1:5060",
	// "tcp:[::1]:5060" or "tls:0.0.0.0:5061" (udp, tcp and tls, each also
	// with a 4 or 6 suffix). Port 0 picks a free port; see Server.Addrs.
	// At least one listener of the upstream's transport and address
	// family is needed: the upstream is reached from the first one.
	// Callers of the other family reach it too, through that listener.
	Listen []string
	// TLSCert and TLSKey are the PEM certificate (chain) and key files of
	// the tls listeners, read once by New; TLSConfig, when set, is used
	// instead (a copy; give it GetCertificate to rotate certificates
	// without a restart). TLS 1.2 is the minimum either way, and the
	// cipher suites are Go's defaults.
	TLSCert   string
	TLSKey    string
	TLSConfig *tls.Config
	// TLSClientCAs is a PEM file of CAs. When set, a TLS client must
	// present a certificate issued by one of them or the handshake fails
	// (mutual TLS, for trunks).
	TLSClientCAs string
	// TLSHandshakeTimeout closes a TLS connection whose handshake has not
	// finished in time. 0 → 10 s.
	TLSHandshakeTimeout time.Duration
	// Upstream is the PBX, "udp:host:port", "tcp:host:port" or
	// "tls:host:port". Requests from callers go here, whatever transport
	// they came in on. A TCP (TLS) upstream needs a tcp (tls) listener of
	// its address family: the guard dials the upstream (once, keeping the
	// connection) and names that listener in its Via and Record-Route. A
	// message is "from the upstream" when it comes from exactly this
	// address (over TCP or TLS: on the connection the guard dialled) or,
	// with a TLS upstream, on a connection presenting its certificate, or,
	// with a TCP upstream whose address TrustedCIDRs lists alone (a /32 or
	// /128), on any connection from that address.
	Upstream string
	// UpstreamAddr, when valid, is the address Upstream's host resolves
	// to (ResolveUpstream), so the caller and the guard agree on it; the
	// zero value: New resolves Upstream itself. Server.Upstream reports
	// the address in use either way.
	UpstreamAddr netip.AddrPort
	// UpstreamTLSCAs is a PEM file of the CAs a tls upstream's
	// certificate must chain to (checked for the host Upstream names);
	// empty: the system's roots. The guard offers its own certificate
	// (TLSCert) if the upstream asks for one.
	UpstreamTLSCAs string
	// Advertise is the host put in the guard's Via and Record-Route. ""
	// means the listener's own IP, which must then be a specific address.
	Advertise string
	// Tenant is the tenant every event belongs to.
	Tenant string
	// TrustedCIDRs are peers (an SBC, an office network, a second PBX)
	// that bypass screening entirely, with no events. The upstream
	// address is always trusted.
	TrustedCIDRs []netip.Prefix
	// CarrierCIDRs are carriers: they bypass screening like trusted
	// peers, and their initial INVITEs (from any address but the
	// upstream's) are reported to the engine as inbound calls, never
	// blocked. Opt-in: a trusted peer is no carrier unless listed here.
	CarrierCIDRs []netip.Prefix
	// AccountFrom says where a call's account comes from: "from_user"
	// (default), "auth_user" or "pai".
	AccountFrom string
	// StampKey signs the Record-Route stamp that lets in-dialog requests
	// back in. Give the same key to every guard in a pool and across
	// restarts, or calls up at a restart cannot be hung up through it.
	// nil → a random key per process.
	StampKey []byte
	// MaxTransactions and MaxCalls bound the transaction table and the
	// table of callers' calls; MaxCarrierCalls bounds carriers' inbound
	// calls, in a table of their own so that they never push callers'
	// calls out. 0 → 65536, 100000 and MaxCalls. When full, the oldest
	// entry goes first: forwarding goes on, and a call the guard has
	// forgotten still has its answer and its INVITE's failure reported
	// (and its end, with the stamp of a call the engine allowed).
	MaxTransactions int
	MaxCalls        int
	MaxCarrierCalls int
	// CallTTL is how long a call is remembered without a BYE. 0 → 12 h.
	CallTTL time.Duration
	// Workers is the number of goroutines handling each UDP listener's
	// datagrams. One reader per socket hands each datagram to the worker
	// its source hashes to, so one peer's messages are handled in the
	// order they arrived (a 180 never overtakes its 200) while different
	// peers are handled in parallel. 0 → 4.
	Workers int
	// MaxTCPConns caps open connections per TCP or TLS listener. 0 →
	// 10000. An idle connection is closed after 5 minutes.
	MaxTCPConns int
	// KeepNATContact leaves Contacts alone. By default a caller's Contact
	// naming a private (RFC 1918) or CGNAT (RFC 6598) address other than
	// the message's source is rewritten to the source, as Kamailio's
	// fix_nated_contact does, so the PBX can reach a phone behind NAT.
	KeepNATContact bool
	// Filter, when set, checks every UDP datagram before it is parsed and
	// every TCP and TLS connection when it is accepted, and receives the engine's
	// bans. The daemon runs its Run (sweeping) alongside the guard.
	Filter PacketFilter
	// Clock gives event time. nil → time.Now.
	Clock func() time.Time
	// Simulation is for a dedicated guard that `telguard sim` drives: a
	// request's or the upstream's response's X-Telguard-Time header is
	// the event time of what it reports (a malformed one on a request is
	// answered 400); the engine's decision on an INVITE is copied into
	// X-Telguard-Decision on the guard's rejection and on the INVITE it
	// forwards; silent decisions are answered; and engine bans stay out
	// of the Filter (the engine judges them on event time). New refuses
	// it unless every listener and the upstream are loopback addresses.
	Simulation bool
}
