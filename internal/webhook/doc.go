// Package webhook owns telguard's webhook ingress: it proves that a
// provider's event is authentic (Standard Webhooks or generic HMAC),
// refuses replays and floods, records the event durably in the queue and
// only then acknowledges it. Workers take events from the queue; the HTTP
// handler never does more than verify, dedupe and enqueue.
package webhook
