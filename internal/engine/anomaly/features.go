package anomaly

import "time"

// Features describe one account's recent window of calling, the input of
// the isolation forest. Every field is a rate or a share so that windows of
// different lengths stay comparable; Vector fixes the order.
type Features struct {
	// CallsPerMin is call attempts per minute over the window.
	CallsPerMin float64
	// DistinctDest is the number of distinct destination numbers dialled in
	// the window.
	DistinctDest float64
	// NewCountry is 1 when the window holds a call to a country the
	// account's baseline does not know (below its minimum share), else 0.
	NewCountry float64
	// HighRiskShare is the share (0..1) of attempts to high-risk or
	// premium-rate ranges.
	HighRiskShare float64
	// CostRate is the rated cost per minute of the window, in the tenant's
	// currency: billed minutes × rate for ended calls, plus the rate of
	// calls still up for the time they have run.
	CostRate float64
	// ShortCallShare is the share (0..1) of ended calls that were unanswered
	// or billed under the short-call limit.
	ShortCallShare float64
	// NightShare is the share (0..1) of attempts placed at night in the
	// account's local time (22:00–06:00 by default).
	NightShare float64
	// BaselineDeviation is the deviation from the account's own baseline in
	// standard deviations (see Baseline.Deviation); 0 without a baseline.
	BaselineDeviation float64

	// Window is the length the features were measured over. It is not part
	// of the vector; Baseline.Deviation needs it to turn rates into counts.
	Window time.Duration
}

// NumFeatures is the length of Features.Vector.
const NumFeatures = 8

// FeatureNames names the entries of Features.Vector, in order.
var FeatureNames = [NumFeatures]string{
	"calls_per_min", "distinct_dest", "new_country", "high_risk_share",
	"cost_rate", "short_call_share", "night_share", "baseline_deviation",
}

// Vector returns the features in FeatureNames order.
func (f Features) Vector() []float64 {
	v := f.AppendVector(make([]float64, 0, NumFeatures))
	return v
}

// AppendVector appends the features to dst in FeatureNames order, for
// callers that score without allocating.
func (f Features) AppendVector(dst []float64) []float64 {
	return append(dst, f.CallsPerMin, f.DistinctDest, f.NewCountry, f.HighRiskShare,
		f.CostRate, f.ShortCallShare, f.NightShare, f.BaselineDeviation)
}
