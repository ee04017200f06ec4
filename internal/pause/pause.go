// Package pause waits for a while unless a context ends first: the one
// sleep every retry and backoff loop of the control plane uses.
package pause

import (
	"context"
	"time"
)

// For waits d and reports true, or reports false as soon as ctx is done.
func For(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
