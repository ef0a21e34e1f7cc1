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
	out := AppendSnapshotHeader(make([]byte, 0, 1024), len(tenants))
	for _, t := range tenants {
		out = AppendSnapshotTenant(out, t.Tenant, t.Networks, len(t.Accounts))
		for _, a := range t.Accounts {
			out = AppendSnapshotAccount(out, a.Account, a.Baseline)
		}
	}
	return out, nil
}

// The Append functions write a snapshot piece by piece, in the form
// MarshalSnapshot writes it at once, so that a large one can be streamed
// out in small pieces: the header with the number of tenants, then for
// each tenant its header with the number of accounts, followed by that
// many accounts.

// AppendSnapshotHeader starts a snapshot of tenants tenants.
func AppendSnapshotHeader(out []byte, tenants int) []byte {
	out = append(out, snapshotMagic...)
	out = append(out, snapshotVersion)
	return appendVarint(out, int64(tenants))
}

// AppendSnapshotTenant starts a tenant's section: its id, its networks
// (nil for none) and how many accounts follow.
func AppendSnapshotTenant(out []byte, tenant string, n *Networks, accounts int) []byte {
	out = appendString(out, tenant)
	if n == nil {
		return appendVarint(appendVarint(out, 0), int64(accounts))
	}
	// The networks are length-prefixed: encode in place, then put the
	// length in front.
	at := len(out)
	out = prefixLength(n.appendBinary(out), at)
	return appendVarint(out, int64(accounts))
}

// prefixLength puts the varint length of out[at:] in front of it, so a
// record can be encoded in place and length-prefixed afterwards.
func prefixLength(out []byte, at int) []byte {
	n := len(out) - at
	var pre [10]byte
	p := appendVarint(pre[:0], int64(n))
	out = append(out, p...)
	copy(out[at+len(p):], out[at:at+n])
	copy(out[at:], p)
	return out
}

// AppendSnapshotAccount appends one account's baseline. A nil or empty
// baseline (an account forgotten while the snapshot was written) is
// written empty and skipped when the snapshot is loaded.
func AppendSnapshotAccount(out []byte, account string, b *Baseline) []byte {
	out = appendString(out, account)
	if b == nil {
		b = &Baseline{cfg: BaselineConfig{}.withDefaults()}
	}
	at := len(out)
	return prefixLength(b.AppendBinary(out), at)
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
