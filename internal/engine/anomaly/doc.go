// Package anomaly owns the learned side of fraud detection: per-account
// behaviour baselines learned online with exponential decay, an isolation
// forest that scores per-account feature vectors, and detectors for known
// toll-fraud patterns (pumping, Wangiri, theft of service, robocalling,
// simultaneous-call spikes) over a per-subject sliding state.
//
// Everything here is pure like the rest of the engine: no I/O, no wall
// clock (every method takes event time), no global random source, and the
// same inputs give the same outputs. Nothing here is safe for concurrent
// use; the engine serialises access per tenant. Destination numbers kept as
// evidence are E.164 and must go through the shared masking helper before
// they reach a log.
package anomaly
