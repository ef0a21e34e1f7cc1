// Package sim owns the traffic and attack simulator: a seeded generator of
// labelled calls (honest office and contact-centre traffic for many tenants,
// with attack scenarios mixed in), a runner that drives a decider through
// the calls in event time, and the report of what was stopped, how fast,
// what it cost and how many honest calls were hurt. Same seed, same calls,
// same decisions: only the measured decision latency varies between runs.
package sim
