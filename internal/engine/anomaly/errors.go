package anomaly

import "errors"

// ErrCorrupt is returned when persisted model or baseline bytes cannot be
// decoded: wrong magic, unknown version, truncated or inconsistent data.
var ErrCorrupt = errors.New("anomaly: corrupt encoding")

// ErrNoSamples is returned by NewForest when there is nothing to train on or
// the samples do not all have the same number of features.
var ErrNoSamples = errors.New("anomaly: no usable training samples")
