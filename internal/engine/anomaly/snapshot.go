package anomaly

import "slices"

// TenantBaselines is one tenant's learned behaviour as a snapshot holds it:
// every account's baseline and the tenant's source networks. Group
// baselines are not kept: they are rebuilt from the accounts'.
type TenantBaselines struct {
	Tenant   string
	Networks *Networks // may be nil
	Accounts []AccountBaseline
}

// AccountBaseline is one account's baseline.
type AccountBaseline struct {
	Account  string
	Baseline *Baseline
}

// Limits on what a snapshot may claim, so a damaged file cannot make the
// decoder allocate without bound.
const (
	maxSnapshotTenants  = 1 << 20
	maxSnapshotAccounts = 1 << 24
	maxIDLength         = 1024
)

const snapshotMagic, snapshotVersion = "TGBS", 1

// MarshalSnapshot encodes tenants' baselines, in the order given.
func MarshalSnapshot(tenants []TenantBaselines) ([]byte, error) {
	out := make([]byte, 0, 1024)
	out = append(out, snapshotMagic...)
	out = append(out, snapshotVersion)
	out = appendVarint(out, int64(len(tenants)))
	for _, t := range tenants {
		out = appendString(out, t.Tenant)
		var nw []byte
		if t.Networks != nil {
			nw, _ = t.Networks.MarshalBinary()
		}
		out = appendString(out, string(nw))
		out = appendVarint(out, int64(len(t.Accounts)))
		for _, a := range t.Accounts {
			b, err := a.Baseline.MarshalBinary()
			if err != nil {
				return nil, err
			}
			out = appendString(out, a.Account)
			out = appendString(out, string(b))
		}
	}
	return out, nil
}

// UnmarshalSnapshot decodes what MarshalSnapshot wrote. A damaged snapshot
// is ErrCorrupt as a whole: half a set of baselines is not loaded.
func UnmarshalSnapshot(data []byte) ([]TenantBaselines, error) {
	r := reader{b: data}
	r.header(snapshotMagic, snapshotVersion)
	n := r.count(min(maxSnapshotTenants, len(data)))
	var out []TenantBaselines
	for range n {
		if r.err {
			break
		}
		t := TenantBaselines{Tenant: r.string(maxIDLength)}
		if nw := r.string(len(r.b)); nw != "" {
			t.Networks = NewNetworks()
			if t.Networks.UnmarshalBinary([]byte(nw)) != nil {
				return nil, ErrCorrupt
			}
		}
		k := r.count(min(maxSnapshotAccounts, len(r.b)))
		for range k {
			a := AccountBaseline{Account: r.string(maxIDLength)}
			raw := r.string(len(r.b))
			if r.err {
				break
			}
			a.Baseline = new(Baseline)
			if a.Baseline.UnmarshalBinary([]byte(raw)) != nil {
				return nil, ErrCorrupt
			}
			t.Accounts = append(t.Accounts, a)
		}
		out = append(out, t)
	}
	if r.err || len(r.b) != 0 {
		return nil, ErrCorrupt
	}
	return slices.Clip(out), nil
}
