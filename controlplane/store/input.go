package store

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

// The input checks every Store runs before it writes, so bbolt and etcd
// refuse the same things with the same errors.

// newRevision checks rev and returns the copy to store, stamped with now
// when it has no creation time.
func newRevision(rev *Revision, now func() time.Time) (Revision, error) {
	if rev == nil {
		return Revision{}, errors.New("commit: nil revision")
	}
	if sum := sha256.Sum256(rev.Payload); hex.EncodeToString(sum[:]) != rev.SHA256 {
		return Revision{}, fmt.Errorf("commit: sha256 %q does not match the payload", rev.SHA256)
	}
	out := *rev
	out.Rollout = nil // written beside the revision, never part of it
	if out.CreatedUnixMs == 0 {
		out.CreatedUnixMs = now().UnixMilli()
	}
	return out, nil
}

// newRevocation checks r and returns the copy to append, stamped with now
// when it has no creation time.
func newRevocation(r *Revocation, now func() time.Time) (Revocation, error) {
	if r == nil {
		return Revocation{}, errors.New("append revocation: nil entry")
	}
	if r.Claim == "" || r.Value == "" {
		return Revocation{}, errors.New("append revocation: claim and value are required")
	}
	if r.ExpiresUnixMs <= 0 {
		return Revocation{}, fmt.Errorf("append revocation: expiry must be positive, got %d", r.ExpiresUnixMs)
	}
	out := *r
	if out.CreatedUnixMs == 0 {
		out.CreatedUnixMs = now().UnixMilli()
	}
	return out, nil
}
