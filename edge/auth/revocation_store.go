package auth

import (
	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// Export returns the live set and its seq as a RevocationReset, the form in
// which edge/lkg persists it and from which Reset restores it. Expired
// entries are left out. Readers are not blocked.
func (r *Revocations) Export() *gatewayv1.RevocationReset {
	st := r.state.Load()
	return &gatewayv1.RevocationReset{Seq: st.seq, Entries: entriesOf(st, r.now().UnixMilli())}
}
