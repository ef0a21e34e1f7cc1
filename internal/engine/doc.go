// Package engine decides. Every sensor turns what it sees into an
// event.Event; Decide answers call attempts with an event.Decision and Observe
// takes the rest of the call lifecycle. The engine is pure: it imports no
// network, SQL or SIP package, takes time from events (and an injected clock
// for housekeeping), and reaches durable state only through the Sink it
// declares, so a replay of the same events gives the same decisions.
package engine
