package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/apigw/gateway/test/etcdtest"
)

// The contract tests (every test that goes through forEachStore) run
// against each Store implementation: the embedded bbolt file and etcd.

// backend opens one kind of store. A place is where a store lives (a bbolt
// file, an etcd key prefix): opening the same place again is a restart, and
// for etcd also what a second replica does.
type backend struct {
	name  string
	place func(t *testing.T) string
	open  func(t *testing.T, place string, now func() time.Time) (Store, error)
}

// openTest opens the store at place (a fresh one when empty) and closes it
// when the test ends.
func (b backend) openTest(t *testing.T, place string, now func() time.Time) Store {
	t.Helper()
	if place == "" {
		place = b.place(t)
	}
	s, err := b.open(t, place, now)
	if err != nil {
		t.Fatalf("open %s store: %v", b.name, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

var boltBackend = backend{
	name:  "bolt",
	place: func(t *testing.T) string { return filepath.Join(t.TempDir(), "store.db") },
	open: func(t *testing.T, place string, now func() time.Time) (Store, error) {
		if now == nil {
			return OpenBolt(place)
		}
		return OpenBolt(place, WithClock(now))
	},
}

// etcdBackend runs on one single-member etcd shared by the package's tests
// (started on first use, stopped by TestMain); each place is its own prefix.
func etcdBackend(t *testing.T) backend {
	c := sharedEtcd(t)
	return backend{
		name: "etcd",
		place: func(t *testing.T) string {
			var b [8]byte
			_, _ = rand.Read(b[:])
			return "/test-" + hex.EncodeToString(b[:]) + "/"
		},
		open: func(t *testing.T, place string, now func() time.Time) (Store, error) {
			return OpenEtcd(context.Background(), EtcdConfig{Endpoints: c.Endpoints(), Prefix: place, Now: now, OpTimeout: 20 * time.Second})
		},
	}
}

// forEachStore runs test against every backend, in parallel subtests.
func forEachStore(t *testing.T, test func(t *testing.T, b backend)) {
	t.Parallel()
	for _, b := range []backend{boltBackend, etcdBackend(t)} {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			test(t, b)
		})
	}
}

var etcdOnce struct {
	sync.Once
	c   *etcdtest.Cluster
	dir string
	err error
}

// sharedEtcd returns the package's etcd, starting it on first use.
func sharedEtcd(t *testing.T) *etcdtest.Cluster {
	t.Helper()
	etcdOnce.Do(func() {
		etcdOnce.dir, etcdOnce.err = os.MkdirTemp("", "store-etcd-")
		if etcdOnce.err != nil {
			return
		}
		etcdOnce.c, etcdOnce.err = etcdtest.Start(etcdOnce.dir, 1)
	})
	if etcdOnce.err != nil {
		t.Fatalf("start etcd: %v", etcdOnce.err)
	}
	return etcdOnce.c
}

// stopSharedEtcd stops the package's etcd if a test started it.
func stopSharedEtcd() {
	if etcdOnce.c != nil {
		etcdOnce.c.Close()
	}
	if etcdOnce.dir != "" {
		_ = os.RemoveAll(etcdOnce.dir)
	}
}
