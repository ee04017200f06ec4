package tlsfile

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// pair writes a self-signed certificate valid until notAfter and its key.
func pair(t *testing.T, certFile, keyFile string, notAfter time.Time) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(notAfter.UnixNano()), Subject: pkix.Name{CommonName: "t"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: notAfter}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	write(t, keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}))
	write(t, certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

func write(t *testing.T, path string, b []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// TestReloaderPicksUpRotation: a replaced pair is served after the
// once-a-second check; a half-replaced pair (new certificate, old key)
// keeps the previous one until the key matches.
func TestReloaderPicksUpRotation(t *testing.T) {
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	first := time.Now().Add(48 * time.Hour).Truncate(time.Second)
	pair(t, cert, key, first)
	r, err := New(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	if got := r.NotAfter(); !got.Equal(first) {
		t.Fatalf("NotAfter %s, want %s", got, first)
	}
	// Half a rotation: a new certificate with the old key on disk.
	oldKey, _ := os.ReadFile(key)
	second := first.Add(24 * time.Hour)
	pair(t, cert, key, second)
	newKey, _ := os.ReadFile(key)
	write(t, key, oldKey)
	time.Sleep(1100 * time.Millisecond)
	if got := r.NotAfter(); !got.Equal(first) {
		t.Fatalf("mismatched pair on disk: NotAfter %s, want the previous %s", got, first)
	}
	write(t, key, newKey)
	time.Sleep(1100 * time.Millisecond)
	c, err := r.GetCertificate(nil)
	if err != nil || !c.Leaf.NotAfter.Equal(second) {
		t.Fatalf("after the rotation: %v %v, want NotAfter %s", c.Leaf.NotAfter, err, second)
	}
	if _, err := New(filepath.Join(dir, "missing.pem"), key); err == nil {
		t.Error("New with a missing file succeeded")
	}
}

func TestWatchExpirySeesRotation(t *testing.T) {
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	first := time.Now().Add(48 * time.Hour).Truncate(time.Second)
	second := first.Add(24 * time.Hour)
	pair(t, cert, key, first)
	r, err := New(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	seen := make(chan time.Time, 100)
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.WatchExpiry(ctx, 50*time.Millisecond, func(na, _ time.Time) { seen <- na })
	}()
	if got := <-seen; !got.Equal(first) {
		t.Fatalf("first check: %s, want %s", got, first)
	}
	pair(t, cert, key, second)
	deadline := time.After(10 * time.Second)
	for rotated := false; !rotated; {
		select {
		case got := <-seen:
			rotated = got.Equal(second)
		case <-deadline:
			t.Fatal("the rotated certificate's expiry was never reported")
		}
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("WatchExpiry did not return after ctx was cancelled")
	}
}
