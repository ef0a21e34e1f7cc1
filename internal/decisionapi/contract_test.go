package decisionapi

import "github.com/telguard/telguard/internal/engine"

// The real engine is what the daemon hands New.
var _ Engine = (*engine.Engine)(nil)
