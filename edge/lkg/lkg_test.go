package lkg

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/rs/zerolog"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// envelope builds a valid envelope whose payload is a snapshot naming v.
func envelope(t *testing.T, v uint64) *gatewayv1.SnapshotEnvelope {
	t.Helper()
	snap := &gatewayv1.Snapshot{SchemaVersion: 1, Service: &gatewayv1.Service{Name: fmt.Sprintf("svc-%d", v), Port: 8080}}
	payload, err := proto.MarshalOptions{Deterministic: true}.Marshal(snap)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(payload)
	return &gatewayv1.SnapshotEnvelope{Version: v, Sha256: hex.EncodeToString(sum[:]), Payload: payload, Author: "test", CreatedUnixMs: int64(v) * 1000}
}

func newStore(t *testing.T, dir string, logs *bytes.Buffer) *Store {
	t.Helper()
	s, err := New(Config{Dir: dir, Logger: zerolog.New(logs)})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func snapshotFiles(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names
}

func mustSave(t *testing.T, s *Store, envs ...*gatewayv1.SnapshotEnvelope) {
	t.Helper()
	for _, env := range envs {
		if err := s.Save(env); err != nil {
			t.Fatalf("save v%d: %v", env.GetVersion(), err)
		}
	}
}

func TestSaveLoadKeepsNewestThree(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var logs bytes.Buffer
	s := newStore(t, dir, &logs)
	for v := uint64(1); v <= 5; v++ {
		mustSave(t, s, envelope(t, v))
	}
	want := []string{fileName(kindSnapshot, 3, 3), fileName(kindSnapshot, 4, 4), fileName(kindSnapshot, 5, 5)}
	if diff := cmp.Diff(want, snapshotFiles(t, dir)); diff != "" {
		t.Errorf("files (-want +got):\n%s", diff)
	}
	got, err := s.Load()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(envelope(t, 5), got, protocmp.Transform()); diff != "" {
		t.Errorf("Load (-want +got):\n%s", diff)
	}
	all, err := s.LoadAll()
	if err != nil {
		t.Fatal(err)
	}
	var versions []uint64
	for _, e := range all {
		versions = append(versions, e.GetVersion())
	}
	if diff := cmp.Diff([]uint64{5, 4, 3}, versions); diff != "" {
		t.Errorf("LoadAll versions (-want +got):\n%s", diff)
	}
}

func TestFileNamesSortInSaveOrder(t *testing.T) {
	t.Parallel()
	// A control plane whose store was reset starts again at version 1; the
	// edge must boot on what it saved last, not on the highest version.
	dir := t.TempDir()
	var logs bytes.Buffer
	s := newStore(t, dir, &logs)
	mustSave(t, s, envelope(t, 57), envelope(t, 1))
	got, err := s.Load()
	if err != nil {
		t.Fatal(err)
	}
	if got.GetVersion() != 1 {
		t.Errorf("Load = version %d, want 1 (the last saved)", got.GetVersion())
	}
	names := snapshotFiles(t, dir)
	if names[len(names)-1] != fileName(kindSnapshot, 2, 1) {
		t.Errorf("lexically last file = %s, want the newest save %s", names[len(names)-1], fileName(kindSnapshot, 2, 1))
	}
}

func TestSaveSameSnapshotIsNoop(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var logs bytes.Buffer
	s := newStore(t, dir, &logs)
	mustSave(t, s, envelope(t, 1), envelope(t, 2), envelope(t, 2))
	if diff := cmp.Diff([]string{fileName(kindSnapshot, 1, 1), fileName(kindSnapshot, 2, 2)}, snapshotFiles(t, dir)); diff != "" {
		t.Errorf("files (-want +got):\n%s", diff)
	}
}

func TestSaveRefusesUnverifiedEnvelope(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var logs bytes.Buffer
	s := newStore(t, dir, &logs)
	env := envelope(t, 1)
	env.Sha256 = strings.Repeat("0", 64)
	if err := s.Save(env); err == nil {
		t.Fatal("Save accepted an envelope whose sha256 does not match its payload")
	}
	if names := snapshotFiles(t, dir); len(names) != 0 {
		t.Errorf("files left behind: %v", names)
	}
}

func TestLoadFallsBack(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		damage  func(t *testing.T, path string)
		wantLog string
	}{
		{
			name: "flipped bytes in the middle",
			damage: func(t *testing.T, path string) {
				b := readBytes(t, path)
				for i := len(b) / 2; i < len(b)/2+16 && i < len(b); i++ {
					b[i] ^= 0xff
				}
				writeFile(t, path, b)
			},
			wantLog: "skipping corrupt",
		},
		{
			name: "one payload byte changed",
			damage: func(t *testing.T, path string) {
				b := readBytes(t, path)
				i := bytes.Index(b, []byte("svc-3"))
				if i < 0 {
					t.Fatal("payload not found in the file")
				}
				b[i+4] = '4'
				writeFile(t, path, b)
			},
			wantLog: "sha256 of payload is",
		},
		{
			name: "truncated in the payload",
			damage: func(t *testing.T, path string) {
				b := readBytes(t, path)
				writeFile(t, path, b[:len(b)-10])
			},
			wantLog: "skipping corrupt",
		},
		{
			name: "truncated to the header",
			damage: func(t *testing.T, path string) {
				b := readBytes(t, path)
				writeFile(t, path, b[:5])
			},
			wantLog: "skipping corrupt",
		},
		{
			name:    "empty file",
			damage:  func(t *testing.T, path string) { writeFile(t, path, nil) },
			wantLog: "file is empty",
		},
		{
			name: "renamed to another version",
			damage: func(t *testing.T, path string) {
				if err := os.Rename(path, filepath.Join(filepath.Dir(path), fileName(kindSnapshot, 3, 9))); err != nil {
					t.Fatal(err)
				}
			},
			wantLog: "file name says 9",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			var logs bytes.Buffer
			s := newStore(t, dir, &logs)
			mustSave(t, s, envelope(t, 1), envelope(t, 2), envelope(t, 3))
			tc.damage(t, filepath.Join(dir, fileName(kindSnapshot, 3, 3)))

			got, err := s.Load()
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(envelope(t, 2), got, protocmp.Transform()); diff != "" {
				t.Errorf("Load (-want +got):\n%s", diff)
			}
			if !strings.Contains(logs.String(), tc.wantLog) {
				t.Errorf("log lacks %q:\n%s", tc.wantLog, logs.String())
			}
		})
	}
}

func TestLoadNothingValid(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var logs bytes.Buffer
	s := newStore(t, dir, &logs)
	if _, err := s.Load(); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Load on an empty dir: %v, want ErrNotFound", err)
	}
	mustSave(t, s, envelope(t, 1))
	writeFile(t, filepath.Join(dir, fileName(kindSnapshot, 1, 1)), []byte("garbage"))
	if _, err := s.Load(); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Load with only a corrupt file: %v, want ErrNotFound", err)
	}
}

func TestCrashLeftovers(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var logs bytes.Buffer
	s := newStore(t, dir, &logs)
	mustSave(t, s, envelope(t, 1))

	// A crash between CreateTemp and Rename leaves a temporary file, maybe
	// holding a complete newer snapshot; it was never committed.
	b, err := proto.Marshal(envelope(t, 2))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "."+kindSnapshot+"-123"+tempSuffix), b)
	writeFile(t, filepath.Join(dir, "."+kindSnapshot+"-456"+tempSuffix), b[:3])
	writeFile(t, filepath.Join(dir, "unrelated.txt"), []byte("keep me"))

	got, err := s.Load()
	if err != nil {
		t.Fatal(err)
	}
	if got.GetVersion() != 1 {
		t.Errorf("Load = version %d, want 1: temporary files are not snapshots", got.GetVersion())
	}

	// Opening the dir again (the next boot) cleans them.
	logs.Reset()
	s2 := newStore(t, dir, &logs)
	if diff := cmp.Diff([]string{fileName(kindSnapshot, 1, 1), "unrelated.txt"}, snapshotFiles(t, dir)); diff != "" {
		t.Errorf("files after reopening (-want +got):\n%s", diff)
	}
	if n := strings.Count(logs.String(), "removed temporary file"); n != 2 {
		t.Errorf("logged %d removals, want 2:\n%s", n, logs.String())
	}
	mustSave(t, s2, envelope(t, 2))
	if got, err := s2.Load(); err != nil || got.GetVersion() != 2 {
		t.Errorf("Load after save = %v, %v; want version 2", got.GetVersion(), err)
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		cfg     Config
		wantErr bool
	}{
		{name: "ok", cfg: Config{Dir: "x"}},
		{name: "no dir", cfg: Config{}, wantErr: true},
		{name: "negative keep", cfg: Config{Dir: "x", Keep: -1}, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if err := tc.cfg.Validate(); (err != nil) != tc.wantErr {
				t.Errorf("Validate() = %v, wantErr %v", err, tc.wantErr)
			}
		})
	}
}

func readBytes(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
