package engine

import "errors"

// ErrUnknownCall is returned by Observe for a lifecycle event whose call id
// the engine does not know (never attempted, already ended, or expired).
var ErrUnknownCall = errors.New("unknown call")

// ErrUnknownTenant is returned when an event names a tenant with no policy.
var ErrUnknownTenant = errors.New("unknown tenant")

// ErrNotSuspended is returned by Unsuspend when the account is not suspended.
var ErrNotSuspended = errors.New("account not suspended")

// ErrBadEvent is returned for an event that is missing a required field.
var ErrBadEvent = errors.New("bad event")

// ErrModel is returned for an anomaly model the engine cannot use.
var ErrModel = errors.New("unusable anomaly model")
