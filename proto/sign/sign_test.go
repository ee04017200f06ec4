package sign

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

func newSigner(t *testing.T) *Signer {
	t.Helper()
	k, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return NewSigner(k)
}

func verifier(t *testing.T, ss ...*Signer) *Verifier {
	t.Helper()
	var pem []byte
	for _, s := range ss {
		b, err := EncodePublicKey(s.Public())
		if err != nil {
			t.Fatal(err)
		}
		pem = append(pem, b...)
	}
	keys, err := ParsePublicKeys(pem)
	if err != nil {
		t.Fatal(err)
	}
	v, err := NewVerifier(keys...)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestSnapshotSignature: a signed envelope verifies; any change to what
// the signature covers, no signature, or another key does not.
func TestSnapshotSignature(t *testing.T) {
	s := newSigner(t)
	v := verifier(t, s)
	env := &gatewayv1.SnapshotEnvelope{Version: 7, Sha256: strings.Repeat("ab", 32), Payload: []byte("p")}
	s.Snapshot(env)
	if err := v.Snapshot(env); err != nil {
		t.Fatalf("signed envelope: %v", err)
	}
	for name, edit := range map[string]func(*gatewayv1.SnapshotEnvelope){
		"version":   func(e *gatewayv1.SnapshotEnvelope) { e.Version++ },
		"sha256":    func(e *gatewayv1.SnapshotEnvelope) { e.Sha256 = strings.Repeat("cd", 32) },
		"signature": func(e *gatewayv1.SnapshotEnvelope) { e.Signature[0] ^= 1 },
		"key id":    func(e *gatewayv1.SnapshotEnvelope) { e.SigningKeyId = "0000000000000000" },
	} {
		bad := proto.Clone(env).(*gatewayv1.SnapshotEnvelope)
		edit(bad)
		if err := v.Snapshot(bad); err == nil {
			t.Errorf("%s changed: verified", name)
		}
	}
	unsigned := proto.Clone(env).(*gatewayv1.SnapshotEnvelope)
	unsigned.Signature = nil
	if err := v.Snapshot(unsigned); !errors.Is(err, ErrUnsigned) {
		t.Errorf("unsigned: %v, want ErrUnsigned", err)
	}
	other := proto.Clone(env).(*gatewayv1.SnapshotEnvelope)
	newSigner(t).Snapshot(other)
	if err := v.Snapshot(other); err == nil || !strings.Contains(err.Error(), "not pinned") {
		t.Errorf("another key: %v, want not pinned", err)
	}
	var nilV *Verifier
	if err := nilV.Snapshot(unsigned); err != nil {
		t.Errorf("the insecure (nil) verifier refused: %v", err)
	}
}

// TestRevocationSignatures: deltas and resets verify, their entries are
// covered, and a signature of one kind never verifies as the other.
func TestRevocationSignatures(t *testing.T) {
	s := newSigner(t)
	v := verifier(t, s)
	entries := []*gatewayv1.RevocationEntry{{Seq: 3, Claim: "jti", Value: "a", ExpiresUnixMs: 10, CreatedUnixMs: 1, Author: "x"}}
	d := &gatewayv1.RevocationDelta{FromSeq: 2, ToSeq: 3, Entries: entries}
	s.Delta(d)
	if err := v.Delta(d); err != nil {
		t.Fatalf("delta: %v", err)
	}
	r := &gatewayv1.RevocationReset{Seq: 3, Entries: entries}
	s.Reset(r)
	if err := v.Reset(r); err != nil {
		t.Fatalf("reset: %v", err)
	}
	for name, edit := range map[string]func(*gatewayv1.RevocationEntry){
		"value":   func(e *gatewayv1.RevocationEntry) { e.Value = "b" },
		"expiry":  func(e *gatewayv1.RevocationEntry) { e.ExpiresUnixMs = 0 },
		"claim":   func(e *gatewayv1.RevocationEntry) { e.Claim = "sub" },
		"author":  func(e *gatewayv1.RevocationEntry) { e.Author = "y" },
		"seq":     func(e *gatewayv1.RevocationEntry) { e.Seq = 4 },
		"created": func(e *gatewayv1.RevocationEntry) { e.CreatedUnixMs = 2 },
	} {
		bad := proto.Clone(d).(*gatewayv1.RevocationDelta)
		edit(bad.Entries[0])
		if v.Delta(bad) == nil {
			t.Errorf("delta entry %s changed: verified", name)
		}
	}
	emptied := proto.Clone(r).(*gatewayv1.RevocationReset)
	emptied.Entries = nil
	if v.Reset(emptied) == nil {
		t.Error("reset emptied: verified")
	}
	// Domain separation: a delta's signature on a reset of the same seq.
	cross := &gatewayv1.RevocationReset{Seq: 3, Entries: entries, Signature: d.Signature, SigningKeyId: d.SigningKeyId}
	if v.Reset(cross) == nil {
		t.Error("a delta's signature verified a reset")
	}
}

// TestKeysRoundTripAndRotation: keys survive PEM, and a file pinning two
// keys accepts both signers (a rotation), not a third.
func TestKeysRoundTripAndRotation(t *testing.T) {
	k, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	b, err := EncodePrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParsePrivateKey(b)
	if err != nil || !bytes.Equal(back, k) {
		t.Fatalf("private key round trip: %v", err)
	}
	if _, err := ParsePrivateKey([]byte("not pem")); err == nil {
		t.Error("garbage parsed as a private key")
	}
	if _, err := ParsePublicKeys(b); err == nil {
		t.Error("a private key file parsed as public keys")
	}
	oldS, newS := NewSigner(k), newSigner(t)
	v := verifier(t, oldS, newS)
	if got := v.KeyIDs(); len(got) != 2 {
		t.Fatalf("key ids %v, want 2", got)
	}
	for _, s := range []*Signer{oldS, newS} {
		env := &gatewayv1.SnapshotEnvelope{Version: 1, Sha256: "x"}
		s.Snapshot(env)
		if err := v.Snapshot(env); err != nil {
			t.Errorf("key %s: %v", s.KeyID(), err)
		}
	}
	env := &gatewayv1.SnapshotEnvelope{Version: 1, Sha256: "x"}
	newSigner(t).Snapshot(env)
	if v.Snapshot(env) == nil {
		t.Error("a third key verified")
	}
}

// TestRevocationSetHash: the digest depends on what an edge enforces (the
// set of live (claim, value, latest expiry)), not on order, duplicates,
// seqs, authors or entries past the reported seq.
func TestRevocationSetHash(t *testing.T) {
	e := func(seq uint64, claim, value string, exp int64) *gatewayv1.RevocationEntry {
		return &gatewayv1.RevocationEntry{Seq: seq, Claim: claim, Value: value, ExpiresUnixMs: exp, Author: "a"}
	}
	base := []*gatewayv1.RevocationEntry{e(1, "jti", "a", 100), e(2, "sub", "b", 0), e(3, "jti", "a", 200)}
	h := RevocationSetHash(base, 3, 50)
	same := []*gatewayv1.RevocationEntry{e(0, "jti", "a", 200), e(0, "sub", "b", 0)} // as an edge holds it
	if got := RevocationSetHash(same, 3, 50); got != h {
		t.Error("the edge's view (no seqs, one entry per key) hashes differently")
	}
	for name, tc := range map[string]struct {
		entries []*gatewayv1.RevocationEntry
		seq     uint64
		cutoff  int64
	}{
		"empty set":         {nil, 3, 50},
		"an entry missing":  {[]*gatewayv1.RevocationEntry{e(2, "sub", "b", 0)}, 3, 50},
		"earlier expiry":    {[]*gatewayv1.RevocationEntry{e(1, "jti", "a", 100), e(2, "sub", "b", 0)}, 3, 50},
		"past the seq only": {base, 2, 50},
		"expired at cutoff": {base, 3, 250},
	} {
		if RevocationSetHash(tc.entries, tc.seq, tc.cutoff) == h {
			t.Errorf("%s: same hash", name)
		}
	}
	reordered := []*gatewayv1.RevocationEntry{base[2], base[1], base[0]}
	if RevocationSetHash(reordered, 3, 50) != h {
		t.Error("order changed the hash")
	}
}
