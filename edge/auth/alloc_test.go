//go:build !race

package auth

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/valyala/fasthttp"

	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// A cache hit (with the revocation check every request runs) must not
// allocate: STYLE §6.
func TestVerifyCachedAllocs(t *testing.T) {
	a := rsaKey(t, "key-a")
	srv := newJWKSServer(t, a)
	k := newTestKeys(t, KeysConfig{})
	rev := NewRevocations(RevocationsConfig{Revoker: &gatewayv1.Revoker{N: 10000, P: 1e-9, TokenKeys: []string{"jti", "sub", "sid"}}, RebuildPeriod: -1})
	t.Cleanup(rev.Close)
	later := time.Now().Add(time.Hour)
	var es []*gatewayv1.RevocationEntry
	for i := range compactAt + 10 { // some in the filter, some in the overlay
		es = append(es, entry(uint64(i+1), "jti", strings.Repeat("x", i%40)+string(rune('a'+i%26)), later))
	}
	if err := rev.ApplyDelta(es, 0, uint64(len(es))); err != nil {
		t.Fatal(err)
	}
	sp := spec(srv.url(), "RS256")
	sp.Roles = []string{"user"}
	sp.PropagateClaims = []*gatewayv1.ClaimHeader{{Claim: "sub", Header: "X-User"}, {Claim: "roles", Header: "X-Roles"}}
	v := newTestValidator(t, k, rev, sp)
	tok := []byte(sign(t, a, jwa.RS256(), claimsAt(time.Now(), map[string]any{"roles": []string{"user"}, "sid": strings.Repeat("s", 300)}), nil))
	if _, r := v.Verify(tok); r != ReasonOK {
		t.Fatal(r)
	}
	var req fasthttp.Request
	req.Header.Set("Authorization", "Bearer "+string(tok))
	tests := []struct {
		name string
		f    func()
	}{
		{"Verify", func() {
			if _, r := v.Verify(tok); r != ReasonOK {
				panic(r.String())
			}
		}},
		{"VerifyRequest+Value+SetHeaders", func() {
			tk, r := v.VerifyRequest(&req.Header)
			if r != ReasonOK {
				panic(r.String())
			}
			if s, _ := tk.Value("sub"); s != "alice" {
				panic(s)
			}
			tk.SetHeaders(&req.Header)
		}},
	}
	for _, tc := range tests {
		tc.f() // warm header buffers and pools
		if n := testing.AllocsPerRun(200, tc.f); n != 0 {
			t.Errorf("%s: %v allocs per cached call, want 0", tc.name, n)
		}
	}
}

func TestRevocationsCheckAllocs(t *testing.T) {
	r := NewRevocations(RevocationsConfig{Revoker: &gatewayv1.Revoker{N: 1000, P: 1e-9, TokenKeys: []string{"jti", "sub"}}, RebuildPeriod: -1})
	t.Cleanup(r.Close)
	long := strings.Repeat("v", 1000)
	later := time.Now().Add(time.Hour)
	if err := r.Reset(2, []*gatewayv1.RevocationEntry{entry(1, "jti", "revoked", later), entry(2, "sub", long, later)}); err != nil {
		t.Fatal(err)
	}
	if err := r.ApplyDelta([]*gatewayv1.RevocationEntry{entry(3, "jti", "in-overlay", later)}, 2, 3); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		claims *Claims
		want   bool
	}{
		{"clean", claimsOf("jti", "clean", "sub", "alice"), false},
		{"hit in filter", claimsOf("jti", "revoked"), true},
		{"hit in overlay", claimsOf("jti", "in-overlay"), true},
		{"long value (pooled buffer)", claimsOf("sub", long), true},
		{"long clean value", claimsOf("sub", long+"x"), false},
		{"numeric jti", &Claims{m: map[string]any{"jti": json.Number("4242")}}, false},
	}
	for _, tc := range tests {
		if got := r.Check(tc.claims); got != tc.want {
			t.Fatalf("%s: Check = %v", tc.name, got)
		}
		if n := testing.AllocsPerRun(200, func() { r.Check(tc.claims) }); n != 0 {
			t.Errorf("%s: %v allocs per Check, want 0", tc.name, n)
		}
	}
}
