// Package sign is the contract for signed sync messages: what the control
// plane signs with its Ed25519 key and what an edge verifies against the
// keys pinned on it. It also defines the digest of a revocation set, which
// an edge reports so the control plane can repair a set that differs from
// its log.
//
// A signature covers a canonical byte string, never a protobuf encoding
// (which is not canonical across implementations):
//
//	snapshot: "apigw/snapshot/v1\n" | u64 version | str sha256
//	delta:    "apigw/revocation-delta/v1\n" | u64 from_seq | u64 to_seq | entries
//	reset:    "apigw/revocation-reset/v1\n" | u64 seq | entries
//	entries:  u64 count | for each: u64 seq | str claim | str value |
//	          i64 expires_unix_ms | i64 created_unix_ms | str author
//
// u64/i64 are 8 bytes big-endian, str is a u64 length then the bytes. The
// snapshot's payload is bound through sha256, which the edge checks against
// the payload before it checks the signature.
//
// It imports only the standard library and the generated code, so the
// edge, the control plane and the CLI may all depend on it.
package sign

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// Domain separators: a signature over one kind never verifies as another.
const (
	domainSnapshot = "apigw/snapshot/v1\n"
	domainDelta    = "apigw/revocation-delta/v1\n"
	domainReset    = "apigw/revocation-reset/v1\n"
	domainSet      = "apigw/revocation-set/v1\n"
)

// ErrUnsigned is returned for a message that carries no signature.
var ErrUnsigned = errors.New("message is not signed")

// KeyID names a public key: hex of the first 8 bytes of its SHA-256.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// Signer signs with one private key. The zero value is unusable; a nil
// *Signer signs nothing (unsigned mode).
type Signer struct {
	key ed25519.PrivateKey
	id  string
}

// NewSigner returns a Signer for key.
func NewSigner(key ed25519.PrivateKey) *Signer {
	return &Signer{key: key, id: KeyID(key.Public().(ed25519.PublicKey))}
}

// KeyID names the signer's public key.
func (s *Signer) KeyID() string { return s.id }

// Public returns the signer's public key.
func (s *Signer) Public() ed25519.PublicKey { return s.key.Public().(ed25519.PublicKey) }

// Snapshot sets env's signature. A nil Signer leaves env unsigned.
func (s *Signer) Snapshot(env *gatewayv1.SnapshotEnvelope) {
	if s == nil {
		return
	}
	env.Signature = ed25519.Sign(s.key, snapshotMessage(env))
	env.SigningKeyId = s.id
}

// Delta sets d's signature. A nil Signer leaves d unsigned.
func (s *Signer) Delta(d *gatewayv1.RevocationDelta) {
	if s == nil {
		return
	}
	d.Signature = ed25519.Sign(s.key, deltaMessage(d))
	d.SigningKeyId = s.id
}

// Reset sets r's signature. A nil Signer leaves r unsigned.
func (s *Signer) Reset(r *gatewayv1.RevocationReset) {
	if s == nil {
		return
	}
	r.Signature = ed25519.Sign(s.key, resetMessage(r))
	r.SigningKeyId = s.id
}

// Verifier checks signatures against a set of pinned public keys (several
// during a key rotation). A nil *Verifier accepts everything, signed or
// not: that is the explicit insecure mode.
type Verifier struct {
	keys map[string]ed25519.PublicKey
}

// NewVerifier returns a Verifier trusting keys; at least one is required.
func NewVerifier(keys ...ed25519.PublicKey) (*Verifier, error) {
	if len(keys) == 0 {
		return nil, errors.New("new verifier: no public key")
	}
	v := &Verifier{keys: make(map[string]ed25519.PublicKey, len(keys))}
	for _, k := range keys {
		if len(k) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("new verifier: public key of %d bytes, want %d", len(k), ed25519.PublicKeySize)
		}
		v.keys[KeyID(k)] = k
	}
	return v, nil
}

// KeyIDs lists the trusted keys, sorted.
func (v *Verifier) KeyIDs() []string {
	if v == nil {
		return nil
	}
	ids := make([]string, 0, len(v.keys))
	for id := range v.keys {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

func (v *Verifier) verify(what, keyID string, sig, msg []byte) error {
	if v == nil {
		return nil
	}
	if len(sig) == 0 {
		return fmt.Errorf("verify %s: %w", what, ErrUnsigned)
	}
	k, ok := v.keys[keyID]
	if !ok {
		return fmt.Errorf("verify %s: signed by key %q, which is not pinned on this edge (trusted: %v)", what, keyID, v.KeyIDs())
	}
	if !ed25519.Verify(k, msg, sig) {
		return fmt.Errorf("verify %s: bad signature by key %q", what, keyID)
	}
	return nil
}

// Snapshot checks env's signature (not its sha256: check that first).
func (v *Verifier) Snapshot(env *gatewayv1.SnapshotEnvelope) error {
	return v.verify(fmt.Sprintf("snapshot %d", env.GetVersion()), env.GetSigningKeyId(), env.GetSignature(), snapshotMessage(env))
}

// Delta checks d's signature.
func (v *Verifier) Delta(d *gatewayv1.RevocationDelta) error {
	return v.verify(fmt.Sprintf("revocation delta %d..%d", d.GetFromSeq(), d.GetToSeq()), d.GetSigningKeyId(), d.GetSignature(), deltaMessage(d))
}

// Reset checks r's signature.
func (v *Verifier) Reset(r *gatewayv1.RevocationReset) error {
	return v.verify(fmt.Sprintf("revocation reset to %d", r.GetSeq()), r.GetSigningKeyId(), r.GetSignature(), resetMessage(r))
}

type buf []byte

func (b buf) u64(n uint64) buf { return binary.BigEndian.AppendUint64(b, n) }
func (b buf) str(s string) buf { return append(b.u64(uint64(len(s))), s...) }

func (b buf) entries(es []*gatewayv1.RevocationEntry) buf {
	b = b.u64(uint64(len(es)))
	for _, e := range es {
		b = b.u64(e.GetSeq()).str(e.GetClaim()).str(e.GetValue()).
			u64(uint64(e.GetExpiresUnixMs())).u64(uint64(e.GetCreatedUnixMs())).str(e.GetAuthor())
	}
	return b
}

func snapshotMessage(env *gatewayv1.SnapshotEnvelope) []byte {
	return buf(domainSnapshot).u64(env.GetVersion()).str(env.GetSha256())
}

func deltaMessage(d *gatewayv1.RevocationDelta) []byte {
	return buf(domainDelta).u64(d.GetFromSeq()).u64(d.GetToSeq()).entries(d.GetEntries())
}

func resetMessage(r *gatewayv1.RevocationReset) []byte {
	return buf(domainReset).u64(r.GetSeq()).entries(r.GetEntries())
}

// RevocationSetHash is the digest of what an edge enforces from entries:
// the entries with seq <= seq (edges do not keep seqs: theirs are zero),
// one per (claim, value) with the latest expiry (zero: never), those live
// after cutoffUnixMs, sorted by claim then value, over (claim, value,
// expires). An edge reports it with the cutoff it used (its clock) and the
// control plane computes it over its log with that cutoff, so clock skew
// does not make equal sets differ.
func RevocationSetHash(entries []*gatewayv1.RevocationEntry, seq uint64, cutoffUnixMs int64) string {
	type key struct{ claim, value string }
	exp := make(map[key]int64, len(entries))
	for _, e := range entries {
		if e.GetSeq() > seq {
			continue
		}
		k := key{e.GetClaim(), e.GetValue()}
		old, seen := exp[k]
		switch {
		case !seen:
			exp[k] = e.GetExpiresUnixMs()
		case old == 0 || e.GetExpiresUnixMs() == 0:
			exp[k] = 0
		default:
			exp[k] = max(old, e.GetExpiresUnixMs())
		}
	}
	keys := make([]key, 0, len(exp))
	for k, x := range exp {
		if x == 0 || x > cutoffUnixMs {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, func(a, b key) int {
		if c := strings.Compare(a.claim, b.claim); c != 0 {
			return c
		}
		return strings.Compare(a.value, b.value)
	})
	h := sha256.New()
	h.Write([]byte(domainSet))
	var b buf
	for _, k := range keys {
		b = b[:0].str(k.claim).str(k.value).u64(uint64(exp[k]))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// PEM block types of the key files.
const (
	pemPrivate = "PRIVATE KEY" // PKCS #8
	pemPublic  = "PUBLIC KEY"  // PKIX
)

// GenerateKey returns a new private key.
func GenerateKey() (ed25519.PrivateKey, error) {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate signing key: %w", err)
	}
	return key, nil
}

// EncodePrivateKey returns key as PEM (PKCS #8).
func EncodePrivateKey(key ed25519.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode signing key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemPrivate, Bytes: der}), nil
}

// EncodePublicKey returns pub as PEM (PKIX).
func EncodePublicKey(pub ed25519.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("encode public key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemPublic, Bytes: der}), nil
}

// ParsePrivateKey reads a PEM PKCS #8 Ed25519 private key.
func ParsePrivateKey(b []byte) (ed25519.PrivateKey, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != pemPrivate {
		return nil, fmt.Errorf("parse signing key: no PEM %q block", pemPrivate)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse signing key: %w", err)
	}
	ek, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("parse signing key: %T is not an Ed25519 key", k)
	}
	return ek, nil
}

// ParsePublicKeys reads every PEM PKIX Ed25519 public key in b (one file
// may pin several keys, for a rotation).
func ParsePublicKeys(b []byte) ([]ed25519.PublicKey, error) {
	var keys []ed25519.PublicKey
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		if blk.Type != pemPublic {
			continue
		}
		k, err := x509.ParsePKIXPublicKey(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse public key: %w", err)
		}
		ek, ok := k.(ed25519.PublicKey)
		if !ok {
			return nil, fmt.Errorf("parse public key: %T is not an Ed25519 key", k)
		}
		keys = append(keys, ek)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("parse public key: no PEM %q block", pemPublic)
	}
	return keys, nil
}

// LoadVerifier reads the pinned public keys from file.
func LoadVerifier(file string) (*Verifier, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("load snapshot public key: %w", err)
	}
	keys, err := ParsePublicKeys(b)
	if err != nil {
		return nil, fmt.Errorf("load snapshot public key %s: %w", file, err)
	}
	return NewVerifier(keys...)
}
