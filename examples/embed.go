// Package examples ships the example files with the binary, so `telguard
// serve` has a policy to run even when started outside the source tree.
package examples

import _ "embed"

// Policy is examples/policy.yaml.
//
//go:embed policy.yaml
var Policy []byte
