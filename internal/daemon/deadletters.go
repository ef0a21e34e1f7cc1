package daemon

import (
	"context"
	"fmt"

	"github.com/telguard/telguard/internal/decisionapi"
	"github.com/telguard/telguard/internal/webhook/deliver"
)

// deadLetters scopes the delivery spool by tenant for the API: a dead
// letter belongs to its destination's tenant.
type deadLetters struct {
	d        *deliver.Deliverer
	tenantOf map[string]string // destination name → tenant
}

func (l deadLetters) DeadLetters(ctx context.Context, tenant string, limit int) ([]decisionapi.DeadLetter, error) {
	all, err := l.d.List(ctx, 0)
	if err != nil {
		return nil, err
	}
	var out []decisionapi.DeadLetter
	for _, dl := range all {
		if l.tenantOf[dl.Destination] != tenant {
			continue
		}
		out = append(out, decisionapi.DeadLetter{ID: dl.ID, Destination: dl.Destination, Type: dl.Type,
			Attempts: dl.Attempts, LastError: dl.LastError, Created: dl.Created, Failed: dl.Failed})
		if len(out) == limit {
			break
		}
	}
	return out, nil
}

func (l deadLetters) ReplayDeadLetter(ctx context.Context, tenant, id string) error {
	all, err := l.d.List(ctx, 0)
	if err != nil {
		return err
	}
	for _, dl := range all {
		if dl.ID == id && l.tenantOf[dl.Destination] == tenant {
			return l.d.Replay(ctx, id)
		}
	}
	return fmt.Errorf("replay %s: %w", id, decisionapi.ErrNoDeadLetter)
}
