package lkg

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

func revSet(seq uint64, values ...string) *gatewayv1.RevocationReset {
	set := &gatewayv1.RevocationReset{Seq: seq}
	for _, v := range values {
		set.Entries = append(set.Entries, &gatewayv1.RevocationEntry{Claim: "jti", Value: v, Seq: seq, ExpiresUnixMs: 4_000_000_000_000})
	}
	return set
}

func TestRevocationsSaveLoadFallback(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var logs bytes.Buffer
	s := newStore(t, dir, &logs)
	if _, err := s.LoadRevocations(); !errors.Is(err, ErrNotFound) {
		t.Fatalf("empty dir: %v, want ErrNotFound", err)
	}
	// Entries in any order are stored sorted: equal sets, equal files.
	if err := s.SaveRevocations(revSet(1, "b", "a")); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveRevocations(revSet(2, "a", "b", "c")); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveRevocations(revSet(2, "c", "b", "a")); err != nil { // same set: no new file
		t.Fatal(err)
	}
	if err := s.SaveRevocations(revSet(3, "a", "b", "c", "d")); err != nil {
		t.Fatal(err)
	}
	// Two records are kept, next to the snapshots' series.
	mustSave(t, s, envelope(t, 7))
	want := []string{fileName(kindRevocations, 2, 2), fileName(kindRevocations, 3, 3), fileName(kindSnapshot, 1, 7)}
	if diff := cmp.Diff(want, snapshotFiles(t, dir)); diff != "" {
		t.Errorf("files (-want +got):\n%s", diff)
	}
	got, err := s.LoadRevocations()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(revSet(3, "a", "b", "c", "d"), got, protocmp.Transform()); diff != "" {
		t.Errorf("loaded (-want +got):\n%s", diff)
	}
	// The revocation records are not snapshots.
	if all, err := s.LoadAll(); err != nil || len(all) != 1 || all[0].GetVersion() != 7 {
		t.Errorf("LoadAll = %d snapshots, %v; want only v7", len(all), err)
	}

	// Corrupt newest: the previous one.
	newest := filepath.Join(dir, fileName(kindRevocations, 3, 3))
	b := readBytes(t, newest)
	b[len(b)-2] ^= 0xff
	writeFile(t, newest, b)
	if got, err := s.LoadRevocations(); err != nil || got.GetSeq() != 2 {
		t.Errorf("fallback = seq %d, %v; want seq 2", got.GetSeq(), err)
	}
	// Both corrupt: an error that is not ErrNotFound.
	writeFile(t, filepath.Join(dir, fileName(kindRevocations, 2, 2)), []byte("x"))
	if _, err := s.LoadRevocations(); err == nil || errors.Is(err, ErrNotFound) {
		t.Errorf("all corrupt: %v", err)
	}
}

// legacyFile renders the earlier revocations format.
func legacyFile(t *testing.T, set *gatewayv1.RevocationReset) []byte {
	t.Helper()
	payload, err := proto.MarshalOptions{Deterministic: true}.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(payload)
	b := append([]byte(nil), legacyMagic...)
	b = binary.BigEndian.AppendUint64(b, uint64(len(payload)))
	b = append(b, sum[:]...)
	return append(b, payload...)
}

func TestRevocationsMigrateLegacyFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	// The newest legacy copy is truncated; the previous one is read.
	writeFile(t, filepath.Join(dir, legacyRevocationsFile), legacyFile(t, revSet(5, "x", "y"))[:20])
	writeFile(t, filepath.Join(dir, legacyRevocationsPrevFile), legacyFile(t, revSet(4, "x")))
	writeFile(t, filepath.Join(dir, legacyRevocationsFile+".tmp-123"), []byte("partial"))
	var logs bytes.Buffer
	s := newStore(t, dir, &logs)
	got, err := s.LoadRevocations()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(revSet(4, "x"), got, protocmp.Transform()); diff != "" {
		t.Errorf("migrated set (-want +got):\n%s", diff)
	}
	// The first save writes the new format and removes the old files.
	if err := s.SaveRevocations(revSet(6, "x", "z")); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{fileName(kindRevocations, 1, 6)}, snapshotFiles(t, dir)); diff != "" {
		t.Errorf("files after the migration (-want +got):\n%s", diff)
	}
	if _, err := os.Stat(filepath.Join(dir, legacyRevocationsFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("legacy file still there: %v", err)
	}
}
